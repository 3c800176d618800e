"""The site's own answers where Django or ninja would answer with a bare page: each says what happened, that nothing
was saved, and what to do next."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from backstop.lib import site_messages

API_PREFIX = "/api/"


def _page_before(request: HttpRequest) -> str:
    """The page the form was on (this site's own), else the home page: the address posted to may take only POST."""
    referer = request.META.get("HTTP_REFERER", "")
    hosts = set(settings.ALLOWED_HOSTS)
    try:
        hosts.add(request.get_host())  # with its port, which the allowed hosts leave out
    except DisallowedHost:
        pass  # the very reason this request is refused
    if url_has_allowed_host_and_scheme(referer, allowed_hosts=hosts, require_https=request.is_secure()):
        return referer
    return "/"


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form sent without its CSRF token, or with an old one (the page was open before signing in elsewhere)."""
    return render(request, "errors/problem.html", {
        "title": site_messages.FORM_EXPIRED_TITLE, "text": site_messages.FORM_EXPIRED.text,
        "back": _page_before(request),
    }, status=403)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """What Django refuses before any view reads it: a form too large or with too many fields, or a request it
    finds suspect (an unknown Host header, say)."""
    too_large = isinstance(exception, (RequestDataTooBig, TooManyFieldsSent))
    if request.path.startswith(API_PREFIX):  # an API client reads the API's error shape, not a page
        code, notice = (("body_too_large", site_messages.BODY_TOO_LARGE) if too_large
                        else ("malformed_request", site_messages.MALFORMED_REQUEST))
        return JsonResponse({"code": code, "message": notice.text}, status=400)
    return render(request, "errors/problem.html", {
        "title": site_messages.NOT_SENT_TITLE,
        "text": (site_messages.FORM_UNREADABLE if too_large else site_messages.REQUEST_UNREADABLE).text,
        "back": _page_before(request),
    }, status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A signed-in person without the permission a page needs (a customer at /desk, staff without the desk's): a page
    that says so, with the way back, never Django's bare 403."""
    return render(request, "errors/problem.html", {
        "title": site_messages.NOT_ALLOWED_TITLE, "text": site_messages.NOT_ALLOWED.text,
        "back": _page_before(request),
    }, status=403)


class ApiErrorShapeMiddleware:
    """An /api/ path that does not exist, or a method it does not take, answers in the API's error shape too."""

    ANSWERS = {404: ("not_found", site_messages.API_NOT_FOUND),
               405: ("method_not_allowed", site_messages.API_METHOD_NOT_ALLOWED)}

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        answer = self.ANSWERS.get(response.status_code)
        if (answer is None or not request.path.startswith(API_PREFIX)
                or response.get("Content-Type", "").startswith("application/json")):
            return response
        code, notice = answer
        response.content = json.dumps({"code": code, "message": notice.text}).encode()
        response["Content-Type"] = "application/json; charset=utf-8"
        return response
