"""Promises kept over real HTTP against `backstop serve` (the tester's round on issue 17): "we'll email you when it's
done" is kept when it is done, whether or not the case is resolved; "Try again now" while the provider is down says
so, and the setup page keeps no stale next-try time."""

from __future__ import annotations

import time
from typing import Any

import httpx

from backstop.support.tests.test_promises_server import _set_faults, _signed_up, _text
from conftest import wait_for


def _csrf(browser: httpx.Client) -> dict[str, str]:
    return {"X-CSRFToken": browser.cookies.get("csrftoken") or ""}


def test_it_emails_when_done_as_promised_although_the_case_stays_open_for_a_person(
    server_factory: Any, smtp_sink: Any,
) -> None:
    # The breaker opens after five failures (after she wrote in): her setup waits on the provider in her case.
    server = server_factory(BACKSTOP_BREAKER_THRESHOLD="5", BACKSTOP_BREAKER_PROBE_SECONDS="1",
                            BACKSTOP_SUPPORT_CYCLE_SECONDS="1").start()
    _set_faults(server, workspace="error")
    browser = _signed_up(server, "wendy@example.com")
    time.sleep(0.5)

    answer = browser.post("/api/support/contact", headers=_csrf(browser), timeout=60,
                          json={"email": "wendy@example.com", "message": "My workspace is not there"})

    assert answer.status_code in (200, 202), answer.text
    database = server.database
    wait_for(lambda: database.scalar("SELECT answered_at FROM support_contact"), timeout=60, message="no answer")
    assert database.scalar("SELECT finding FROM support_contact") == "setup_needs_human"
    ack = wait_for(lambda: [m for m in smtp_sink.to("wendy@example.com") if "got your message" in str(m["Subject"])],
                   timeout=30, message="no acknowledgement")[0]
    assert "We'll email you when it's done" in _text(ack)
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM support_signal WHERE kind = 'setup_delayed'"), timeout=30,
             message=f"her setup never waited on the provider in her case:\n{server.log()}")
    _set_faults(server, workspace="ok")

    wait_for(lambda: database.scalar("SELECT state FROM accounts_account") == "active", timeout=60,
             message=f"the setup never finished:\n{server.log()}")
    ready = wait_for(lambda: [m for m in smtp_sink.to("wendy@example.com") if "ready" in str(m["Subject"])],
                     timeout=30, message="the promised email never came")
    assert len(ready) == 1
    wait_for(lambda: not database.scalar("SELECT COUNT(*) FROM support_commitment WHERE kind = 'email_when_done' "
                                         "AND kept_at IS NULL"), timeout=10, message="the promise is not kept")
    time.sleep(2.5)  # more support cycles: the email is sent once
    assert len([m for m in smtp_sink.to("wendy@example.com") if "ready" in str(m["Subject"])]) == 1
