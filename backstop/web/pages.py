"""How an HTML form page answers: the form again, with 400 and the problem to fix, or 429 and when to come back
when a rate limit refused it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from backstop.lib.site_messages import RATE_LIMITED, Notice
from backstop.ratelimits.services import RateLimited


def note_rate_limited(context: dict[str, Any], error: RateLimited, notice: Notice = RATE_LIMITED) -> None:
    """``notice``: the page's own wording of the refusal (sign-in pages say the way in that needs no waiting)."""
    context.update(problem=notice.text.format(minutes=error.minutes), retry_after=error.retry_after)


def form_page(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    """The form again: 200 as first shown, 400 with a problem to fix, 429 (and when to come back) when rate-limited."""
    retry_after = context.get("retry_after")
    status = 429 if retry_after else 400 if context["problem"] else 200
    response = render(request, template, context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response
