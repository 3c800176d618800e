"""Times shown to a person are in their own time zone, which only their browser knows.

The server writes each time as ``<time datetime="...Z" data-local-time="...">`` with a UTC text that is right (and
says UTC) without any script; ``static/web/local_times.js``, served by the project at ``/local-times.js`` and loaded
by base.html and the status page, rewrites it in the browser's zone and language with ``Intl``, and a time marked
relative as "in 12 seconds" or "5 minutes ago" while it is within a day, drawn again every second. Template builtins
(settings.TEMPLATES), so no page loads them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from functools import cache
from pathlib import Path

from django import template
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

register = template.Library()

SCRIPT = Path(__file__).resolve().parent / "static" / "web" / "local_times.js"
SCRIPT_URL = "/local-times.js"
# absolute: "05:30, 14 Mar"; precise: with seconds (audit trails, timelines); relative: "in 12 seconds" within a day.
STYLES = ("absolute", "precise", "relative")
_UTC_TEXT = {"absolute": "%H:%M, {day} %b UTC", "precise": "%H:%M:%S, {day} %b UTC", "relative": "%H:%M, {day} %b UTC"}


def _moment(value: dt.datetime | str | None) -> dt.datetime | None:
    """A datetime, or an ISO text as the status file holds them (naive: UTC)."""
    if value is None or value == "":
        return None
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _element(utc: dt.datetime, style: str, text: str, prefix: str = "") -> SafeString:
    return format_html('<time datetime="{}" data-local-time="{}"{} title="{} UTC">{}</time>',
                       utc.isoformat(timespec="seconds").replace("+00:00", "Z"), style,
                       format_html(' data-local-time-prefix="{}"', prefix) if prefix else "",
                       utc.strftime("%Y-%m-%d %H:%M:%S"), text)


@register.filter
def local_time(value: dt.datetime | str | None, style: str = "absolute") -> SafeString | str:
    """``{{ note.updated_at|local_time:"relative" }}``: the moment in the reader's zone (the script), UTC without it."""
    if style not in STYLES:
        raise template.TemplateSyntaxError(f"local_time takes one of {STYLES}, not {style!r}")
    utc = _moment(value)
    if utc is None:
        return ""
    return _element(utc, style, utc.strftime(_UTC_TEXT[style].format(day=utc.day)))


@register.filter
def local_time_in(text: str, value: dt.datetime | str | None) -> SafeString:
    """``{{ step.status_text|local_time_in:step.next_attempt_at }}``: a sentence a catalogue wrote with the moment in
    UTC ("We'll try again at 15:46:12 UTC."), its time made a relative ``<time>`` ("We'll try again in 12 seconds.").

    The moment is found as ``[at ]HH:MM:SS UTC`` (relative: "at " goes into the element, so it is kept before an
    absolute time and dropped before words), or as ``HH:MM, D Mon UTC`` (absolute: "promised by 16:20, 7 Dec UTC"
    reads "promised by 01:20, 8 Dec" in Tokyo). A sentence naming it neither way is only escaped.
    """
    escaped = str(conditional_escape(text))
    utc = _moment(value)
    if utc is None:
        return mark_safe(escaped)  # noqa: S308 (escaped above)
    # The first place the sentence names it: a quote later in it ("promised by 16:20, 7 Dec UTC: “we'll try again at
    # 16:20:00 UTC”") is left as the customer read it.
    candidates = [(found, style) for pattern, style in (
        (r"(at )?" + re.escape(utc.strftime("%H:%M:%S UTC")), "relative"),
        ("()" + re.escape(utc.strftime(f"%H:%M, {utc.day} %b UTC")), "absolute"),
    ) if (found := re.search(pattern, escaped)) is not None]
    if not candidates:
        return mark_safe(escaped)  # noqa: S308 (escaped above)
    found, style = min(candidates, key=lambda candidate: candidate[0].start())
    element = _element(utc, style, found.group(0), prefix=found.group(1) or "")
    return mark_safe(escaped[:found.start()] + element + escaped[found.end():])  # noqa: S308 (escaped parts)


@register.simple_tag
def local_times_script() -> SafeString:
    """At the end of a page: every ``<time data-local-time>`` on it, and any a script adds later, in the browser's
    own zone."""
    return format_html('<script src="{}" defer></script>', SCRIPT_URL)


@cache
def _script() -> tuple[bytes, str]:
    body = SCRIPT.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


@require_GET
def script_view(request: HttpRequest) -> HttpResponse:
    """``/local-times.js``: always asked again (a 304 when unchanged), so a new version reaches the next page load."""
    body, etag = _script()
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    return response
