"""Liveness answered before anything else looks at the request, and each request this process answers counted."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from backstop.monitoring.metrics import count_request

LIVENESS_PATH = "/healthz"


class LivenessMiddleware:
    """First in the chain: `/healthz` answers whatever the Host header says. Probes (a load balancer, an orchestrator)
    often ask by the machine's address, which ALLOWED_HOSTS rightly refuses for pages; a refused probe would restart a
    healthy process."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == LIVENESS_PATH and request.method in ("GET", "HEAD"):
            response = JsonResponse({"status": "alive"})
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)

UNMATCHED_ROUTE = "(unmatched)"
KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class RequestMetricsMiddleware:
    """Labels each count with the route's pattern, never the raw path (one label per address would grow without
    bound)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = f"/{match.route}" if match is not None and match.route else UNMATCHED_ROUTE
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        count_request(method=method or "OTHER", route=route, status=response.status_code,
                      seconds=time.perf_counter() - started)
        return response
