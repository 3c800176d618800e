"""The public status, answered in front of Django: no middleware, no session, no database.

``status_first(application)`` wraps the site's WSGI application (backstop/wsgi.py): ``/status``, ``/status.json``,
``/status/banner.json`` and ``/status/banner.js`` are answered from the status file (``status_page``) and the script
on disk, and everything else goes to Django. The banner's answer depends on who asks (the token header, the page):
``audience``. Django's middleware would read the session (so the database) of a signed-in visitor; here nothing
does, so the page answers while the database is down or migrating, and fast under load (each rendering is kept until
the file changes).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.template.loader import render_to_string

from backstop.incidents import audience, messages
from backstop.incidents.status_page import public_status, read_status_file, status_file

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

BANNER_SCRIPT = Path(__file__).parent / "static" / "incidents" / "banner.js"
STATUS_PATHS = frozenset({"/status", "/status/", "/status.json", "/status/banner.js", "/status/banner.json"})
EMPTY_STATUS = b'{"ok":true,"live":[],"past":[],"days":[]}'

_cache_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int], bytes]] = {}
# The live incidents as the banner reads them, parsed once per version of the file.
_live_cache: list[Any] = [(-1, -1), []]


def _file_version() -> tuple[int, int]:
    try:
        stat = status_file().stat()
    except FileNotFoundError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def _time(value: str | None) -> str:
    return f"{dt.datetime.fromisoformat(value):%Y-%m-%d %H:%M} UTC" if value else ""


def _with_times(incident: dict[str, Any]) -> dict[str, Any]:
    return {**incident, "started": _time(incident["started_at"]), "resolved": _time(incident.get("resolved_at")),
            "updates": [{**u, "when": _time(u["at"])} for u in incident["updates"]]}


def status_html() -> bytes:
    status = read_status_file() or {"ok": True, "headline": messages.STATUS_ALL_GOOD, "live": [], "past": [],
                                    "days": [], "affected_capabilities": [], "generated_at": None}
    return render_to_string("incidents/status.html", {
        "status": status, "live": [_with_times(i) for i in status["live"]],
        "past": [_with_times(i) for i in status["past"]], "generated": _time(status.get("generated_at")),
    }).encode()


def status_json() -> bytes:
    status = read_status_file()
    if status is None:
        return EMPTY_STATUS
    return json.dumps(public_status(status), separators=(",", ":")).encode()


def _live_incidents() -> list[dict[str, Any]]:
    version = _file_version()
    with _cache_lock:
        if _live_cache[0] == version and version != (0, 0):
            return list(_live_cache[1])
    live = [{**incident, "audience": frozenset(incident.get("audience", ()))}
            for incident in (read_status_file() or {}).get("live", [])]
    with _cache_lock:
        _live_cache[:] = [version, live]
    return live


def banner_json(*, token: str, page: str) -> bytes:
    """The live incidents this visitor's banner shows on this page (``audience.shown_to``), without the audience."""
    is_staff = bool(token) and token == audience.staff_token()
    capabilities = audience.capabilities_of_page(page)
    shown = [{k: v for k, v in incident.items() if k not in ("audience", "audience_known")}
             for incident in _live_incidents()
             if audience.shown_to(incident, token=token, capabilities=capabilities, is_staff=is_staff)]
    return json.dumps({"live": shown}, separators=(",", ":")).encode()


def _cached(kind: str, make: Callable[[], bytes]) -> bytes:
    version = _file_version()
    with _cache_lock:
        hit = _cache.get(kind)
        if hit is not None and hit[0] == version and version != (0, 0):
            return hit[1]
    body = make()
    with _cache_lock:
        _cache[kind] = (version, body)
    return body


def answer(path: str, *, token: str = "", query: str = "") -> tuple[str, bytes, str]:
    """(content type, body, cache-control) for one of STATUS_PATHS; the banner's from the visitor's token and page."""
    if path == "/status/banner.json":
        page = parse_qs(query).get("page", [""])[0]
        return "application/json", banner_json(token=token[:100], page=page), "private, no-store"
    if path == "/status.json":
        return "application/json", _cached("json", status_json), "no-store"
    if path == "/status/banner.js":
        script = BANNER_SCRIPT.read_bytes().replace(
            b"__POLL_MS__", str(int(settings.INCIDENT_BANNER_POLL_SECONDS * 1000)).encode())
        return "text/javascript; charset=utf-8", script, "max-age=300"
    return "text/html; charset=utf-8", _cached("html", status_html), "no-store"


def status_first(application: WsgiApp) -> WsgiApp:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in STATUS_PATHS or environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return application(environ, start_response)
        content_type, body, cache = answer(path, token=environ.get(audience.BANNER_TOKEN_ENVIRON, ""),
                                           query=environ.get("QUERY_STRING", ""))
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                  ("Cache-Control", cache), ("X-Content-Type-Options", "nosniff")])
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]

    return app
