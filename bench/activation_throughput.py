"""Activation throughput: account setups completed per second, in-process, on SQLite and PostgreSQL.

Accounts, their setup steps and welcome messages are inserted directly, as signup leaves them (one
precomputed password hash, so Argon2 is not counted), while the setup queues are held (worker concurrency
0); then the queues are released and the clock runs until every account is active with both steps done.
The setup batches (setup_batch_workflow) make the first attempts, SETUP_BATCH_SIZE accounts each.

It then measures what one workflow per account would cost the engine alone: as many workflows of the
per-account setup workflow's shape (two steps) that do nothing, through the setup queue with the same
settings. That floor of DBOS bookkeeping is why first attempts run in batches (docs/decisions.md).

Each database runs in a fresh child process (Django settings and DBOS are process-global):

    .venv/bin/python bench/activation_throughput.py [--accounts 1000] [--profile]
    .venv/bin/python bench/activation_throughput.py --database-url postgres://USER@HOST:PORT/ANY_DB

Without --database-url it runs SQLite and, when 127.0.0.1:5432 answers, PostgreSQL too (a fresh database
``backstop_bench_<random>``, dropped afterwards). Engine settings come from the environment as usual,
e.g. BACKSTOP_SETUP_CONCURRENCY=100 or BACKSTOP_QUEUE_POLL_SECONDS=0.05.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from dbos import DBOS, Queue

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
TARGET_PER_SECOND = 100.0  # on PostgreSQL
PASSWORD = "correct horse battery staple"


# Registered at import, before the engine launches in the child.
@DBOS.step()
def do_nothing(n: int) -> int:
    return n


@DBOS.workflow()
def empty_setup_workflow(n: int) -> int:
    """The setup workflow's shape (two steps) with no work in them: what the engine itself costs."""
    do_nothing(n)
    do_nothing(n)
    return n


# --- Parent: one child process per database ------------------------------------------------------------

def postgres_answers(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        socket.create_connection((host, port), 1).close()
    except OSError:
        return False
    return True


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    import psycopg

    base = server_url.split("?", 1)[0].rsplit("/", 1)[0]
    name = f"backstop_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_child(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="backstop-bench-activation-") as data_dir:
        result_file = Path(data_dir) / "result.json"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "backstop.settings",
            "BACKSTOP_DATA_DIR": data_dir,
            "DATABASE_URL": database_url,
            "BACKSTOP_EXECUTOR_ID": f"bench-{uuid.uuid4().hex[:6]}",
            "BACKSTOP_LOG_LEVEL": os.environ.get("BACKSTOP_LOG_LEVEL", "WARNING"),
        }
        command = [sys.executable, str(Path(__file__).resolve()), "--child", "--accounts", str(args.accounts),
                   "--timeout", str(args.timeout), "--result-file", str(result_file)]
        if args.profile:
            command += ["--profile", "--profile-inline", str(args.profile_inline)]
        completed = subprocess.run(command, env=env, cwd=ROOT, check=False)
        if completed.returncode != 0 or not result_file.exists():
            return {"database": "PostgreSQL" if database_url else "SQLite", "error": f"exit {completed.returncode}"}
        result: dict[str, Any] = json.loads(result_file.read_text())
        return result


def print_table(results: list[dict[str, Any]]) -> None:
    header = (f"{'database':<12} {'accounts':>8} {'done':>6} {'seconds':>8} {'setups/s':>9} {'batches':>7} "
              f"{'in flight':>9} {'cpu ms/setup':>12} {'machine':>7} {'1 wf/account floor/s':>20}  target")
    print("\nAccount setups completed per second (a backlog of waiting accounts: queues released -> every account "
          "active, both steps done)")
    print(header)
    print("-" * len(header))
    for r in results:
        if "error" in r:
            print(f"{r['database']:<12} failed: {r['error']}")
            continue
        rate = r["completed"] / r["seconds"] if r["seconds"] else 0.0
        in_flight = "-" if r["mean_in_flight"] is None else f"{r['mean_in_flight']:.1f}"
        target = f">= {TARGET_PER_SECOND:g}/s: {'met' if rate >= TARGET_PER_SECOND else 'NOT met'}" \
            if r["database"] == "PostgreSQL" else "(none on SQLite)"
        print(f"{r['database']:<12} {r['accounts']:>8} {r['completed']:>6} {r['seconds']:>8.1f} {rate:>9.1f} "
              f"{r['batches']:>7} {in_flight:>9} {r['cpu_ms_per_setup']:>12.1f} "
              f"{r['machine_busy_pct']:>6.0f}% {r['engine_floor_per_second']:>20.1f}  {target}")
    print("  batches: setup batch workflows that made the first attempts; in flight: mean setup workflows (batches and"
          " per-account) running at once (--profile only);\n"
          "  cpu ms/setup: CPU time of this process (the engine) per account; machine: CPUs busy, database server"
          " included (200% = both cores of 2);\n"
          "  1 wf/account floor/s: empty workflows of the per-account setup workflow's shape (two steps) per second,"
          " same queue and settings")
    for r in results:
        if "error" not in r:
            print(f"  {r['database']}: {r['settings']}, load average at start {r['load_average']:.2f}")


def parent(args: argparse.Namespace) -> None:
    targets: list[tuple[str, str]] = []  # (label, server URL); empty URL = SQLite
    if args.database_url:
        targets.append(("PostgreSQL", args.database_url))
    else:
        targets.append(("SQLite", ""))
        if postgres_answers():
            targets.append(("PostgreSQL", DEFAULT_POSTGRES))
        else:
            print("no PostgreSQL on 127.0.0.1:5432: SQLite only")
    results = []
    for label, server_url in targets:
        print(f"--- {label}: {args.accounts} accounts", flush=True)
        if server_url:
            with fresh_postgres_database(server_url) as url:
                results.append(run_child(args, url))
        else:
            results.append(run_child(args, ""))
    print_table(results)


# --- Child: the measurement, in a process of its own -----------------------------------------------------

def insert_accounts(count: int) -> None:
    """Accounts as signup leaves them (waiting for a setup batch), minus the hashing."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from backstop.accounts.models import Account, SetupStep, StepName
    from backstop.accounts.setup import _welcome_key
    from backstop.accounts.signup import email_verification_url
    from backstop.notify.models import Channel, Message
    from backstop.notify.services import render_email

    hashed = make_password(PASSWORD)
    tag = uuid.uuid4().hex[:6]
    with transaction.atomic():
        accounts = Account.objects.bulk_create(
            [Account(email=f"act-{tag}-{i}@bench.example.com", email_key=f"act-{tag}-{i}@bench.example.com",
                     name="Bench Marker", company=f"Bench Co {i}", phone="+14155550100", password=hashed,
                     setup_batch="")
             for i in range(count)],
            batch_size=500,
        )
        SetupStep.objects.bulk_create(
            [SetupStep(account=a, name=name) for a in accounts for name in StepName.values], batch_size=1000
        )
        messages = []
        for account in accounts:
            rendered = render_email("welcome", {"account": account, "verify_url": email_verification_url(account)})
            messages.append(Message(key=_welcome_key(account.pk), account=account, channel=Channel.EMAIL,
                                    kind="welcome", to=account.email, subject=rendered.subject, text=rendered.text,
                                    html=rendered.html))
        Message.objects.bulk_create(messages, batch_size=500)


def progress() -> tuple[int, int]:
    """(accounts active, setup steps not done)."""
    from backstop.accounts.models import Account, AccountState, SetupStep, StepStatus

    return (Account.objects.filter(state=AccountState.ACTIVE).count(),
            SetupStep.objects.exclude(status=StepStatus.DONE).count())


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot (Linux), (0, 0) elsewhere."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


SETUP_WORKFLOWS = ("setup_workflow", "setup_batch_workflow")


class StackSampler:
    """Wall-clock sampling of the threads running setup workflows (what py-spy would show)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.samples = 0
        self.in_flight: list[int] = []
        self.by_place: Counter[str] = Counter()
        self.by_function: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-sampler")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _stack(frame: FrameType | None) -> list[tuple[str, str]]:
        stack = []
        while frame is not None:
            stack.append((frame.f_code.co_filename, frame.f_code.co_name))
            frame = frame.f_back
        return stack  # innermost first

    @staticmethod
    def _short(filename: str) -> str:
        for marker in ("site-packages/", f"{ROOT}/", "python3.11/"):
            if marker in filename:
                return filename.split(marker, 1)[1]
        return filename.rsplit("/", 1)[-1]

    def _place(self, stack: list[tuple[str, str]]) -> str:
        """Which workflow step (outermost backstop step) and which layer (innermost known one)."""
        step = "workflow body"
        for filename, function in stack:
            if filename.endswith(("accounts/workflows.py", "runtime/retrying.py")) and function not in (
                *SETUP_WORKFLOWS, "retry_until_done"
            ):
                step = function
                break
        layer = "python"
        for filename, function in stack:
            if "dbos/_sys_db" in filename:
                layer = "DBOS system DB"
                break
            if "/django/db/" in filename:
                layer = "Django ORM"
                break
            if "/django/template" in filename:
                layer = "templates"
                break
            if "/dbos/" in filename:
                layer = f"DBOS {function}"
                break
            if "/backstop/" in filename:
                layer = f"backstop {function}"
                break
        return f"{step} / {layer}"

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval):
            running = 0
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack = self._stack(frame)
                if not any(fn in SETUP_WORKFLOWS and f.endswith("accounts/workflows.py") for f, fn in stack):
                    continue
                running += 1
                self.samples += 1
                self.by_place[self._place(stack)] += 1
                for key in {f"{self._short(f)}:{fn}" for f, fn in stack}:
                    self.by_function[key] += 1
            self.in_flight.append(running)

    def report(self, top: int = 30) -> None:
        total = max(1, self.samples)
        print(f"\nWhere setup-workflow threads spend their wall time ({self.samples} thread samples):")
        for place, count in self.by_place.most_common(top):
            print(f"  {100 * count / total:5.1f}%  {place}")
        print("\nFunctions on the stack (cumulative share of workflow-thread samples):")
        for function, count in self.by_function.most_common(top + 20):
            if "threading.py" in function or "concurrent/futures" in function:
                continue
            print(f"  {100 * count / total:5.1f}%  {function}")


class StatementCounter:
    """Counts SQL statements by kind: Django's (workflow threads) and DBOS's system database (all threads)."""

    def __init__(self) -> None:
        self.django: Counter[str] = Counter()
        self.dbos: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._main = threading.get_ident()

    @staticmethod
    def _kind(sql: str) -> str:
        return sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"

    def install(self) -> None:
        from django.db.backends.signals import connection_created
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        def django_wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            if threading.get_ident() != self._main:
                with self._lock:
                    self.django[self._kind(sql)] += 1
            return execute(sql, params, many, context)

        def on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
            with self._lock:
                self.django["(connections opened)"] += 1
            # The wrapper list outlives a closed connection: a thread reconnects after each release.
            if django_wrapper not in connection.execute_wrappers:
                connection.execute_wrappers.append(django_wrapper)

        def on_dbos_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            with self._lock:
                self.dbos[self._kind(statement)] += 1

        def on_dbos_commit(conn: Any) -> None:
            with self._lock:
                self.dbos["COMMIT"] += 1

        connection_created.connect(on_connection, weak=False)
        event.listen(Engine, "before_cursor_execute", on_dbos_statement)
        event.listen(Engine, "commit", on_dbos_commit)

    def report(self, accounts: int) -> None:
        per = max(1, accounts)
        for name, counts in (("Django (workflow threads)", self.django), ("DBOS system database", self.dbos)):
            total = sum(v for k, v in counts.items() if k not in ("COMMIT", "(connections opened)"))
            detail = ", ".join(f"{k} {v / per:.1f}" for k, v in counts.most_common())
            print(f"  {name}: {total / per:.1f} statements per account ({detail})")


def step_timings() -> list[tuple[str, int, float]]:
    """(step, calls, mean ms) from DBOS's own records of this run."""
    from django.conf import settings
    from django.db import connection

    sql = ("SELECT function_name, COUNT(*), AVG(completed_at_epoch_ms - started_at_epoch_ms) "
           "FROM {table} GROUP BY function_name ORDER BY 3 DESC")
    if settings.DBOS_SYSTEM_DATABASE_URL.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(settings.DBOS_SYSTEM_DATABASE_URL.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(sql.format(table="operation_outputs")).fetchall()
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql.format(table="dbos.operation_outputs"))
            rows = cursor.fetchall()
    return [(str(name), int(calls), float(mean or 0)) for name, calls, mean in rows]


def cpu_by_library(stats: Any) -> Counter[str]:
    """Own CPU time (tottime) of profiled functions, summed by the library they belong to."""
    totals: Counter[str] = Counter()
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        if "site-packages/" in filename:
            library = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif "/backstop/" in filename:
            library = "backstop"
        elif filename == "~":
            library = "C builtins: " + function.split(" of ")[0].strip("<>{}").replace("method ", "")[:40]
        else:
            library = "python stdlib"
        totals[library] += tottime
    return totals


def profile_inline(count: int) -> None:
    """Setup batches run one at a time in this thread: their real CPU cost, then a cProfile of as many more."""
    import cProfile
    import pstats

    from dbos import SetWorkflowID
    from django.conf import settings

    from backstop.accounts.models import Account, AccountState
    from backstop.accounts.workflows import setup_batch_workflow

    queues = hold_setup_queues()
    first_new = (Account.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1

    def run() -> tuple[float, float]:
        insert_accounts(count)
        cpu_before, wall_before = time.thread_time(), time.perf_counter()
        while Account.objects.awaiting_setup_batch().exists():
            with SetWorkflowID(f"setup-batch:inline-{uuid.uuid4()}"):
                setup_batch_workflow(settings.SETUP_BATCH_SIZE)
        return (1000 * (time.perf_counter() - wall_before) / count,
                1000 * (time.thread_time() - cpu_before) / count)

    wall_ms, cpu_ms = run()
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    run()
    profiler.disable()
    release_setup_queues(queues)
    active = Account.objects.filter(pk__gte=first_new, state=AccountState.ACTIVE).count()
    print(f"\nSetup batches of {settings.SETUP_BATCH_SIZE} run one at a time in the main thread ({active} of "
          f"{2 * count} activated): {wall_ms:.2f} ms wall and {cpu_ms:.2f} ms CPU of this thread per account")
    stats = pstats.Stats(profiler)
    libraries = cpu_by_library(stats)
    total = sum(libraries.values()) or 1.0
    print(f"Own CPU time by library under cProfile ({count} more accounts; the profiler inflates the total, "
          "the shares are what matter):")
    for library, seconds in libraries.most_common(15):
        print(f"  {100 * seconds / total:5.1f}%  {library}")
    print("Top functions by cumulative CPU time (cProfile, this thread):")
    stats.sort_stats("cumulative").print_stats(30)


def hold_setup_queues() -> list[Queue]:
    """Stop the queues' dispatchers starting setup workflows (batches and per-account) until released."""
    from django.conf import settings

    from backstop.accounts.dispatcher import SETUP_BATCH_QUEUE, SETUP_QUEUE
    from backstop.runtime import engine

    queues = [engine.queue(SETUP_BATCH_QUEUE), engine.queue(SETUP_QUEUE)]
    for held in queues:
        held.set_worker_concurrency(0)
    time.sleep(3 * settings.QUEUE_POLL_SECONDS)  # the dispatcher rereads the queue's limits once per poll
    return queues


def release_setup_queues(queues: list[Queue]) -> None:
    from django.conf import settings

    from backstop.accounts.dispatcher import SETUP_BATCH_QUEUE, SETUP_BATCHES_AT_ONCE

    for held in queues:
        held.set_worker_concurrency(
            SETUP_BATCHES_AT_ONCE if held.name == SETUP_BATCH_QUEUE else settings.SETUP_CONCURRENCY
        )


def measure_engine_floor(count: int) -> float:
    """Empty two-step workflows per second through the setup queue: a backlog enqueued, then released."""
    from dbos import SetWorkflowID
    from django.conf import settings

    from backstop.accounts.dispatcher import SETUP_QUEUE
    from backstop.runtime import engine

    queues = hold_setup_queues()
    setup_queue = engine.queue(SETUP_QUEUE)
    tag = uuid.uuid4().hex[:6]
    handles = []
    for n in range(count):
        with SetWorkflowID(f"floor:{tag}:{n}"):
            handles.append(setup_queue.enqueue(empty_setup_workflow, n))
    time.sleep(3 * settings.QUEUE_POLL_SECONDS)
    started = time.perf_counter()
    release_setup_queues(queues)
    for handle in handles:
        handle.get_result()
    return count / (time.perf_counter() - started)


def wait_for_setup_workflows(timeout: float) -> bool:
    """Let the workflows record their results (after the accounts are done) before the engine stops."""
    from dbos import DBOS

    from backstop.accounts.dispatcher import SETUP_BATCH_QUEUE, SETUP_QUEUE

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(DBOS.list_workflows(status=["PENDING", "ENQUEUED"], queue_name=name, limit=1, load_input=False,
                                       load_output=False) for name in (SETUP_BATCH_QUEUE, SETUP_QUEUE)):
            return True
        time.sleep(0.2)
    return False


def child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    Path(settings.DATA_DIR).mkdir(parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=0)
    from backstop.runtime import engine

    database = "PostgreSQL" if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") else "SQLite"
    counter = StatementCounter() if args.profile else None
    if counter is not None:
        counter.install()
    engine.launch(role="bench")
    try:
        # Hold the queues while the backlog is inserted, so the clock starts with every account waiting.
        queues = hold_setup_queues()
        insert_accounts(args.accounts)
        from backstop.accounts.models import Account

        account_ids = list(Account.objects.order_by("pk").values_list("pk", flat=True))
        engine.release_db_connections()
        print(f"{database}: {len(account_ids)} accounts inserted, waiting for setup batches ...", flush=True)
        time.sleep(3 * settings.QUEUE_POLL_SECONDS)
        if progress()[0]:
            print("warning: setup workflows started before the queue was released", flush=True)
        sampler = StackSampler() if args.profile else None
        load_average = os.getloadavg()[0]
        busy_before, ticks_before = machine_busy_ticks()
        cpu_before = os.times()
        started = time.perf_counter()
        if sampler is not None:
            sampler.start()
        release_setup_queues(queues)
        deadline = started + args.timeout
        active, open_steps = progress()
        while (active < len(account_ids) or open_steps) and time.perf_counter() < deadline:
            time.sleep(0.05)
            active, open_steps = progress()
        seconds = time.perf_counter() - started
        cpu_after = os.times()
        busy_after, ticks_after = machine_busy_ticks()
        if sampler is not None:
            sampler.stop()
        finished = wait_for_setup_workflows(timeout=60)
        batches = len({batch for batch in Account.objects.values_list("setup_batch", flat=True)})
        print(f"{database}: measuring the engine's floor with {len(account_ids)} empty workflows ...", flush=True)
        engine_floor = measure_engine_floor(len(account_ids))
    finally:
        engine.shutdown()
    cpu_seconds = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    machine = 100 * (busy_after - busy_before) / (ticks_after - ticks_before) if ticks_after > ticks_before else 0.0
    if not finished:
        print("warning: some setup workflows were still running when the engine stopped", flush=True)
    if active < len(account_ids) or open_steps:
        print(f"timed out after {args.timeout:g}s: {active} active, {open_steps} steps open", flush=True)
    mean_in_flight = None
    if sampler is not None:
        sampler.report()
        mean_in_flight = sum(sampler.in_flight) / max(1, len(sampler.in_flight))
    if counter is not None:
        print("\nSQL statements per account set up:")
        counter.report(len(account_ids))
    if args.profile:
        print("\nDBOS step records (mean ms from step start to its output being recorded):")
        for name, calls, mean in step_timings():
            print(f"  {name:<24} {calls:>7} calls  {mean:8.1f} ms")
        engine.launch(role="bench")
        try:
            profile_inline(args.profile_inline)
        finally:
            engine.shutdown()
    result = {
        "database": database, "accounts": len(account_ids), "completed": active, "seconds": seconds,
        "batches": batches, "mean_in_flight": mean_in_flight,
        "cpu_ms_per_setup": 1000 * cpu_seconds / max(1, active), "machine_busy_pct": machine * (os.cpu_count() or 1),
        "load_average": load_average, "engine_floor_per_second": engine_floor,
        "settings": f"SETUP_BATCH_SIZE={settings.SETUP_BATCH_SIZE}, SETUP_CONCURRENCY={settings.SETUP_CONCURRENCY}, "
                    f"QUEUE_POLL_SECONDS={settings.QUEUE_POLL_SECONDS:g}",
    }
    Path(args.result_file).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server URL: run on a fresh database there (and skip SQLite)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up waiting after this many seconds")
    parser.add_argument("--profile", action="store_true",
                        help="sample workflow threads' stacks and count SQL statements (slows the run a little)")
    parser.add_argument("--profile-inline", type=int, default=100,
                        help="with --profile: accounts set up by batches run inline, then as many under cProfile")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
