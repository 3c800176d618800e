"""Asking for a sign-in code over real HTTP: the answer takes as long and says the same whatever the address, and
the recover form refuses what is not an address instead of answering "code sent"."""

from __future__ import annotations

import re
from typing import Any

import httpx

from backstop.accounts import messages
from backstop.lib.tests.timing import compare
from conftest import Database, SmtpSink, wait_for


def _recover(http: httpx.Client, email: str) -> httpx.Response:
    return http.post("/api/recover", json={"email": email})


def test_it_answers_a_code_request_in_the_same_time_and_words_whatever_the_address(
    server_factory: Any, server_database: Database, smtp_sink: SmtpSink,
) -> None:
    # Limits counted as in production, but high enough for 80 requests from one test address.
    server = server_factory(BACKSTOP_RATE_LIMIT_SCALE="100").start()
    http = httpx.Client(base_url=server.url, timeout=60)
    answer = http.post("/api/signup", json={"name": "Ann Lee", "email": "ann@example.com", "phone": "+1 415 555 0100",
                                            "company": "Acme", "password": "correct horse battery"})
    assert answer.status_code == 201, answer.text
    http.cookies.clear()  # from here on, a stranger
    _recover(http, "warm-up@example.com")
    # One address without an account, asked as often as the one with: both then update their counters (a first ask
    # inserts one), so the two differ only in whether the address has an account.

    def sent(answer: httpx.Response) -> None:
        # Each request's workflow, and the deliveries of the code it made, are over before the next request.
        wait_for(lambda: server_database.scalar(
            "SELECT COUNT(*) FROM runtime_guardedintent WHERE operation = 'sign_in_code' AND state != 'done'") == 0
            and server_database.scalar(
                "SELECT COUNT(*) FROM notify_message WHERE status NOT IN ('sent', 'failed')") == 0,
            timeout=30, interval=0.02)

    agree, described, rounds = compare(lambda i: _recover(http, "ann@example.com"),
                                       lambda i: _recover(http, "nobody@example.com"), settle=sent)

    assert agree, described
    for known, unknown in (pair for comparison in rounds for pair in comparison.answers):
        assert (known.status_code, known.json()) == (unknown.status_code, unknown.json()) == (
            202, {"message": messages.RECOVERY_SENT.text})
    # The codes were sent after the answers, by the requests' workflows: the owner has each of them.
    asked = 40 * len(rounds)
    wait_for(lambda: len([m for m in smtp_sink.to("ann@example.com") if "code" in str(m["Subject"]).lower()])
             >= asked, timeout=60, message="the owner did not get the codes")
    assert server_database.scalar("SELECT COUNT(*) FROM accounts_verificationcode") == asked
    http.close()


def _form(http: httpx.Client, email: str) -> httpx.Response:
    page = http.get("/recover")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None
    return http.post("/recover", data={"csrfmiddlewaretoken": token.group(1), "email": email},
                     headers={"Referer": f"{http.base_url}recover"})


def test_it_refuses_what_is_not_an_address_on_the_recover_form(server_factory: Any) -> None:
    server = server_factory().start()
    http = httpx.Client(base_url=server.url, timeout=60)

    for typed, error in (("not an email", messages.FIELD_ERRORS["email_invalid"]),
                         ("a" * 10_000, messages.FIELD_ERRORS["email_too_long"]),
                         ("x" * 250 + "@example.com", messages.FIELD_ERRORS["email_too_long"])):
        page = _form(http, typed)
        assert page.status_code == 400, page.status_code  # the form again with the problem, never "code sent"
        assert "location" not in page.headers
        assert error in page.text.replace("&#x27;", "'")
        assert messages.RECOVERY_SENT.happened not in page.text.replace("&#x27;", "'")

    api = http.post("/api/recover", json={"email": "a" * 10_000})
    assert api.status_code == 400 and api.json()["fields"] == {"email": messages.FIELD_ERRORS["email_too_long"]}

    sent = _form(http, "Ann@Example.com")
    assert sent.status_code == 302
    assert sent.headers["location"] == "/verify?email=Ann%40example.com"
    http.close()
