"""A session cookie holding a NUL is nobody's session: it is dropped before the session is read.

Django's cookie parser unquotes a quoted value's octal escapes, so ``sessionid="\\000..."`` arrives as a string with a
NUL in it. The session store looks it up as it is, and PostgreSQL refuses a NUL even as a query parameter: without
this every page, and every draft save, answered such a cookie with a 500 (an error anyone could add to our alerts).
No key Django makes holds one, so nothing real is lost; SQLite simply found no row.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class SessionCookieMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.COOKIES.get(settings.SESSION_COOKIE_NAME, ""):
            del request.COOKIES[settings.SESSION_COOKIE_NAME]
        return self.get_response(request)
