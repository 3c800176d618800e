"""The half-failed signup, replayed over real HTTP against real server processes."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

import httpx

from conftest import wait_for

ANN = {"name": "Ann Lee", "email": "ann@example.com", "phone": "+1 415 555 0100", "company": "Acme",
       "password": "correct horse battery"}


def _setup(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/api/setup")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _steps(setup: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in setup["steps"]}


def test_it_finishes_a_half_failed_signup_once_the_providers_answer(server_factory: Any, smtp_sink: Any) -> None:
    server = server_factory(BACKSTOP_FAULTS="email=timeout,workspace=error").start()
    browser = httpx.Client(base_url=server.url, timeout=30)

    created = browser.post("/api/signup", json=ANN)
    assert created.status_code == 201, created.text
    assert created.json()["account"]["state"] == "setting_up"

    def both_steps_failing() -> bool:
        steps = _steps(_setup(browser))
        return steps["workspace"]["status"] in ("retrying", "waiting") and steps["welcome_email"]["attempts"] >= 1

    wait_for(both_steps_failing, timeout=30, message="setup never reported its failing steps")
    steps = _steps(_setup(browser))
    assert "error" in steps["workspace"]["last_error"]
    assert "did not answer" in steps["welcome_email"]["last_error"]

    # Login on the pending account: the truth, not "account not found".
    other_device = httpx.Client(base_url=server.url, timeout=30)
    login = other_device.post("/api/login", json={"email": "ANN@example.com", "password": ANN["password"]})
    assert login.status_code == 200, login.text
    assert login.json()["state"] == "setting_up"
    assert login.json()["setup"]["steps"]

    # Signup again with another password: "exists", nothing changed, the owner is told.
    taken = httpx.post(f"{server.url}/api/signup", json={**ANN, "password": "another long passphrase"})
    assert taken.status_code == 409
    assert taken.json()["code"] == "email_taken"
    assert "setting" not in taken.text.lower()
    again = httpx.post(f"{server.url}/api/login", json={"email": ANN["email"], "password": ANN["password"]})
    assert again.status_code == 200

    # Signup again with the same password: resumed, signed in.
    resumed = httpx.post(f"{server.url}/api/signup", json=ANN)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["resumed"] is True

    cleared = httpx.post(f"{server.url}/demo/api/faults", json={"email": "ok", "workspace": "ok"})
    assert cleared.status_code == 200

    wait_for(lambda: _setup(browser)["state"] == "active", timeout=60, message="account never became active")
    wait_for(lambda: _steps(_setup(browser))["welcome_email"]["status"] == "done", timeout=60)

    database = server.database
    assert database.scalar("SELECT COUNT(*) FROM workspaces_workspace") == 1
    assert database.scalar("SELECT COUNT(*) FROM workspaces_localprovisionedworkspace") == 1
    assert database.scalar("SELECT COUNT(*) FROM accounts_account WHERE email_key = ?", ("ann@example.com",)) == 1
    welcome = [m for m in smtp_sink.to("ann@example.com") if str(m["Subject"]).startswith("Welcome")]
    assert len(welcome) == 1
    wait_for(lambda: any("tried to create" in str(m["Subject"]) for m in smtp_sink.to("ann@example.com")),
             timeout=30, message="the owner was not told about the signup attempt")
    # The setup page said it would email her when the workspace was ready: once.
    def subjects() -> list[str]:
        return [str(m["Subject"]) for m in smtp_sink.to("ann@example.com")]

    wait_for(lambda: "Your Backstop workspace is ready" in subjects(), timeout=30,
             message="the owner was not told the workspace is ready")
    assert subjects().count("Your Backstop workspace is ready") == 1


def test_it_finishes_setup_exactly_once_after_the_server_is_killed(server_factory: Any, smtp_sink: Any) -> None:
    server = server_factory(executor_id="web-1", BACKSTOP_FAULTS="workspace=error").start()
    client = httpx.Client(base_url=server.url, timeout=30)
    assert client.post("/api/signup", json=ANN).status_code == 201
    wait_for(lambda: _steps(_setup(client))["workspace"]["attempts"] >= 2, timeout=30)

    server.kill()
    restarted = server_factory(executor_id="web-1").start()
    httpx.post(f"{restarted.url}/demo/api/faults", json={"workspace": "ok"})

    database = server.database
    wait_for(lambda: database.scalar("SELECT state FROM accounts_account WHERE email_key = ?",
                                     ("ann@example.com",)) == "active", timeout=60,
             message="setup did not finish after the restart")
    assert database.scalar("SELECT COUNT(*) FROM workspaces_workspace") == 1
    assert database.scalar("SELECT COUNT(*) FROM workspaces_localprovisionedworkspace") == 1
    assert database.scalar("SELECT COUNT(*) FROM accounts_accountevent WHERE kind = 'activated'") == 1
    assert database.scalar("SELECT COUNT(*) FROM accounts_accountevent WHERE kind = 'step_done'") == 2
    assert len([m for m in smtp_sink.to("ann@example.com") if str(m["Subject"]).startswith("Welcome")]) == 1


def test_it_lets_a_live_process_finish_the_workflows_of_a_dead_one(server_factory: Any) -> None:
    web = server_factory(executor_id="web-a", BACKSTOP_FAULTS="workspace=error").start()
    client = httpx.Client(base_url=web.url, timeout=30)
    assert client.post("/api/signup", json=ANN).status_code == 201
    # Attempt 1 is the setup batch's; attempt 2 is the account's own workflow, running in (owned by) the web process.
    wait_for(lambda: _steps(_setup(client))["workspace"]["attempts"] >= 2, timeout=30)

    worker = server_factory(command="worker", executor_id="worker-b").start()
    database = web.database
    # A crashed machine: the web process and, where it runs its workflows in a child (`BACKSTOP_SERVE_WORKFLOWS`),
    # that child die at once. Killing the web process alone would give the child a moment to finish the setup itself
    # while it shuts down, once the provider works again.
    engine_pids = [pid for (pid,) in database.query("SELECT pid FROM runtime_executor WHERE id LIKE ?", ("web-a%",))]
    web.kill()
    for pid in engine_pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    database.query("UPDATE demo_faultsetting SET mode = 'ok'")

    wait_for(lambda: database.scalar("SELECT state FROM accounts_account WHERE email_key = ?",
                                     ("ann@example.com",)) == "active", timeout=60,
             message=f"the worker did not take over within 60 s:\n{worker.log()}")
    # The web process's executor: itself, or the worker process it started (`BACKSTOP_SERVE_WORKFLOWS`).
    claimers = database.query("SELECT taken_over_by FROM runtime_executor WHERE id LIKE ?", ("web-a%",))
    assert {claimer for (claimer,) in claimers} == {"worker-b"}
    assert database.scalar("SELECT COUNT(*) FROM workspaces_workspace") == 1
