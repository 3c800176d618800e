from __future__ import annotations

import ipaddress
from typing import Any


def client_ip(request: Any) -> str:
    """The visitor's address: REMOTE_ADDR, which ``web.proxies.TrustedProxyMiddleware`` has already set from
    X-Forwarded-For when the site stands behind proxies of its own (BACKSTOP_TRUSTED_PROXY_COUNT)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def forwarded_client(*, peer: str, forwarded_for: str, hops: int) -> str:
    """The visitor behind ``hops`` proxies of our own: the X-Forwarded-For entry ``hops`` from the right, the one our
    outermost proxy appended (what the client wrote to its left is anyone's to write). With 0 hops, fewer entries than
    proxies, or no address in that place, only the peer is known."""
    if hops <= 0:
        return peer
    entries = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    if len(entries) < hops:
        return peer
    try:
        return str(ipaddress.ip_address(entries[-hops]))
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
