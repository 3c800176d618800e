"""A draft save reads who is signed in without Django's session and user loads (drafts/signed_in.py), and a session
still ends at once: a logout or a password change in one web process, and the very next save in another is refused.

The served tests run real `backstop serve` processes on one database, over real HTTP.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from backstop.drafts.models import Draft
from backstop.support.tests.helpers import desk_client, staff_account
from conftest import ROOT, wait_for

OWNER = {"email": "ann@example.com", "password": "correct horse battery"}
SEED = f"""
from backstop.accounts.models import Account, AccountState
ann = Account.objects.create(email={OWNER['email']!r}, email_key={OWNER['email']!r}, name="Ann Lee", company="Acme",
                             state=AccountState.ACTIVE)
ann.set_password({OWNER['password']!r})
ann.save()
"""


def _save(client: Any, surface: str, text: str, *, base: int, scope: str = "") -> Any:
    token = client.cookies["csrftoken"]
    token = token if isinstance(token, str) else token.value
    body = json.dumps({"fields": {"body": text}, "base_version": base, "save_id": str(uuid.uuid4()), "device": "t",
                       "scope": scope})
    if isinstance(client, httpx.Client):
        return client.put(f"/api/drafts/{surface}", content=body, headers={
            "X-CSRFToken": token, "Content-Type": "application/json"})
    return client.put(f"/api/drafts/{surface}", body, content_type="application/json", headers={"X-CSRFToken": token})


# --- In-process: the fast path's statements, and what it leaves to Django ---------------------------------------


@pytest.mark.django_db
def test_it_saves_a_signed_in_draft_in_two_statements_the_session_with_the_account_and_the_update() -> None:
    client = desk_client(staff_account(email="ann@example.com", is_staff=False, permissions=()))
    client.get("/support/contact")  # the CSRF cookie
    assert _save(client, "note:1", "first", base=0).status_code == 200
    assert _save(client, "note:1", "second", base=1).status_code == 200  # this process now knows the session's account

    with CaptureQueriesContext(connection) as queries:
        saved = _save(client, "note:1", "third", base=2)

    assert saved.status_code == 200 and saved.json()["version"] == 3
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 2, statements
    assert "django_session" in statements[0] and "accounts_account" in statements[0]
    assert statements[1].startswith("UPDATE")
    assert Draft.objects.get(surface="note:1").fields == {"body": "third"}


@pytest.mark.django_db
def test_it_leaves_a_session_whose_password_changed_to_django_which_ends_it() -> None:
    account = staff_account(email="ann@example.com", is_staff=False, permissions=())
    client = desk_client(account)
    scope = client.get("/support/contact")["Backstop-Drafts-Scope"]
    assert _save(client, "note:1", "mine", base=0, scope=scope).status_code == 200
    session_key = client.cookies["sessionid"].value

    account.set_password("a different passphrase")
    account.save()

    refused = _save(client, "note:1", "after the change", base=1, scope=scope)
    assert refused.status_code == 403 and refused.json()["code"] == "not_your_page"
    from django.contrib.sessions.models import Session

    assert not Session.objects.filter(session_key=session_key).exists()  # flushed, as Django does
    assert Draft.objects.get(surface="note:1").fields == {"body": "mine"}


@pytest.mark.django_db
def test_it_treats_a_made_up_or_tampered_session_cookie_as_nobody() -> None:
    client = desk_client(staff_account(email="ann@example.com", is_staff=False, permissions=()))
    scope = client.get("/support/contact")["Backstop-Drafts-Scope"]
    assert _save(client, "note:1", "mine", base=0, scope=scope).status_code == 200
    real = client.cookies["sessionid"].value
    for forged in (real[:-1] + ("a" if real[-1] != "a" else "b"), "x" * 32, "' OR 1=1 --"):
        stranger = Client()
        stranger.get("/support/contact")
        stranger.cookies["sessionid"] = forged
        response = _save(stranger, "note:1", "overwritten?", base=1, scope=scope)
        assert response.status_code == 403, forged
    assert Draft.objects.get(surface="note:1").fields == {"body": "mine"}


# --- Served: two web processes, one database -------------------------------------------------------------------


def _seed(server: Any) -> None:
    subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", SEED], env={**os.environ, **server.env},
                   cwd=ROOT, check=True, capture_output=True, timeout=120)


def _browser(server: Any, cookies: httpx.Cookies | None = None) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, cookies=cookies)


def _signed_in(server: Any) -> httpx.Client:
    client = _browser(server)
    assert client.post("/api/login", json=OWNER).status_code == 200
    assert client.get("/support/contact").status_code == 200  # the CSRF cookie
    return client


def _scope(client: httpx.Client) -> str:
    return client.get("/support/contact").headers["Backstop-Drafts-Scope"]


@pytest.fixture
def two_web_servers(server_factory: Any) -> tuple[Any, Any]:
    """Two `backstop serve` on one database, the way several run behind a proxy (only the first runs workflows)."""
    first = server_factory()
    first.start(BACKSTOP_BASE_URL=first.url)
    second = server_factory()
    second.start(BACKSTOP_BASE_URL=first.url, BACKSTOP_SERVE_WORKFLOWS="none")
    _seed(first)
    return first, second


def test_it_ends_a_session_in_every_web_process_the_moment_it_logs_out_in_one(two_web_servers: Any) -> None:
    first, second = two_web_servers
    ann = _signed_in(first)
    scope = _scope(ann)
    elsewhere = _browser(second, ann.cookies)  # the same browser, its next request sent to the other process
    assert _save(elsewhere, "note:1", "typed", base=0, scope=scope).status_code == 200
    assert _save(elsewhere, "note:1", "typed more", base=1, scope=scope).status_code == 200

    assert ann.post("/logout", headers={"X-CSRFToken": ann.cookies["csrftoken"]}).status_code == 302

    # The old cookie, replayed to the other process at once: no save, no read.
    stale = _browser(second)
    stale.cookies.set("sessionid", elsewhere.cookies["sessionid"])
    stale.cookies.set("csrftoken", elsewhere.cookies["csrftoken"])
    refused = _save(stale, "note:1", "after logout", base=2, scope=scope)
    assert refused.status_code == 403 and refused.json()["code"] == "not_your_page"
    assert stale.get("/api/drafts/note:1").status_code == 404
    # Signed in again, the draft is where it was.
    assert _signed_in(second).get("/api/drafts/note:1").json()["fields"] == {"body": "typed more"}


def test_it_logs_other_sessions_out_of_every_web_process_the_moment_the_password_changes(
    two_web_servers: Any, smtp_sink: Any
) -> None:
    first, second = two_web_servers
    laptop = _signed_in(second)
    scope = _scope(laptop)
    assert _save(laptop, "note:1", "typed on the laptop", base=0, scope=scope).status_code == 200
    assert _save(laptop, "note:1", "typed more on the laptop", base=1, scope=scope).status_code == 200

    phone = _browser(first)
    assert phone.post("/api/recover", json={"email": OWNER["email"]}).status_code == 202
    message = wait_for(lambda: [m for m in smtp_sink.to(OWNER["email"]) if "sign-in code" in str(m["Subject"])],
                       timeout=30, message="the sign-in code never arrived")
    code = re.search(r"sign-in code: (\d{6})", str(message[-1]["Subject"]))
    assert code
    changed = phone.post("/api/recover/verify", json={"email": OWNER["email"], "code": code.group(1),
                                                      "new_password": "lantern orchard plum"})
    assert changed.status_code == 200, changed.text

    refused = _save(laptop, "note:1", "typed after the change", base=2, scope=scope)
    assert refused.status_code == 403 and refused.json()["code"] == "not_your_page"
    assert laptop.get("/api/drafts/note:1").status_code == 404


def _children_of(pid: int) -> list[int]:
    """Every child, whichever thread started it (a restarted one comes from the thread that watches it)."""
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def _command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_it_serves_one_port_from_several_web_processes_and_starts_a_dead_one_again(server_factory: Any) -> None:
    server = server_factory()  # its database is a migrated copy: no --migrate
    # On SQLite too (the test suite's default), with the workflows in their own process as on PostgreSQL.
    args = [sys.executable, "-m", "backstop.cli", "serve", "--port", str(server.port), "--web-processes", "2"]
    with open(server.database.data_dir / "serve-two.log", "wb") as log:
        server.process = subprocess.Popen(args, env={**os.environ, **server.env, "BACKSTOP_SERVE_WORKFLOWS": "process",
                                                     "BACKSTOP_BASE_URL": server.url},
                                          stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    server.log_path = server.database.data_dir / "serve-two.log"
    server.wait_until_up()
    web = wait_for(lambda: [p for p in _children_of(server.process.pid) if "--listen-fd" in _command_line(p)],
                   timeout=30, message="no second web process")
    assert len(web) == 1

    # With the first process frozen, the port is still answered: the second accepts on the same socket (once it is up:
    # it loads Django after it starts).
    wait_for(lambda: _answered_with_the_first_frozen(server), timeout=90, interval=1,
             message="the second web process never answered")

    os.kill(web[0], signal.SIGKILL)
    again = wait_for(lambda: [p for p in _children_of(server.process.pid)
                              if "--listen-fd" in _command_line(p) and p != web[0]],
                     timeout=30, message="the dead web process was not started again")
    assert len(again) == 1
    wait_for(lambda: _answered_with_the_first_frozen(server), timeout=90, interval=1,
             message="the restarted web process never answered")


def _answered_with_the_first_frozen(server: Any) -> bool:
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        return httpx.get(f"{server.url}/api/drafts/ping", timeout=3).status_code == 204
    except httpx.HTTPError:
        return False
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def test_it_refuses_several_web_processes_that_would_each_run_the_workflows(server_factory: Any) -> None:
    server = server_factory()
    refused = subprocess.run(
        [sys.executable, "-m", "backstop.cli", "serve", "--port", str(server.port), "--web-processes", "2"],
        env={**os.environ, **server.env, "BACKSTOP_SERVE_WORKFLOWS": "inside"}, cwd=ROOT, capture_output=True,
        timeout=120)
    assert refused.returncode != 0
    assert b"--web-processes above 1 needs the workflows in a process of their own" in refused.stderr


def test_it_refuses_several_web_processes_on_sqlite_before_migrating(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BACKSTOP_SERVE_WORKFLOWS")}
    refused = subprocess.run(
        [sys.executable, "-m", "backstop.cli", "serve", "--port", "0", "--web-processes", "2", "--migrate"],
        env={**env, "BACKSTOP_DATA_DIR": str(tmp_path)}, cwd=ROOT, capture_output=True, timeout=120)
    assert refused.returncode != 0
    assert b"--web-processes above 1 needs the workflows in a process of their own" in refused.stderr
    # Nothing was migrated: the database file has no tables, if it was opened at all.
    database = tmp_path / "backstop.sqlite3"
    tables = (sqlite3.connect(database).execute("select count(*) from sqlite_master where type = 'table'").fetchone()[0]
              if database.exists() else 0)
    assert tables == 0
