"""The public status, answered in front of Django: no middleware, no session, no database.

``status_first(application)`` wraps the site's WSGI application (backstop/wsgi.py): ``/status``, ``/status.json`` and
``/status/banner.js`` are answered from the status file (``status_page``) and the script on disk, and everything else
goes to Django. Django's middleware would read the session (so the database) of a signed-in visitor; here nothing
does, so the page answers while the database is down or migrating, and fast under load (each rendering is kept until
the file changes).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from backstop.incidents import messages
from backstop.incidents.status_page import read_status_file, status_file

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

BANNER_SCRIPT = Path(__file__).parent / "static" / "incidents" / "banner.js"
STATUS_PATHS = frozenset({"/status", "/status/", "/status.json", "/status/banner.js"})

_cache_lock = threading.Lock()
_cache: dict[str, tuple[tuple[int, int], bytes]] = {}


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
    try:
        return status_file().read_bytes()
    except FileNotFoundError:
        return b'{"ok":true,"live":[],"past":[],"days":[]}'


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


def answer(path: str) -> tuple[str, bytes, str]:
    """(content type, body, cache-control) for one of STATUS_PATHS."""
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
        content_type, body, cache = answer(path)
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                  ("Cache-Control", cache), ("X-Content-Type-Options", "nosniff")])
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]

    return app
