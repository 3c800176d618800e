from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings


def client_ip(request: Any) -> str:
    """The visitor's address. With ``TRUSTED_PROXY_COUNT`` = n > 0 (the site is behind n proxies of its own), the
    entry n hops from the right of X-Forwarded-For, the one our outermost proxy appended; with 0 the header is never
    read (anyone can send it) and the peer address is the visitor's."""
    peer = str(request.META.get("REMOTE_ADDR") or "unknown")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops <= 0:
        return peer
    forwarded = [part.strip() for part in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < hops:
        return peer  # the request did not come through all our proxies: only the peer is known
    candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer


def rate_limit_address(ip: str) -> str:
    """The address as rate limits count it: an IPv6 address by its /64 (one subscriber's network, in which any host
    can take a new address at will), an IPv4 address as it is."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)
