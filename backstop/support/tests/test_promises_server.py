"""The customer's side of "automation claims only what it did", against `backstop serve` over real HTTP, with the
acknowledgement read from a real SMTP sink: a question asked while setup runs is not a fixed failure, and "Try again
now" tries a step whose budget was spent while the other step still ran."""

from __future__ import annotations

import time
from typing import Any

import httpx

from conftest import wait_for

PASSWORD = "correct horse battery"


def _signed_up(server: Any, email: str) -> httpx.Client:
    browser = httpx.Client(base_url=server.url, timeout=30)
    response = browser.post("/api/signup", json={"name": "Ann Lee", "email": email, "phone": "+1 415 555 0100",
                                                 "company": "Acme", "password": PASSWORD})
    assert response.status_code == 201, response.text
    return browser


def _set_faults(server: Any, **modes: str) -> None:
    httpx.post(f"{server.url}/demo/api/faults", json=modes, timeout=10).raise_for_status()


def _text(message: Any) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return str(part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8"))
    return ""


def test_it_answers_how_do_i_invite_my_team_as_a_question_not_a_fixed_failure(
    server_factory: Any, smtp_sink: Any,
) -> None:
    server = server_factory(BACKSTOP_FAULT_SLOW_SECONDS="2").start()
    _set_faults(server, workspace="slow")
    _signed_up(server, "ann@example.com")
    time.sleep(0.5)

    answer = httpx.post(f"{server.url}/api/support/contact", timeout=30,
                        json={"email": "ann@example.com", "message": "How do I invite my team?"})

    assert answer.status_code == 202, answer.text
    ack = wait_for(lambda: [m for m in smtp_sink.to("ann@example.com") if "got your message" in str(m["Subject"])],
                   timeout=30, message="no acknowledgement")[0]
    assert "our failure" not in _text(ack)
    assert "A person will read your message and reply within one working day" in _text(ack)
    database = server.database
    assert database.scalar("SELECT finding FROM support_contact") in ("setup_under_way", "setup_finished_anyway")
    assert database.scalar("SELECT needs_human FROM support_contact") in (1, True)
    assert database.scalar("SELECT kind FROM support_commitment") == "person_replies"
    assert database.scalar("SELECT COUNT(*) FROM support_supportaction WHERE action = 'retry_setup'") == 0
    time.sleep(3)  # the setup finishes and the support cycle runs: the case still waits for a person
    assert database.scalar("SELECT state FROM support_case") == "open"
    assert database.scalar("SELECT resolution FROM support_case") == ""


def test_it_tries_again_now_the_step_that_just_spent_its_budget(server_factory: Any) -> None:
    # The workspace provider errors at once; each try of the welcome email hangs for seconds: the workspace spends
    # its budget while the run goes on for the email.
    server = server_factory(BACKSTOP_SETUP_MAX_ATTEMPTS="3", BACKSTOP_EMAIL_TIMEOUT="4").start()
    _set_faults(server, workspace="error", email="timeout")
    browser = _signed_up(server, "bob@example.com")

    def workspace() -> dict[str, Any]:
        steps = browser.get("/api/setup").json()["steps"]
        return next(step for step in steps if step["name"] == "workspace")

    # Spent while the email's tries go on ("retrying"), or, on a slow machine, after the run ended ("failed"): either
    # way the button must try it again (in this run, or in the next).
    spent = wait_for(lambda: (w := workspace())["status"] in ("retrying", "failed") and w["attempts"] >= 3 and w,
                     timeout=60, message="the workspace never spent its budget")
    assert "try again at" not in spent["status_text"] and spent["next_attempt_at"] is None
    _set_faults(server, workspace="ok", email="ok")

    retried = browser.post("/api/setup/retry", headers={"X-CSRFToken": browser.cookies.get("csrftoken") or ""})

    assert retried.status_code == 202, retried.text
    wait_for(lambda: workspace()["status"] == "done", timeout=30,
             message="'Try again now' did not try the step whose budget was spent")
    wait_for(lambda: browser.get("/api/setup").json()["state"] == "active", timeout=20)
