"""Stopping a process: SIGTERM ends it promptly, even while one of its workflows waits out a long retry."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import httpx

from conftest import wait_for

ANN = {"name": "Ann Lee", "email": "ann@example.com", "phone": "+1 415 555 0100", "company": "Acme",
       "password": "correct horse battery"}


def test_it_stops_on_sigterm_while_a_setup_waits_ten_minutes_for_its_next_try(server_factory: Any) -> None:
    server = server_factory(BACKSTOP_FAULTS="email=error", BACKSTOP_RETRY_BASE_SECONDS="600",
                            BACKSTOP_RETRY_CAP_SECONDS="600").start()
    assert httpx.post(f"{server.url}/api/signup", json=ANN, timeout=30).status_code == 201

    def email_waits_for_its_next_try() -> bool:
        status = server.database.scalar(
            "SELECT s.status FROM accounts_setupstep s JOIN accounts_account a ON a.id = s.account_id "
            "WHERE a.email_key = ? AND s.name = 'welcome_email'", (ANN["email"],))
        return bool(status == "retrying")

    wait_for(email_waits_for_its_next_try, timeout=30, message="the welcome email never failed its first try")
    time.sleep(1)  # the account's own workflow is now asleep until its next try

    process = server.process
    assert process is not None
    process.terminate()
    try:
        exit_code = process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the server was still running 20 s after SIGTERM:\n{server.log()}") from None
    assert exit_code == 0, server.log()
    # Nothing was lost: the account still waits for its email, to be picked up by the next process to start.
    assert email_waits_for_its_next_try()
