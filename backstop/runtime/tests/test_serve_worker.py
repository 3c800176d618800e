"""`backstop serve` with its workflows in a worker process: the web process only enqueues, the child runs them,
starts again when it dies, and ends with the server."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx

from conftest import wait_for

PASSWORD = "correct horse battery"


def signup(server: Any, email: str) -> None:
    response = httpx.post(f"{server.url}/api/signup", timeout=30, json={
        "name": "Ann Lee", "email": email, "phone": "+1 415 555 0100", "company": "Acme", "password": PASSWORD})
    assert response.status_code == 201, response.text


def account_state(server: Any, email: str) -> str:
    return str(server.database.scalar("SELECT state FROM accounts_account WHERE email_key = ?", (email,)))


def worker_pid(server: Any) -> int | None:
    pid = server.database.scalar("SELECT pid FROM runtime_executor WHERE id = ?", ("web-1-workflows",))
    return int(pid) if pid else None


def is_running(pid: int) -> bool:
    """Whether the process exists and has not ended (an orphan nobody has reaped yet still has a /proc entry)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_it_runs_setup_in_a_worker_process_that_ends_with_the_killed_server(server_factory: Any) -> None:
    server = server_factory(executor_id="web-1", BACKSTOP_SERVE_WORKFLOWS="process").start()
    signup(server, "ann@example.com")

    wait_for(lambda: account_state(server, "ann@example.com") == "active", timeout=60,
             message=f"setup never finished:\n{server.log()}")
    pid = worker_pid(server)
    assert pid is not None and is_running(pid)
    assert pid != server.process.pid
    roles = dict(server.database.query("SELECT id, role FROM runtime_executor"))
    assert roles == {"web-1-workflows": "worker"}  # the web process runs no engine of its own

    server.kill()

    wait_for(lambda: not is_running(pid), timeout=15, message="the worker outlived the killed server")


def test_it_starts_its_worker_again_when_the_worker_dies(server_factory: Any) -> None:
    server = server_factory(executor_id="web-1", BACKSTOP_SERVE_WORKFLOWS="process").start()
    first = wait_for(lambda: worker_pid(server), timeout=60, message="the worker never reported in")

    os.kill(first, signal.SIGKILL)

    second = wait_for(lambda: (pid := worker_pid(server)) != first and pid, timeout=30,
                      message=f"no new worker after the first was killed:\n{server.log()}")
    assert is_running(second)
    signup(server, "bob@example.com")
    wait_for(lambda: account_state(server, "bob@example.com") == "active", timeout=60,
             message=f"the new worker never finished setup:\n{server.log()}")


def test_it_serves_the_web_only_and_leaves_workflows_to_separate_workers(server_factory: Any) -> None:
    web = server_factory(executor_id="web-1", BACKSTOP_SERVE_WORKFLOWS="none").start()
    signup(web, "cat@example.com")
    worker = server_factory(command="worker", executor_id="worker-1").start()

    wait_for(lambda: account_state(web, "cat@example.com") == "active", timeout=60,
             message=f"the separate worker never finished setup:\n{worker.log()}")
    assert [row[0] for row in web.database.query("SELECT id FROM runtime_executor")] == ["worker-1"]
