"""The drafts script and its service worker, served by the project itself (no CDN)."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.views.decorators.http import require_GET

STATIC = Path(__file__).resolve().parent / "static" / "drafts"


@cache
def _asset(name: str) -> tuple[bytes, str]:
    body = (STATIC / name).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def _serve(request: HttpRequest, name: str) -> HttpResponse:
    body, etag = _asset(name)
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    # Always asked again (a 304 when unchanged), so a new version reaches every page at its next load.
    response["Cache-Control"] = "no-cache"
    return response


@require_GET
def script(request: HttpRequest) -> HttpResponse:
    return _serve(request, "drafts.js")


@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    response = _serve(request, "sw.js")
    response["Service-Worker-Allowed"] = "/"
    return response
