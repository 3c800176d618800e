"""The production layout on one machine (two web processes serving, two workers apart, one database) carries signups
through; once its workers are dead /readyz says so while /healthz stays alive; every log line is JSON naming its
request."""

from __future__ import annotations

import json
from typing import Any

import httpx

from backstop.runtime.tests.test_serve_worker import account_state, signup
from conftest import SmtpSink, wait_for

TOKEN = "served-metrics-token-" + "y" * 30
STARTUP_SECONDS = 180  # a fresh database's migrations take a minute and more on a busy 2-core machine
BANNER_PREFIXES = ("Backstop serving on", "Backstop worker")  # the start-up line a person reads, printed, not logged


def readiness(server: Any) -> httpx.Response:
    return httpx.get(f"{server.url}/readyz", timeout=10)


def json_log_lines(server: Any) -> list[dict[str, Any]]:
    lines = [line for line in server.log().splitlines() if line.strip() and not line.startswith(BANNER_PREFIXES)]
    return [json.loads(line) for line in lines]  # any line that is not one JSON object fails here


def _has_reported_in(process: Any, executor_id: str) -> bool:
    try:
        return bool(process.database.scalar("SELECT COUNT(*) FROM runtime_executor WHERE id = ?", (executor_id,)))
    except Exception:  # the table is not there until the process has migrated
        return False


def test_it_carries_signups_through_two_web_and_two_worker_processes_and_is_unready_once_they_die(
        server_factory: Any, smtp_sink: SmtpSink) -> None:
    # One scenario, to start the four processes once: the layout works, then its workers die.
    json_logs = {"BACKSTOP_LOG_FORMAT": "json", "BACKSTOP_LOG_LEVEL": "INFO"}
    webs = [server_factory(executor_id=f"web-{n}", BACKSTOP_SERVE_WORKFLOWS="none", BACKSTOP_METRICS_TOKEN=TOKEN,
                           **json_logs) for n in (1, 2)]
    workers = [server_factory(command="worker", executor_id=f"worker-{n}", **json_logs) for n in (1, 2)]
    # One process migrates first, as a deploy does before it starts the others (docs/deploy.md): several migrating
    # one empty database at once would race to create the same tables.
    workers[0].start()
    wait_for(lambda: _has_reported_in(workers[0], "worker-1"), timeout=STARTUP_SECONDS,
             message=f"the first worker never reported in:\n{workers[0].log()}")
    for process in (workers[1], *webs):
        process.start(wait=False)
    for web in webs:
        web.wait_until_up(timeout=STARTUP_SECONDS)
    emails = [f"owner{n}@example.com" for n in range(4)]

    for n, email in enumerate(emails):
        signup(webs[n % 2], email)

    for email in emails:
        wait_for(lambda email=email: account_state(webs[0], email) == "active", timeout=90,
                 message=f"{email} never became active:\n{workers[0].log()}\n{workers[1].log()}")
        wait_for(lambda email=email: smtp_sink.to(email), timeout=60, message=f"no email reached {email}")
    executors = {row[0] for row in webs[0].database.query("SELECT id FROM runtime_executor")}
    assert executors == {"worker-1", "worker-2"}  # the web processes run no workflows
    for web in webs:
        assert readiness(web).status_code == 200
    # Both web processes read the same figures from the database, whichever served the signups.
    figures = [httpx.get(f"{web.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
               for web in webs]
    workspace_steps = 'backstop_operation_rows{kind="workspace",operation="setup"}'
    setup_rows = [[line for line in text.splitlines() if line.startswith(workspace_steps)] for text in figures]
    assert setup_rows[0] == setup_rows[1] == [f"{workspace_steps} 4.0"]

    for worker in workers:
        worker.kill()

    for web in webs:
        failing = wait_for(lambda web=web: (answer := readiness(web)).status_code == 503 and answer, timeout=30,
                           message="/readyz stayed ready after every worker was killed")
        body = failing.json()
        assert body["failed"] == ["workers"]
        assert "backstop worker" in body["checks"]["workers"]["detail"]
        assert httpx.get(f"{web.url}/healthz", timeout=10).status_code == 200  # alive all the same: nothing to restart
        lines = json_log_lines(web)
        assert all({"time", "level", "logger", "message", "request_id", "workflow_id"} <= set(line) for line in lines)
        refused = [line for line in lines if "/readyz" in line["message"]]
        assert refused and refused[-1]["request_id"] == failing.headers["X-Request-ID"]
    for worker in workers:
        assert json_log_lines(worker), "a worker logged nothing at INFO"
