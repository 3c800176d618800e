"""The visitor's address behind proxies of our own, set once for every view (rate limits count it)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from backstop.lib.http import forwarded_client


class TrustedProxyMiddleware:
    """With BACKSTOP_TRUSTED_PROXY_COUNT = n > 0, REMOTE_ADDR becomes the X-Forwarded-For entry n hops from the
    right; with 0 (the default) the header is never read. First in the chain, so everything sees the same address."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        hops = settings.TRUSTED_PROXY_COUNT
        if hops > 0:
            request.META["REMOTE_ADDR"] = forwarded_client(
                peer=str(request.META.get("REMOTE_ADDR") or ""),
                forwarded_for=str(request.META.get("HTTP_X_FORWARDED_FOR", "")), hops=hops) or "unknown"
        return self.get_response(request)
