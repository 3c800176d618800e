"""The JSON API against its own schema: schemathesis drives a served process with generated requests (valid and not);
no answer is a 5xx, every error has a `code` and a `message`, and every status code and content type is declared."""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from django.test import Client
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backstop.api import api

# Generated requests per operation and mode (valid, then invalid): enough to try each field empty, absurd and of the
# wrong type, bounded so the run stays well under a minute on a busy machine (16 operations). A deeper run by hand:
# BACKSTOP_FUZZ_EXAMPLES=200 pytest backstop/monitoring/tests/test_api_schema.py
# schemathesis's own strategies draw from `random`, which hypothesis warns of once per example.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

# A fresh database's migrations take a minute and more on a busy 2-core machine.
STARTUP_SECONDS = 180
EXAMPLES_PER_OPERATION = int(os.environ.get("BACKSTOP_FUZZ_EXAMPLES", "10"))


def error_shape(ctx: Any, response: Any, case: Any) -> None:
    """Every error the API answers is one JSON object with a `code` and a `message` a person can read."""
    if response.status_code < 400:
        return
    try:
        body = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(f"{response.status_code} answered without JSON: {response.content[:200]!r}") from error
    assert isinstance(body, dict), body
    assert isinstance(body.get("code"), str) and body["code"], f"no code in {body}"
    assert isinstance(body.get("message"), str) and body["message"], f"no message in {body}"


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          error_shape]


def test_it_answers_generated_requests_as_its_schema_says(server_factory: Any) -> None:
    # Workflows inside the web process: signups it accepts finish on their own, nothing else needs starting.
    server = server_factory(BACKSTOP_SERVE_WORKFLOWS="inside").start(wait=False)
    server.wait_until_up(timeout=STARTUP_SECONDS)
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
    session = requests.Session()
    failures: dict[str, list[str]] = defaultdict(list)
    results = list(schema.get_all_operations())
    unreadable = [result.err() for result in results if isinstance(result, Err)]
    assert not unreadable, f"operations schemathesis cannot read: {unreadable}"
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) >= 10, "the schema lost its operations"

    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                                 suppress_health_check=list(hypothesis.HealthCheck),
                                 phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def answer_as_declared(case: Any) -> None:
                try:
                    case.call_and_validate(base_url=server.url, session=session, checks=CHECKS, timeout=30)
                # Every operation's failures are gathered, then reported together (schemathesis raises a group).
                except (Exception, BaseExceptionGroup) as failure:
                    failures[case.operation.label].append(str(failure)[:1500])

            try:
                answer_as_declared()
            except hypothesis.errors.Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # no input to get wrong (GET /api/setup)

    print(f"schemathesis: {len(operations)} operations in {time.monotonic() - started:.1f} s")
    assert not failures, "\n\n".join(f"{label}:\n{found[0]}" for label, found in failures.items()) + server.log()


@pytest.mark.django_db
def test_it_declares_and_answers_415_for_a_body_not_sent_as_json() -> None:
    schema = api.get_openapi_schema(path_prefix="/api/")
    with_body = [(path, method, operation) for path, operations in schema["paths"].items()
                 for method, operation in operations.items() if "requestBody" in operation]
    assert with_body

    for path, method, operation in with_body:
        declared = {str(status) for status in operation["responses"]}
        assert {"400", "415", "500"} <= declared, f"{method} {path}"
        concrete = path.replace("{reference}", "R-NONE").replace("{surface}", "notes")
        response = getattr(Client(), method)(concrete, data="name=Ann", content_type="text/plain")
        assert response.status_code in (401, 403, 404, 415), f"{method} {path}: {response.status_code}"
        assert str(response.status_code) in declared, f"{method} {path} answers an undeclared status"
        body = response.json()
        assert body["code"] and body["message"]


@pytest.mark.django_db
def test_it_answers_a_request_django_refuses_in_the_api_error_shape() -> None:
    response = Client().post("/api/signup", data="{}", content_type="application/json", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"
