"""Log lines an operator can search: one JSON object a line, each naming the request or workflow it belongs to.

Framework-free: the request id lives in a context variable that the web middleware sets (``backstop.web.request_ids``)
and the workflow id comes from a getter the runtime plugs in (``backstop.runtime.logs``), so nothing here knows
Django or the workflow engine.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
from collections.abc import Callable

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("backstop_request_id", default="")
# What a client or proxy may name a request: short, printable, nothing a log reader would mistake for structure.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_workflow_id_getters: list[Callable[[], str | None]] = []


def current_request_id() -> str:
    return _request_id.get()


def set_request_id(request_id: str) -> contextvars.Token[str]:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str]) -> None:
    _request_id.reset(token)


def is_acceptable_request_id(value: str) -> bool:
    return bool(REQUEST_ID_PATTERN.fullmatch(value))


def add_workflow_id_getter(getter: Callable[[], str | None]) -> None:
    """Where the id of the workflow running on this thread comes from (the runtime plugs DBOS in at start-up)."""
    if getter not in _workflow_id_getters:
        _workflow_id_getters.append(getter)


def current_workflow_id() -> str:
    for getter in _workflow_id_getters:
        try:
            found = getter()
        except Exception:  # a log line must never fail because its context could not be read
            found = None
        if found:
            return found
    return ""


class ContextFilter(logging.Filter):
    """Puts ``request_id`` and ``workflow_id`` on every record (empty when the line belongs to neither, such as a
    start-up message), so every formatter can name them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            # Django logs a 4xx or 5xx answer after the middleware that set the context has returned, but it hands
            # the request along with the record (and the middleware put the id on the request).
            record.request_id = current_request_id() or str(getattr(getattr(record, "request", None), "request_id", ""))
        if not getattr(record, "workflow_id", ""):
            record.workflow_id = current_workflow_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, request_id, workflow_id, and the
    traceback when there is one (inside the object, so a multi-line traceback stays one line)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "") or current_request_id(),
            "workflow_id": getattr(record, "workflow_id", "") or current_workflow_id(),
            "process": record.process,
            "thread": record.threadName,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [request=%(request_id)s workflow=%(workflow_id)s] %(message)s"


def logging_config(*, level: str, json_lines: bool) -> dict[str, object]:
    """Django's LOGGING: one console handler with the context filter, JSON or text lines."""
    formatter: dict[str, object] = ({"()": "backstop.lib.logs.JsonFormatter"} if json_lines
                                    else {"format": TEXT_FORMAT})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "backstop.lib.logs.ContextFilter"}},
        "formatters": {"line": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["context"], "formatter": "line"}},
        "root": {"handlers": ["console"], "level": level},
        # Waitress and Django log through the root handler (one format for every line); so does the engine, whose own
        # handler backstop.runtime.logs takes away once it has launched.
        "loggers": {"django": {"level": level, "propagate": True}},
    }


def use_root_handlers(logger_name: str) -> None:
    """Make a library's logger write through the root handlers, and keep it from installing a console handler of its
    own later: such libraries (the workflow engine) add one only while the logger has none, so it gets a handler
    that drops everything, and its records still reach the root handlers by propagating."""
    logger = logging.getLogger(logger_name)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.addHandler(logging.NullHandler())
    logger.propagate = True
