"""Shared test fixtures: the workflow engine on the test database, real server processes, an SMTP sink."""

from __future__ import annotations

import compileall
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.test import override_settings

ROOT = Path(__file__).resolve().parent

# Fast clocks for tests: retries in tens of milliseconds, small budgets, generous abuse limits.
FAST_SETTINGS = {
    "RETRY_BASE_SECONDS": 0.05,
    "RETRY_CAP_SECONDS": 0.2,
    "SETUP_MAX_ATTEMPTS": 4,
    "BREAKER_THRESHOLD": 50,
    "BREAKER_COOLDOWN_SECONDS": 0.3,
    "EMAIL_TIMEOUT": 0.5,
    "SMS_TIMEOUT": 0.5,
    "WORKSPACE_TIMEOUT": 0.5,
    "FAULT_SLOW_SECONDS": 0.1,
    "RATE_LIMIT_SCALE": 1.0,
    "FAULT_INJECTION": True,
    "QUEUE_POLL_SECONDS": 0.2,
    # In-process tests run the support cycle themselves, at the moments they choose.
    "SUPPORT_CYCLE_SECONDS": 3600.0,
    # ... and the breakers' probes (a probe closing a breaker a test opened by hand would end its outage early).
    "BREAKER_PROBE_SECONDS": 3600.0,
    # ... and reconciliation too: a 5-minute tick landing mid-test would settle what the test is about to check.
    "RECONCILE_SCHEDULE": "",
    # Argon2 at 1 MiB: a hash in 3 ms, not 120 ms (the suite hashes thousands of passwords; production keeps 100 MiB).
    "PASSWORD_ARGON2_MEMORY_KIB": 1024,
}
FAST_ENV = {
    "BACKSTOP_RETRY_BASE_SECONDS": "0.2",
    "BACKSTOP_RETRY_CAP_SECONDS": "1",
    "BACKSTOP_SETUP_MAX_ATTEMPTS": "1000",
    "BACKSTOP_BREAKER_COOLDOWN_SECONDS": "1",
    "BACKSTOP_EMAIL_TIMEOUT": "1",
    "BACKSTOP_SMS_TIMEOUT": "1",
    "BACKSTOP_WORKSPACE_TIMEOUT": "1",
    "BACKSTOP_FAULT_SLOW_SECONDS": "0.2",
    "BACKSTOP_HEARTBEAT_SECONDS": "1",
    "BACKSTOP_EXECUTOR_DEAD_AFTER_SECONDS": "4",
    "BACKSTOP_SWEEP_GRACE_SECONDS": "5",
    "BACKSTOP_QUEUE_POLL_SECONDS": "0.2",
    "BACKSTOP_RECONCILE_SCHEDULE": "",
    "BACKSTOP_PASSWORD_ARGON2_MEMORY_KIB": "1024",
}


@pytest.fixture(scope="session", autouse=True)
def fast_settings() -> Iterator[None]:
    with override_settings(**FAST_SETTINGS):
        yield


@pytest.fixture(scope="session", autouse=True)
def quick_postgresql_flush() -> Iterator[None]:
    """After a test with committed data, PostgreSQL empties only the tables that hold rows (docs/decisions.md,
    "The test suite's PostgreSQL flush"). Django's flush truncates all of them in one TRUNCATE, which costs PostgreSQL
    a new file per table (65 of them: 0.3-2 s a test); a test writes to a handful, and a DELETE of a few rows takes
    a millisecond. The foreign keys Django makes on PostgreSQL are deferred, so the order of the DELETEs is free."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate_all = DatabaseOperations.sql_flush

    def flush_what_holds_rows(self: Any, style: Any, tables: Any, *, reset_sequences: bool = False,
                              allow_cascade: bool = False) -> list[str]:
        if reset_sequences or not tables:
            return truncate_all(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        quoted = [self.quote_name(table) for table in tables]
        with self.connection.cursor() as cursor:
            # The names are Django's own tables, quoted by the backend.
            cursor.execute(" UNION ALL ".join(f"SELECT %s WHERE EXISTS (SELECT 1 FROM {name})"  # noqa: S608
                                              for name in quoted), list(quoted))
            holding = [row[0] for row in cursor.fetchall()]
        return ["SET CONSTRAINTS ALL DEFERRED;",
                *(f"DELETE FROM {name};" for name in holding)] if holding else []  # noqa: S608

    DatabaseOperations.sql_flush = flush_what_holds_rows  # type: ignore[method-assign]
    try:
        yield
    finally:
        DatabaseOperations.sql_flush = truncate_all  # type: ignore[method-assign]


def _test_database_url() -> str:
    """The workflow engine's tables live in the same database the test run uses."""
    from django.db import connection

    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(settings.DATA_DIR) / 'test-workflows.sqlite3'}"
    params = connection.settings_dict
    user = params.get("USER") or "postgres"
    host, port = params.get("HOST") or "127.0.0.1", params.get("PORT") or 5432
    return f"postgresql://{user}@{host}:{port}/{params['NAME']}"


@pytest.fixture(scope="session")
def workflow_engine(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """DBOS running in the test process against the test database (use with ``transactional_db``)."""
    from backstop.runtime import engine

    with django_db_blocker.unblock():
        url = _test_database_url()
        if url.startswith("sqlite:///"):
            for suffix in ("", "-wal", "-shm"):
                Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        with override_settings(DBOS_SYSTEM_DATABASE_URL=url, EXECUTOR_ID=f"pytest-{uuid.uuid4().hex[:8]}"):
            executor = engine.launch(role="test")
            try:
                yield executor
            finally:
                # No workflow of this run may go on writing to the database once the engine stops (pytest_unconfigure
                # then leaves without waiting for their threads).
                _cancel_live_workflows()
                engine.shutdown()


@pytest.fixture
def engine_db(workflow_engine: str, transactional_db: Any) -> Iterator[str]:
    """A test that runs workflows: committed data (workflow threads use their own connections)."""
    yield workflow_engine
    # A workflow left waiting by this test must not write into the next test's rows after the flush.
    _cancel_live_workflows()


@pytest.fixture
def workflows_finish_before_cleanup(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test's workflows end on their own before its rows are flushed (a step mid-write deadlocks the flush).

    A module opts in with ``pytestmark = pytest.mark.usefixtures("workflows_finish_before_cleanup", ...)``, so it is
    set up before the fixtures the test asks for; it does nothing for a test that does not use ``engine_db``.
    """
    if "engine_db" not in request.fixturenames:
        yield
        return
    from dbos import DBOS

    from backstop.runtime.dispatch import LIVE_WORKFLOW_STATUSES

    request.getfixturevalue("engine_db")  # set up inside this fixture, so torn down after it
    yield
    wait_for(lambda: not DBOS.list_workflows(status=list(LIVE_WORKFLOW_STATUSES), load_input=False,
                                             load_output=False),
             timeout=60, message="this test's workflows were still running")


@pytest.fixture
def local_mailbox(settings: Any) -> None:
    """Emails land in the demo mailbox table (pytest-django would otherwise swap in its in-memory outbox)."""
    settings.EMAIL_BACKEND = "backstop.notify.providers.LocalMailboxEmailBackend"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """The engine's dispatcher and supervisor, once started, run beside every later test: they wait while a test's
    fixtures are torn down, the flush that empties the database included (on PostgreSQL its TRUNCATE deadlocks with
    their transactions, and an aborted flush leaves the test's rows to the next one)."""
    from backstop.runtime import engine

    if not engine.is_running():
        return (yield)
    with engine.hold_background_threads():
        return (yield)


def _cancel_live_workflows() -> None:
    from dbos import DBOS

    live = DBOS.list_workflows(status=["PENDING", "ENQUEUED", "DELAYED"], load_input=False, load_output=False)
    if live:
        DBOS.cancel_workflows([w.workflow_id for w in live])
        # Cancelling stops a workflow at its next step, not inside the current one: let that step's transaction end
        # before the flush truncates the tables it writes (on PostgreSQL the two deadlock).
        time.sleep(0.5)


# --- Real server processes ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpSink:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    reply: str = "250 OK"  # what the sink answers a message with; a 5xx refuses it

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address.lower() in str(m["To"]).lower()]


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server on loopback that keeps what it receives."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if sink.reply.startswith("250"):
                sink.messages.append(message_from_bytes(envelope.content))
            return sink.reply

    controller = Controller(Handler(), hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@dataclass
class StubApi:
    """A tiny HTTP server on loopback standing in for a third-party API: records requests, answers as told."""

    url: str = ""
    status: int = 200
    body: bytes = b"{}"
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Computes (status, body) or (status, body, headers) from the recorded request when set, e.g. to answer
    # idempotently or with a Retry-After.
    reply: Any = None
    headers: dict[str, str] = field(default_factory=dict)  # sent with every answer that ``reply`` gives none for


@pytest.fixture
def fakemail(settings: Any) -> Iterator[Any]:
    """The fake Resend (backstop/notify/fakemail.py) on a free loopback port; our email goes to it through anymail."""
    from backstop.notify.fakemail import FakeMail

    fake = FakeMail().start()
    settings.EMAIL_BACKEND = "backstop.notify.providers.ResendEmailBackend"
    settings.ANYMAIL = {"RESEND_API_KEY": "re_test_key", "RESEND_API_URL": fake.url}
    settings.EMAIL_TIMEOUT = 1.0
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def stub_api() -> Iterator[StubApi]:
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    stub = StubApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            is_json = self.headers.get("Content-Type", "").startswith("application/json")
            stub.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": raw,
                                  "json": json.loads(raw) if is_json and raw else None})
            time.sleep(stub.delay)
            answer = stub.reply(stub.requests[-1]) if stub.reply else (stub.status, stub.body)
            status, body, headers = (*answer, stub.headers)[:3]
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting: exactly what the timeout tests provoke

        do_GET = do_POST  # a lookup: recorded and answered the same way (``reply`` can look at the method)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Database:
    """A throwaway database for server processes: a SQLite directory or a fresh PostgreSQL database."""

    data_dir: Path
    url: str  # DATABASE_URL, empty for SQLite
    # A copy of the migrated template: its processes start without `--migrate`, which on a database with nothing to
    # apply still cost every start about a second of CPU (the migration graph, twice, and the deploy guard's plan).
    migrated: bool = False

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not self.url:
            import sqlite3

            with sqlite3.connect(self.data_dir / "backstop.sqlite3", timeout=30) as conn:
                return conn.execute(sql, params).fetchall()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None


def _admin_url(base_url: str) -> str:
    return base_url.rsplit("/", 1)[0] + "/postgres"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One database migrated once per test run, which each server process's database starts as a copy of: a served
    test then pays a file copy (SQLite) or a template copy (PostgreSQL), not every migration (seconds each time).
    ``@pytest.mark.unmigrated_database`` gives a test an empty database instead."""
    base_url = os.environ.get("DATABASE_URL", "")
    data_dir = tmp_path_factory.mktemp("migrated-template")
    url = ""
    if base_url:
        import psycopg

        name = f"backstop_e2e_template_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(_admin_url(base_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = base_url.rsplit("/", 1)[0] + f"/{name}"
    template = Database(data_dir=data_dir, url=url)
    # Django's own entry point, not `backstop migrate`: that one records a deploy, which every copy would then hold.
    subprocess.run([sys.executable, "-m", "django", "migrate", "--verbosity", "0"], cwd=ROOT, check=True,
                   env={**os.environ, "BACKSTOP_DATA_DIR": str(data_dir), "DATABASE_URL": url,
                        "DJANGO_SETTINGS_MODULE": "backstop.settings"}, timeout=600, capture_output=True)
    yield template
    if base_url:
        import psycopg

        with psycopg.connect(_admin_url(base_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture
def server_database(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    base_url = os.environ.get("DATABASE_URL", "")
    template = None if request.node.get_closest_marker("unmigrated_database") else \
        request.getfixturevalue("migrated_template")
    if not base_url:
        if template is not None:
            import sqlite3

            with sqlite3.connect(template.data_dir / "backstop.sqlite3") as source, \
                    sqlite3.connect(tmp_path / "backstop.sqlite3") as copy:
                source.backup(copy)
        yield Database(data_dir=tmp_path, url="", migrated=template is not None)
        return
    import psycopg

    name = f"backstop_e2e_{uuid.uuid4().hex[:10]}"
    admin_url = _admin_url(base_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if template is None:
            conn.execute(f'CREATE DATABASE "{name}"')
        else:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template.url.rsplit("/", 1)[1]}"')
    try:
        yield Database(data_dir=tmp_path, url=base_url.rsplit("/", 1)[0] + f"/{name}", migrated=template is not None)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class ServerProcess:
    """`backstop serve` (or `worker`) in a real child process, killable with SIGKILL."""

    database: Database
    env: dict[str, str]
    command: str = "serve"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True, **extra_env: str) -> ServerProcess:
        env = {**os.environ, **self.env, **extra_env}
        args = [sys.executable, "-m", "backstop.cli", self.command, *([] if self.database.migrated else ["--migrate"])]
        if self.command == "serve":
            args += ["--port", str(self.port)]
        self.log_path = self.database.data_dir / f"{self.command}-{self.port}-{int(time.time() * 1000)}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        if wait and self.command == "serve":
            self.wait_until_up()
        return self

    def wait_until_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()}")
            try:
                # /healthz: the cheapest page that answers once the server listens (the schema took a render a poll).
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not come up:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def kill(self) -> None:
        """SIGKILL: no clean-up code runs, exactly like a crashed machine."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def server_factory(server_database: Database, smtp_sink: SmtpSink) -> Iterator[Any]:
    """Build server/worker processes sharing one database, mail going to the SMTP sink."""
    started: list[ServerProcess] = []

    def make(command: str = "serve", executor_id: str | None = None, **env: str) -> ServerProcess:
        base_env = {
            **FAST_ENV,
            "BACKSTOP_DATA_DIR": str(server_database.data_dir),
            "DATABASE_URL": server_database.url,
            "BACKSTOP_FAULT_INJECTION": "1",
            "BACKSTOP_DEMO_PAGES": "1",
            "BACKSTOP_EMAIL": "smtp",
            "BACKSTOP_SMTP_HOST": "127.0.0.1",
            "BACKSTOP_SMTP_PORT": str(smtp_sink.port),
            "BACKSTOP_EXECUTOR_ID": executor_id or f"{command}-{uuid.uuid4().hex[:6]}",
            "BACKSTOP_LOG_LEVEL": "WARNING",
            **env,
        }
        server = ServerProcess(database=server_database, env=base_env, command=command)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@dataclass
class FakePay:
    """`backstop fakepay` in a real child process with its own SQLite file (Stripe's API on loopback)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / f"fakepay-{self.port}.sqlite3"

    def start(self, *, webhook_url: str = "") -> FakePay:
        """Start (or restart) it; events go to ``webhook_url`` when given, signed with the default secret."""
        args = [sys.executable, "-m", "backstop.cli", "fakepay", "--port", str(self.port), "--db", str(self.db_path)]
        if webhook_url:
            args += ["--webhook-url", webhook_url]
        self.log_path = self.data_dir / f"fakepay-{self.port}.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"fakepay exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/_fakepay/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"fakepay did not come up:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import sqlite3

        with sqlite3.connect(self.db_path, timeout=30) as conn:
            return conn.execute(sql, params).fetchall()

    def set_fault(self, mode: str) -> None:
        httpx.post(f"{self.url}/_fakepay/faults", json={"mode": mode}, timeout=10).raise_for_status()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def fakepay(tmp_path: Path) -> Iterator[FakePay]:
    """A fake payment processor; call ``.start(webhook_url=...)``, then point STRIPE_API_BASE at ``.url``."""
    processor = FakePay(data_dir=tmp_path)
    yield processor
    processor.stop()


def wait_for(condition: Any, *, timeout: float = 30, interval: float = 0.1, message: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        time.sleep(interval)


def setup_finished(account: Any, timeout: float = 30) -> dict[str, bool]:
    """Once the account's setup has ended (its batch, then its own workflow if it needed one): each step done or not.

    The test fails unless every workflow involved ended successfully.
    """
    from dbos import DBOS

    from backstop.accounts.models import Account, SetupStep, StepStatus
    from backstop.accounts.setup import LIVE_WORKFLOW_STATUSES

    def ended() -> dict[str, list[Any]] | None:
        fresh = Account.objects.get(pk=account.pk)
        if not fresh.setup_batch:
            return None  # no setup batch has claimed it yet
        if SetupStep.objects.filter(account=fresh).exclude(status__in=(StepStatus.DONE, StepStatus.FAILED)).exists():
            return None
        workflows = [DBOS.get_workflow_status(fresh.setup_batch), DBOS.get_workflow_status(fresh.setup_workflow_id)]
        statuses = [status for status in workflows if status is not None]
        if any(status.status in LIVE_WORKFLOW_STATUSES for status in statuses):
            return None
        return {"workflows": statuses}

    ended_with = wait_for(ended, timeout=timeout, message=f"setup of account {account.pk} did not finish")
    for status in ended_with["workflows"]:
        assert status.status == "SUCCESS", status.error
    return {step.name: step.status == StepStatus.DONE for step in SetupStep.objects.filter(account_id=account.pk)}


def pytest_configure(config: Any) -> None:
    Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)
    # Bytecode for the project's modules, which every server, worker and command the suite starts reads instead of
    # compiling all of them again (about 0.4 s of CPU a start where PYTHONDONTWRITEBYTECODE is set, as on CI).
    compileall.compile_dir(ROOT / "backstop", quiet=1, workers=0)


# Tests whose result cannot depend on the suite's database: framework-free helpers, fakepay (its own SQLite file
# whatever the suite runs on), the message catalogues, and the demo's ports (it always runs on SQLite). They run in
# the SQLite suite only (docs/decisions.md, "Tests that cannot see the database run once"); one that asks for the
# database after all (a database fixture or mark) runs in both.
DATABASE_INDEPENDENT = (
    "backstop/lib/tests/",
    "backstop/fakepay/tests/",
    "backstop/accounts/tests/test_messages.py",
    "backstop/incidents/tests/test_messages.py",
    "backstop/notify/tests/test_plain_text.py",
    "backstop/demo/tests/test_demo_ports.py",
)
DATABASE_FIXTURES = frozenset({"db", "transactional_db", "engine_db", "workflow_engine", "server_database",
                               "server_factory", "migrated_template", "live_server"})


def pytest_collection_modifyitems(config: Any, items: list[pytest.Item]) -> None:
    """Browser tests run in the SQLite suite only (docs/decisions.md, "Browser tests run once"): what they check is
    the page and its script; what the database does under each step is checked on both databases by the tests of
    the services and the HTTP API. Any test module driving Playwright counts as a browser test. So do the tests that
    cannot see the database (``DATABASE_INDEPENDENT``)."""
    if not os.environ.get("DATABASE_URL"):
        return
    once = pytest.mark.skip(reason="browser tests run in the SQLite suite only (docs/decisions.md)")
    independent = pytest.mark.skip(reason="it cannot see the database: it runs in the SQLite suite only "
                                          "(docs/decisions.md)")
    for item in items:
        if _drives_a_browser(getattr(item, "module", None)):
            item.add_marker(once)
        elif _cannot_see_the_database(item):
            item.add_marker(independent)


def _cannot_see_the_database(item: pytest.Item) -> bool:
    path = Path(str(item.path)).relative_to(ROOT).as_posix()
    return (path.startswith(DATABASE_INDEPENDENT) and item.get_closest_marker("django_db") is None
            and not DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def _drives_a_browser(module: Any) -> bool:
    """A test module that imports anything of Playwright's (its Browser, Page or expect) drives a browser."""
    return module is not None and any(str(getattr(value, "__module__", "")).startswith("playwright")
                                      for value in vars(module).values())


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: Any) -> None:
    """Exit as soon as pytest has reported: the interpreter's exit joins every workflow thread, and DBOS lets a
    workflow that was waiting out a retry (cancelled or not) sleep until its wait ends, which can be an hour."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(getattr(config, "_backstop_exit_status", 0)))


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    session.config._backstop_exit_status = int(exitstatus)
