"""Signup latency: p50/p99 of POST /api/signup through a real `backstop serve` process.

Four runs against one server: sequential and concurrent clients, with healthy providers and with the
email provider hanging (every welcome email attempt sleeps BACKSTOP_EMAIL_TIMEOUT inside the setup
workflow). Argon2 hashing is timed on its own, in this process and through the project's hasher (so as many
hashes at a time as the server runs), so the table shows what the request path adds on top of it. A second table
shows the CPU each part of the machine spent per signup during each run. The server's peak resident memory is
printed at the end. The server runs its workflows where BACKSTOP_SERVE_WORKFLOWS says (by
default in a worker child on PostgreSQL, inside the web process on SQLite); its output names which.

    .venv/bin/python bench/signup_latency.py [--requests 200] [--concurrent-requests 400] [--clients 8]
    .venv/bin/python bench/signup_latency.py --database-url postgres://USER@HOST:PORT/ANY_DB
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
# Target (a): what the request path may add on top of hashing the password.
OVERHEAD_BUDGET_MS = 50.0
# Target (b): a hanging provider may slow signup by at most this factor.
HANGING_FACTOR = 1.2


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

    def scalar(self, sql: str) -> int:
        if not self.url:
            with sqlite3.connect(self.data_dir / "backstop.sqlite3", timeout=30) as conn:
                row = conn.execute(sql).fetchone()
        else:
            import psycopg

            with psycopg.connect(self.url) as pg:
                row = pg.execute(sql).fetchone()
        return int(row[0]) if row else 0


@contextmanager
def fresh_database(server_url: str, data_dir: Path) -> Iterator[Database]:
    """SQLite in ``data_dir``, or a new database on the PostgreSQL server of ``server_url``, dropped after."""
    if not server_url:
        yield Database(data_dir=data_dir, url="")
        return
    import psycopg

    base = server_url.split("?", 1)[0].rsplit("/", 1)[0]
    name = f"backstop_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Database(data_dir=data_dir, url=f"{base}/{name}")
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- The server -------------------------------------------------------------------------------------

@dataclass
class Server:
    database: Database
    email_timeout: float
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.database.data_dir / "server.log"

    def start(self) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "BACKSTOP_DATA_DIR": str(self.database.data_dir),
            "DATABASE_URL": self.database.url,
            # Limits off so the load is not refused (only production refuses 0).
            "BACKSTOP_RATE_LIMIT_SCALE": "0",
            "BACKSTOP_FAULT_INJECTION": "1",
            "BACKSTOP_DEMO_PAGES": "1",
            "BACKSTOP_EMAIL_TIMEOUT": f"{self.email_timeout:g}",
            "BACKSTOP_BASE_URL": self.url,
            "BACKSTOP_EXECUTOR_ID": f"bench-{uuid.uuid4().hex[:6]}",
            "BACKSTOP_LOG_LEVEL": "WARNING",
        }
        args = [sys.executable, "-m", "backstop.cli", "serve", "--migrate", "--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited early:\n{self.log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{self.url}/api/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"the server did not come up:\n{self.log_path.read_text(errors='replace')}")

    def workflows_placement(self) -> str:
        """Where `backstop serve` said it runs its workflows (BACKSTOP_SERVE_WORKFLOWS, default by database)."""
        found = re.search(r"\(workflows: (\w+)\)", self.log_path.read_text(errors="replace"))
        return f"workflows: {found.group(1)}" if found else "workflows: not reported"

    def set_faults(self, modes: dict[str, str]) -> None:
        response = httpx.post(f"{self.url}/demo/api/faults", json=modes, timeout=10)
        response.raise_for_status()
        current = response.json()["faults"]
        if any(current.get(provider) != mode for provider, mode in modes.items()):
            raise SystemExit(f"the server did not take the faults {modes}: {current}")

    @property
    def web_pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def workflows_child_pid(self) -> int | None:
        """The worker child `backstop serve` starts when its workflows run in a process of their own."""
        children = Path(f"/proc/{self.web_pid}/task/{self.web_pid}/children").read_text().split()
        return int(children[0]) if children else None

    def peak_memory_mib(self) -> dict[str, float]:
        """Peak resident memory (Linux VmHWM) of the server and of its workflows child, if it has one, so far."""
        pids = {"web process": self.web_pid}
        if self.workflows_child_pid:
            pids["workflows child"] = self.workflows_child_pid
        peaks = {}
        for name, pid in pids.items():
            status = Path(f"/proc/{pid}/status").read_text()
            found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
            if found:
                peaks[name] = int(found.group(1)) / 1024
        return peaks

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


# --- Measurements ------------------------------------------------------------------------------------

@dataclass
class Run:
    name: str
    clients: int
    providers: str
    latencies_ms: list[float]
    errors: list[str]
    cpu: CpuSpent

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)


def signup_payload(email: str) -> dict[str, str]:
    return {"name": "Bench Marker", "email": email, "phone": "+1 415 555 0100", "company": "Bench Co",
            "password": PASSWORD}


def run_signups(base_url: str, *, count: int, clients: int, tag: str) -> tuple[list[float], list[str]]:
    """``count`` signups with unique emails from ``clients`` keep-alive connections; 2xx latencies and errors."""
    numbers = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []

    def client_loop() -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            while True:
                with lock:
                    number = next(numbers)
                if number >= count:
                    return
                # Each signup is a new visitor: no session cookie from the previous one.
                client.cookies.clear()
                payload = signup_payload(f"bench-{tag}-{number}@bench.example.com")
                started = time.perf_counter()
                try:
                    response = client.post("/api/signup", json=payload)
                except httpx.HTTPError as error:
                    with lock:
                        errors.append(f"{error.__class__.__name__}: {error}")
                    continue
                elapsed_ms = (time.perf_counter() - started) * 1000
                with lock:
                    if 200 <= response.status_code < 300:
                        latencies.append(elapsed_ms)
                    else:
                        errors.append(f"HTTP {response.status_code}: {response.text[:200]}")

    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(client_loop) for _ in range(clients)]:
            future.result()
    return latencies, errors


def time_hashing(*, count: int, threads: int) -> list[float]:
    """Milliseconds per make_password call (the project's hasher settings), ``threads`` at a time."""
    from django.contrib.auth.hashers import make_password

    numbers = itertools.count()
    lock = threading.Lock()
    durations: list[float] = []

    def hash_loop() -> None:
        while True:
            with lock:
                number = next(numbers)
            if number >= count:
                return
            started = time.perf_counter()
            make_password(f"{PASSWORD} {number}")
            elapsed_ms = (time.perf_counter() - started) * 1000
            with lock:
                durations.append(elapsed_ms)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(hash_loop) for _ in range(threads)]:
            future.result()
    return durations


# With every core busy hashing, the CPU a signup costs besides its hash is shared out across the signups in flight, so
# the run's figures are read beside it: per signup, who spent what during the run.

def cpu_snapshot(server: Server, *, with_postgres: bool) -> dict[str, float]:
    parts = {"web process": process_cpu_seconds(server.web_pid)}
    if server.workflows_child_pid:
        parts["workflows child"] = process_cpu_seconds(server.workflows_child_pid)
    if with_postgres:
        parts["postgres"] = postgres_cpu_seconds()
    parts["bench clients"] = this_process_cpu_seconds()
    parts["machine"] = machine_busy_seconds()
    return parts




def open_setup_steps(database: Database) -> int:
    return database.scalar("SELECT COUNT(*) FROM accounts_setupstep WHERE status <> 'done'")


# --- Report -------------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_cpu_table(runs: list[Run], *, hash_cpu_ms: float) -> None:
    """Per signup: CPU by part, the machine's besides one hash, and what that costs a signup once shared out."""
    cores = os.cpu_count() or 1
    parts = list(runs[0].cpu.by_part)
    print(f"\nCPU per signup during each run, ms (one hash: {hash_cpu_ms:.0f} ms of CPU, sequential, this process)")
    header = (f"{'run':<12} {'providers':<12} " + " ".join(f"{part:>15}" for part in parts)
              + f" {'machine':>8} {'besides hash':>12} {'shared out':>10}")
    print(header)
    print("-" * len(header))
    for run in runs:
        besides = run.cpu.machine - hash_cpu_ms
        # With more signups in flight than cores, each one waits for its share of everyone's extra CPU.
        shared = besides * max(run.clients / cores, 1)
        print(f"{run.name:<12} {run.providers:<12} " + " ".join(f"{run.cpu.by_part[part]:>15.1f}" for part in parts)
              + f" {run.cpu.machine:>8.1f} {besides:>12.1f} {shared:>10.1f}")
    print(f"'shared out': the extra CPU times max(clients / {cores} cores, 1), about what it adds to each signup's "
          "latency when every core is busy: compare it with target (a)'s budget.")


def print_report(runs: list[Run], hashing: dict[str, list[float]], clients: int, *, hash_cpu_ms: float) -> None:
    header = f"{'run':<12} {'clients':>7} {'providers':<16} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
    print("\nSignup latency (POST /api/signup)")
    print(header)
    print("-" * len(header))
    for run in runs:
        print(f"{run.name:<12} {run.clients:>7} {run.providers:<16} {len(run.latencies_ms):>5} "
              f"{run.p50:>8.1f} {run.p99:>8.1f} {len(run.errors):>6}")
    print("\nPassword hashing alone (make_password, in this process)")
    print(f"{'threads':>7} {'n':>5} {'p50 ms':>8} {'p99 ms':>8}")
    for mode, threads in (("sequential", 1), ("concurrent", clients)):
        durations = hashing[mode]
        print(f"{threads:>7} {len(durations):>5} {percentile(durations, 50):>8.1f} {percentile(durations, 99):>8.1f}")

    print_cpu_table(runs, hash_cpu_ms=hash_cpu_ms)

    print(f"\nTarget (a): signup p99 at most {OVERHEAD_BUDGET_MS:g} ms above hashing p99 (same concurrency)")
    for run in runs:
        hash_p99 = percentile(hashing[run.name], 99)
        overhead = run.p99 - hash_p99
        print(f"  {run.name:<10} {run.providers:<16} {run.p99:8.1f} - {hash_p99:8.1f} = {overhead:+7.1f} ms  "
              f"{verdict(overhead <= OVERHEAD_BUDGET_MS)}")
    print(f"Target (b): hanging-provider p99 within {HANGING_FACTOR:g}x of the healthy p99")
    for mode in ("sequential", "concurrent"):
        healthy = next(r for r in runs if r.name == mode and r.providers == "healthy")
        hanging = next(r for r in runs if r.name == mode and r.providers != "healthy")
        ratio = hanging.p99 / healthy.p99
        print(f"  {mode:<10} {hanging.p99:8.1f} / {healthy.p99:8.1f} = {ratio:5.2f}x  "
              f"{verdict(ratio <= HANGING_FACTOR)}")

    failed = [(run, error) for run in runs for error in run.errors]
    if failed:
        print("\nErrors (non-2xx or transport failures):")
        for run, error in failed[:50]:
            print(f"  [{run.name}, {run.providers}] {error}")
        if len(failed) > 50:
            print(f"  ... and {len(failed) - 50} more")


# --- Main ----------------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="signups in each sequential run")
    parser.add_argument("--concurrent-requests", type=int, default=400, help="signups in each concurrent run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads, keep-alive)")
    parser.add_argument("--hashes", type=int, default=100, help="sequential make_password calls timed")
    parser.add_argument("--concurrent-hashes", type=int, default=200, help="make_password calls timed on --clients "
                                                                           "threads")
    parser.add_argument("--email-timeout", type=float, default=10.0,
                        help="seconds each welcome email attempt hangs in the hanging-provider runs")
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server URL; the bench creates a fresh database on it and drops it after "
                             "(default: SQLite in a temp directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (server log) for inspection")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="backstop-bench-signup-"))
    # Only the hasher settings are used in this process; a temp data dir keeps var/ untouched.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backstop.settings")
    os.environ["BACKSTOP_DATA_DIR"] = str(data_dir)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.hashers import get_hasher

    hasher = get_hasher()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"hasher: {hasher.algorithm} time_cost={getattr(hasher, 'time_cost', '?')} "
          f"memory_cost={getattr(hasher, 'memory_cost', '?')} KiB parallelism={getattr(hasher, 'parallelism', '?')}, "
          f"{settings.PASSWORD_HASHES_AT_ONCE} at a time per process")
    print("timing password hashing alone (server not started yet) ...", flush=True)
    time_hashing(count=3, threads=1)  # warm-up: first call loads the library
    cpu_before = this_process_cpu_seconds()
    hashing = {"sequential": time_hashing(count=args.hashes, threads=1)}
    hash_cpu_ms = (this_process_cpu_seconds() - cpu_before) * 1000 / args.hashes
    hashing["concurrent"] = time_hashing(count=args.concurrent_hashes, threads=args.clients)

    runs: list[Run] = []
    tag = uuid.uuid4().hex[:6]
    try:
        with fresh_database(args.database_url, data_dir) as database:
            server = Server(database=database, email_timeout=args.email_timeout)
            server.start()
            try:
                print(f"database: {database.label}", flush=True)
                print(f"server: {server.workflows_placement()}", flush=True)
                run_signups(server.url, count=10, clients=1, tag=f"{tag}-warmup")
                plan = [("sequential", 1, args.requests), ("concurrent", args.clients, args.concurrent_requests)]
                for providers in ("healthy", "email hangs"):
                    if providers != "healthy":
                        server.set_faults({"email": "timeout"})
                    for name, clients, count in plan:
                        if providers == "healthy" and not wait_until(lambda: open_setup_steps(database) == 0, 120):
                            print("  (setup workflows of the previous run still open after 120 s)")
                        print(f"run: {name}, {clients} client(s), providers {providers}, {count} signups ...",
                              flush=True)
                        before = cpu_snapshot(server, with_postgres=bool(database.url))
                        latencies, errors = run_signups(server.url, count=count, clients=clients,
                                                        tag=f"{tag}-{providers[:4]}-{name}")
                        spent = cpu_per_operation(before, cpu_snapshot(server, with_postgres=bool(database.url)), count)
                        runs.append(Run(name, clients, providers, latencies, errors, spent))
                hung = database.scalar("SELECT COUNT(*) FROM accounts_setupstep "
                                       "WHERE name = 'welcome_email' AND status <> 'done'")
                print(f"welcome emails not delivered at the end (hanging provider): {hung}")
                for name, mib in server.peak_memory_mib().items():
                    print(f"peak resident memory, {name}: {mib:.0f} MiB")
            finally:
                server.stop()
    finally:
        if args.keep:
            print(f"kept {data_dir}")
        else:
            import shutil

            shutil.rmtree(data_dir, ignore_errors=True)
    print_report(runs, hashing, args.clients, hash_cpu_ms=hash_cpu_ms)


if __name__ == "__main__":
    main()
