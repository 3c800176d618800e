"""Every request gets an id that its log lines carry and its response names (X-Request-ID).

An id from the client is kept only when BACKSTOP_TRUST_REQUEST_ID is on (by default: behind proxies of our own, which
set it) and it looks like an id; otherwise anyone could write what our logs say a request was.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from backstop.lib.logs import is_acceptable_request_id, reset_request_id, set_request_id

HEADER = "X-Request-ID"


def request_id_for(request: HttpRequest) -> str:
    offered = str(request.META.get("HTTP_X_REQUEST_ID", "")).strip()
    if settings.TRUST_REQUEST_ID and is_acceptable_request_id(offered):
        return offered
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_for(request)
        request.request_id = request_id  # type: ignore[attr-defined]
        token = set_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response[HEADER] = request_id
        return response
