"""Checkout latency: p50/p99 of POST /api/checkout through a real `backstop serve` process, against fakepay.

Two runs against one server: one client, then several at once, each buying the annual plan with the test Visa
card under a fresh Idempotency-Key and a fresh email. fakepay runs as its own process on a free port and sends its
webhooks to the server, as Stripe would. The processor's own time is measured in the same run: the purchase
workflow times each charge call inside the adapter and keeps it in the audit trail (`charge_succeeded`,
`processor_ms`), which the bench reads for exactly the checkouts it made. A second table shows the CPU each part of
the machine spent per checkout. The server runs its workflows where BACKSTOP_SERVE_WORKFLOWS says (by default in a
worker child on PostgreSQL, inside the web process on SQLite); its output names which.

    .venv/bin/python bench/checkout_latency.py [--requests 200] [--concurrent-requests 400] [--clients 8]
    .venv/bin/python bench/checkout_latency.py --database-url postgres://USER@HOST:PORT/ANY_DB

On PostgreSQL it runs in a fresh database named after ANY_DB (ANY_DB_bench_<random>), dropped after.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from common import (
    CpuSpent,
    cpu_per_operation,
    free_port,
    machine_busy_seconds,
    percentile,
    postgres_cpu_seconds,
    process_cpu_seconds,
    this_process_cpu_seconds,
    throwaway_database_name,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
# Target: what Backstop may add, at the 99th percentile, on top of the processor's own 99th percentile.
OVERHEAD_BUDGET_MS = 100.0
# Target: the share of healthy checkouts that get their final answer (200) within the server's wait.
FINAL_SHARE = 0.99


# --- Databases -------------------------------------------------------------------------------------

@dataclass
class Database:
    """Where the server keeps its data: a SQLite directory, or a fresh PostgreSQL database."""

    data_dir: Path
    url: str  # DATABASE_URL for the server; empty for SQLite

    @property
    def label(self) -> str:
        if not self.url:
            return f"SQLite (fresh files in {self.data_dir})"
        import psycopg

        with psycopg.connect(self.url) as conn:
            row = conn.execute("SELECT version()").fetchone()
        version = str(row[0]).split(" on ")[0] if row else "PostgreSQL"
        return f"{version}, fresh database {self.url.rsplit('/', 1)[1]}"

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """``sql`` with ``?`` placeholders, on either database."""
        if not self.url:
            with sqlite3.connect(self.data_dir / "backstop.sqlite3", timeout=30) as conn:
                return conn.execute(sql, params).fetchall()
        import psycopg

        with psycopg.connect(self.url) as pg:
            return pg.execute(sql.replace("?", "%s"), params).fetchall()

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        rows = self.query(sql, params)
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0


@contextmanager
def fresh_database(server_url: str, data_dir: Path) -> Iterator[Database]:
    """SQLite in ``data_dir``, or a new database on the PostgreSQL server of ``server_url``, dropped after."""
    if not server_url:
        yield Database(data_dir=data_dir, url="")
        return
    import psycopg

    base = server_url.split("?", 1)[0].rsplit("/", 1)[0]
    name = throwaway_database_name(server_url)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Database(data_dir=data_dir, url=f"{base}/{name}")
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- The processes ----------------------------------------------------------------------------------

def _wait_until_answers(process: subprocess.Popen[bytes], url: str, log_path: Path, what: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited early:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{what} did not come up:\n{log_path.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@dataclass
class Server:
    """`backstop serve` and `backstop fakepay`, each its own process, the processor's webhooks going to the server."""

    database: Database
    wait_seconds: float
    port: int = field(default_factory=free_port)
    fakepay_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    fakepay: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def fakepay_url(self) -> str:
        return f"http://127.0.0.1:{self.fakepay_port}"

    @property
    def log_path(self) -> Path:
        return self.database.data_dir / "server.log"

    def start(self) -> None:
        fakepay_log = self.database.data_dir / "fakepay.log"
        with open(fakepay_log, "wb") as log:
            self.fakepay = subprocess.Popen(
                [sys.executable, "-m", "backstop.cli", "fakepay", "--port", str(self.fakepay_port),
                 "--db", str(self.database.data_dir / "fakepay.sqlite3"),
                 "--webhook-url", f"{self.url}/api/webhooks/payments"],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _wait_until_answers(self.fakepay, f"{self.fakepay_url}/_fakepay/health", fakepay_log, "fakepay")
        env = {
            **os.environ,
            "BACKSTOP_DATA_DIR": str(self.database.data_dir),
            "DATABASE_URL": self.database.url,
            # Limits off so the load is not refused (only production refuses 0).
            "BACKSTOP_RATE_LIMIT_SCALE": "0",
            "BACKSTOP_PAYMENTS": "fakepay",
            "STRIPE_API_BASE": self.fakepay_url,
            "BACKSTOP_CHECKOUT_WAIT_SECONDS": f"{self.wait_seconds:g}",
            "BACKSTOP_BASE_URL": self.url,
            "BACKSTOP_EXECUTOR_ID": f"bench-{uuid.uuid4().hex[:6]}",
            "BACKSTOP_LOG_LEVEL": "WARNING",
            # A reconciliation tick landing in a run would be timed with it; the bench measures checkouts alone.
            "BACKSTOP_RECONCILE_SCHEDULE": "",
        }
        args = [sys.executable, "-m", "backstop.cli", "serve", "--migrate", "--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _wait_until_answers(self.process, f"{self.url}/api/openapi.json", self.log_path, "the server")

    def workflows_placement(self) -> str:
        """Where `backstop serve` said it runs its workflows (BACKSTOP_SERVE_WORKFLOWS, default by database)."""
        found = re.search(r"\(workflows: (\w+)\)", self.log_path.read_text(errors="replace"))
        return f"workflows: {found.group(1)}" if found else "workflows: not reported"

    @property
    def web_pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def fakepay_pid(self) -> int:
        assert self.fakepay is not None
        return self.fakepay.pid

    @property
    def workflows_child_pid(self) -> int | None:
        """The worker child `backstop serve` starts when its workflows run in a process of their own."""
        children = Path(f"/proc/{self.web_pid}/task/{self.web_pid}/children").read_text().split()
        return int(children[0]) if children else None

    def stop(self) -> None:
        _stop(self.process)
        _stop(self.fakepay)


# --- Measurements ------------------------------------------------------------------------------------

@dataclass
class Answer:
    reference: str
    status: int
    outcome: str
    latency_ms: float


@dataclass
class Run:
    name: str
    clients: int
    answers: list[Answer]
    errors: list[str]
    processor_ms: list[float]
    cpu: CpuSpent

    def latencies(self) -> list[float]:
        return [answer.latency_ms for answer in self.answers]

    @property
    def p50(self) -> float:
        return percentile(self.latencies(), 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies(), 99)

    @property
    def final_share(self) -> float:
        return sum(answer.status == 200 for answer in self.answers) / max(len(self.answers), 1)


def run_checkouts(base_url: str, *, count: int, clients: int, tag: str) -> tuple[list[Answer], list[str]]:
    """``count`` purchases, each with its own key and email, from ``clients`` keep-alive connections."""
    numbers = itertools.count()
    lock = threading.Lock()
    answers: list[Answer] = []
    errors: list[str] = []

    def client_loop() -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            while True:
                with lock:
                    number = next(numbers)
                if number >= count:
                    return
                body = {"product": "annual", "email": f"buyer-{tag}-{number}@example.com",
                        "payment_method": "pm_card_visa"}
                started = time.perf_counter()
                try:
                    response = client.post("/api/checkout", json=body,
                                           headers={"Idempotency-Key": f"bench-{tag}-{number}"})
                except httpx.HTTPError as error:
                    with lock:
                        errors.append(f"{type(error).__name__}: {error}")
                    continue
                elapsed_ms = (time.perf_counter() - started) * 1000
                with lock:
                    if response.status_code in (200, 202):
                        data = response.json()
                        answers.append(Answer(data["reference"], response.status_code, data["outcome"], elapsed_ms))
                    else:
                        errors.append(f"{response.status_code}: {response.text[:200]}")

    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(client_loop) for _ in range(clients)]:
            future.result()
    return answers, errors


def processor_times(database: Database, references: list[str]) -> list[float]:
    """The charge call's own duration for these checkouts, as the adapter timed it (audit: charge_succeeded)."""
    wanted = set(references)
    found: list[float] = []
    for reference, after in database.query(
            "SELECT reference, after FROM billing_auditentry WHERE action = 'charge_succeeded'"):
        value = (json.loads(after) if isinstance(after, str) else after).get("processor_ms")
        if reference in wanted and value is not None:
            found.append(float(value))
    return found


def unfinished(database: Database) -> int:
    """Checkouts not yet fulfilled, and confirmation emails not yet handed on: the previous run's tail."""
    return (database.scalar("SELECT COUNT(*) FROM billing_purchaseattempt WHERE state <> 'fulfilled'")
            + database.scalar("SELECT COUNT(*) FROM notify_message WHERE status IN ('queued', 'retrying')"))


def cpu_snapshot(server: Server, *, with_postgres: bool) -> dict[str, float]:
    parts = {"web process": process_cpu_seconds(server.web_pid)}
    if server.workflows_child_pid:
        parts["workflows child"] = process_cpu_seconds(server.workflows_child_pid)
    parts["fakepay"] = process_cpu_seconds(server.fakepay_pid)
    if with_postgres:
        parts["postgres"] = postgres_cpu_seconds()
    parts["bench clients"] = this_process_cpu_seconds()
    parts["machine"] = machine_busy_seconds()
    return parts




# --- Report -------------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_report(runs: list[Run], *, wait_seconds: float) -> None:
    print("\nCheckout latency (POST /api/checkout), processor time as the adapter measured it in the same run")
    header = (f"{'run':<12} {'clients':>7} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'200':>5} {'202':>5} "
              f"{'errors':>6} {'proc p50':>9} {'proc p99':>9}")
    print(header)
    print("-" * len(header))
    for run in runs:
        statuses = Counter(answer.status for answer in run.answers)
        print(f"{run.name:<12} {run.clients:>7} {len(run.answers):>5} {run.p50:>8.1f} {run.p99:>8.1f} "
              f"{statuses[200]:>5} {statuses[202]:>5} {len(run.errors):>6} "
              f"{percentile(run.processor_ms, 50):>9.1f} {percentile(run.processor_ms, 99):>9.1f}")

    cores = os.cpu_count() or 1
    parts = list(runs[0].cpu.by_part)
    print(f"\nCPU per checkout during each run, ms ({cores} cores)")
    header = (f"{'run':<12} " + " ".join(f"{part:>15}" for part in parts)
              + f" {'machine':>8} {'backstop':>8} {'shared out':>10}")
    print(header)
    print("-" * len(header))
    for run in runs:
        # Backstop's own CPU (its processes and the database's), not the processor's nor the clients'.
        ours = sum(run.cpu.by_part[part] for part in ("web process", "workflows child", "postgres")
                   if part in run.cpu.by_part)
        # With more checkouts in flight than cores, each one waits for its share of everyone's CPU.
        shared = ours * max(run.clients / cores, 1)
        print(f"{run.name:<12} " + " ".join(f"{run.cpu.by_part[part]:>15.1f}" for part in parts)
              + f" {run.cpu.machine:>8.1f} {ours:>8.1f} {shared:>10.1f}")
    print(f"'backstop': web process, workflows child and PostgreSQL (every PostgreSQL process on the machine). "
          f"'shared out': that times max(clients / {cores} cores, 1), about what it adds to each checkout when every "
          "core is busy: compare it with the target's budget.")

    print(f"\nTarget: checkout p99 at most {OVERHEAD_BUDGET_MS:g} ms above the processor's p99 (same run)")
    for run in runs:
        processor_p99 = percentile(run.processor_ms, 99)
        overhead = run.p99 - processor_p99
        print(f"  {run.name:<10} {run.p99:8.1f} - {processor_p99:8.1f} = {overhead:+7.1f} ms  "
              f"{verdict(overhead <= OVERHEAD_BUDGET_MS)}")
    print(f"Target: at least {FINAL_SHARE:.0%} of healthy checkouts answer final (200) within the "
          f"{wait_seconds:g} s wait")
    for run in runs:
        outcomes = Counter(answer.outcome for answer in run.answers if answer.status != 200)
        late = f"  (not final: {dict(outcomes)})" if outcomes else ""
        print(f"  {run.name:<10} {run.final_share:7.1%}  {verdict(run.final_share >= FINAL_SHARE)}{late}")

    failed = [(run, error) for run in runs for error in run.errors]
    if failed:
        print("\nErrors (non-2xx or transport failures):")
        for run, error in failed[:50]:
            print(f"  [{run.name}] {error}")
        if len(failed) > 50:
            print(f"  ... and {len(failed) - 50} more")


# --- Main ----------------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="checkouts in the sequential run")
    parser.add_argument("--concurrent-requests", type=int, default=400, help="checkouts in the concurrent run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads, keep-alive)")
    parser.add_argument("--wait-seconds", type=float, default=3.0,
                        help="BACKSTOP_CHECKOUT_WAIT_SECONDS: how long the server waits for the charge")
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server URL; the bench creates a fresh database on it and drops it after "
                             "(default: SQLite in a temp directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (server log) for inspection")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="backstop-bench-checkout-"))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    runs: list[Run] = []
    tag = uuid.uuid4().hex[:6]
    try:
        with fresh_database(args.database_url, data_dir) as database:
            server = Server(database=database, wait_seconds=args.wait_seconds)
            server.start()
            try:
                print(f"database: {database.label}", flush=True)
                print(f"server: {server.workflows_placement()}, processor: fakepay on {server.fakepay_url}",
                      flush=True)
                run_checkouts(server.url, count=10, clients=1, tag=f"{tag}-warmup")
                plan = [("sequential", 1, args.requests), ("concurrent", args.clients, args.concurrent_requests)]
                for name, clients, count in plan:
                    if not wait_until(lambda: unfinished(database) == 0, 120):
                        print("  (checkouts or emails of the previous run still open after 120 s)")
                    print(f"run: {name}, {clients} client(s), {count} checkouts ...", flush=True)
                    before = cpu_snapshot(server, with_postgres=bool(database.url))
                    answers, errors = run_checkouts(server.url, count=count, clients=clients, tag=f"{tag}-{name}")
                    spent = cpu_per_operation(before, cpu_snapshot(server, with_postgres=bool(database.url)), count)
                    wait_until(lambda: unfinished(database) == 0, 120)
                    timed = processor_times(database, [answer.reference for answer in answers])
                    runs.append(Run(name, clients, answers, errors, timed, spent))
                charges = database.scalar("SELECT COUNT(*) FROM billing_order")
                attempts = database.scalar("SELECT COUNT(*) FROM billing_purchaseattempt")
                print(f"orders: {charges} for {attempts} checkouts", flush=True)
            finally:
                server.stop()
    finally:
        if args.keep:
            print(f"kept {data_dir}")
        else:
            import shutil

            shutil.rmtree(data_dir, ignore_errors=True)
    print_report(runs, wait_seconds=args.wait_seconds)


if __name__ == "__main__":
    main()
