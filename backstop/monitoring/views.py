"""/healthz (alive), /readyz (able to work) and /metrics (Prometheus). None of them sets a cookie or is cached."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from backstop.monitoring import messages
from backstop.monitoring.health import check_readiness
from backstop.monitoring.metrics import render_metrics


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: this process answers. It reads no database, so a database outage does not get every web process
    restarted by its supervisor (which would not bring the database back). monitoring.middleware answers it first,
    whatever the Host; this view is the route's own answer (and its name in the URLconf)."""
    return JsonResponse({"status": "alive"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    readiness = check_readiness()
    body: dict[str, object] = {"status": "ready" if readiness.ready else "not_ready",
                               "checks": {check.name: check.as_dict() for check in readiness.checks}}
    if not readiness.ready:
        body["failed"] = readiness.failed
    return JsonResponse(body, status=200 if readiness.ready else 503)


def may_read_metrics(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    token = settings.METRICS_TOKEN
    offered = str(request.META.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = offered.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not may_read_metrics(request):
        response = JsonResponse({"code": "forbidden", "message": messages.METRICS_FORBIDDEN}, status=403)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
