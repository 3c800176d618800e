"""Every log line names its request or its workflow; the response names the request's id."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from dbos import DBOS
from django.test import Client

from backstop.lib.logs import ContextFilter, JsonFormatter

test_log = logging.getLogger("backstop.monitoring.tests")


@DBOS.workflow()
def logging_workflow(text: str) -> str:
    test_log.warning("inside the workflow: %s", text)
    return str(DBOS.workflow_id)


@contextmanager
def json_lines(logger: logging.Logger) -> Iterator[list[dict[str, Any]]]:
    """What the site's console handler (the same filter and formatter) writes for ``logger``, read back as JSON."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


@pytest.mark.django_db
def test_it_keeps_a_trusted_request_id_and_names_it_on_the_requests_lines(settings: Any) -> None:
    settings.TRUST_REQUEST_ID = True
    with json_lines(logging.getLogger()) as lines:
        response = Client().get("/no-such-page", HTTP_X_REQUEST_ID="edge-7f3a.42")

    assert response.status_code == 404
    assert response["X-Request-ID"] == "edge-7f3a.42"
    assert lines, "Django logs a 404 as a warning"
    assert all(line["request_id"] == "edge-7f3a.42" for line in lines), lines
    assert any("/no-such-page" in line["message"] for line in lines)


@pytest.mark.django_db
def test_it_gives_its_own_id_when_the_offered_one_is_untrusted_or_malformed(settings: Any) -> None:
    settings.TRUST_REQUEST_ID = False
    untrusted = Client().get("/api/openapi.json", HTTP_X_REQUEST_ID="made-up-by-a-client")
    settings.TRUST_REQUEST_ID = True
    malformed = Client().get("/api/openapi.json", HTTP_X_REQUEST_ID='{"forged": "line"}')

    for response in (untrusted, malformed):
        assert len(response["X-Request-ID"]) == 32 and response["X-Request-ID"] != "made-up-by-a-client"
    assert untrusted["X-Request-ID"] != malformed["X-Request-ID"]


def test_it_names_the_workflow_on_lines_logged_inside_it(engine_db: str) -> None:
    with json_lines(test_log) as lines:
        workflow_id = DBOS.start_workflow(logging_workflow, "hello").get_result()
        test_log.warning("outside any workflow")

    inside, outside = lines
    assert inside["message"] == "inside the workflow: hello"
    assert inside["workflow_id"] == workflow_id
    assert outside["workflow_id"] == ""


def test_it_keeps_a_traceback_inside_its_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.LogRecord("backstop.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    ContextFilter().filter(record)

    line = JsonFormatter().format(record)

    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed here"
    assert parsed["level"] == "ERROR"
    assert "ValueError: boom" in parsed["exception"]
    assert parsed["time"].endswith("+00:00")
