"""Outage drain: N accounts sign up while the email provider is down, then it comes back with a rate limit.

One `backstop serve` process (web, and its workflows where BACKSTOP_SERVE_WORKFLOWS says) sends email through
Resend's API (``BACKSTOP_EMAIL=resend``) to the local fake (``backstop.notify.fakemail``, in this process), which
enforces R sends/s by answering 429 with Retry-After, as real providers do. The run:

1. baseline: new visitors sign up one after another on a quiet machine (provider up), their p99;
2. outage: the fake answers 503; N accounts sign up (``--clients`` at a time), each waiting with its welcome email
   pending; the outage lasts ``--outage-seconds`` more after the last signup;
3. drain: the fake comes back at ``--rate`` sends/s; the clock runs until every one of the N has its welcome email
   sent (its setup finished); meanwhile new visitors sign up one after another, their p99.

It prints the time to drain against N/R (target 1.1x), the calls the provider received while down (target: bounded by
the breaker's probes, not N), the 429s it gave, and the drain's signup p99 against the baseline's (target 1.2x).
"Active" in the issue's sense is read as "setup finished": an account is active once its workspace is made, which the
outage of email does not hold up; what waits is the welcome email, so that is what the drain measures.

    .venv/bin/python bench/outage_drain.py [--accounts 10000] [--rate 50]
    .venv/bin/python bench/outage_drain.py --accounts 300 --rate 3 --database-url postgres://USER@HOST:PORT/DB

With --database-url it makes a fresh database ``<DB>_drain_<random>`` on that server (dropped after); without,
SQLite in a temp directory. Engine settings come from the environment as usual (e.g. BACKSTOP_BREAKER_PROBE_SECONDS).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import free_port, percentile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backstop.notify.fakemail import Counts, FakeMail  # noqa: E402  (the project root is on the path only from here)

PASSWORD = "correct horse battery staple"
DRAIN_FACTOR = 1.1  # all N done within this times N/R
P99_FACTOR = 1.2  # new visitors' signup p99 during the drain against the quiet baseline


@dataclass
class Database:
    data_dir: Path
    url: str  # empty: SQLite in data_dir

    _conn: Any = None  # one connection for the bench's looks, kept: PostgreSQL's connections are shared and few

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """One number from the database; ``sql`` with %s placeholders (made ? for SQLite)."""
        for attempt in range(20):
            try:
                if self._conn is None:
                    if self.url:
                        import psycopg

                        self._conn = psycopg.connect(self.url, autocommit=True)
                    else:
                        self._conn = sqlite3.connect(self.data_dir / "backstop.sqlite3", timeout=30,
                                                     isolation_level=None)
                row = self._conn.execute(sql if self.url else sql.replace("%s", "?"), params).fetchone()
                return int(row[0]) if row and row[0] is not None else 0
            except Exception:  # a full server or a locked file: look again in a moment
                self.close()
                if attempt == 19:
                    raise
                time.sleep(1)
        return 0

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


@contextmanager
def fresh_database(server_url: str, data_dir: Path) -> Iterator[Database]:
    if not server_url:
        yield Database(data_dir=data_dir, url="")
        return
    import psycopg

    base, given = server_url.split("?", 1)[0].rsplit("/", 1)
    name = f"{given or 'backstop'}_drain_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Database(data_dir=data_dir, url=f"{base}/{name}")
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Server:
    def __init__(self, database: Database, fake: FakeMail, email_timeout: float) -> None:
        self.database, self.fake, self.email_timeout = database, fake, email_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = database.data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "BACKSTOP_DATA_DIR": str(self.database.data_dir),
            "DATABASE_URL": self.database.url,
            "BACKSTOP_RATE_LIMIT_SCALE": "0",  # the load is not refused (only production refuses 0)
            "BACKSTOP_EMAIL": "resend",
            "BACKSTOP_RESEND_API_URL": self.fake.url,
            "BACKSTOP_RESEND_API_KEY": "re_bench",
            "BACKSTOP_EMAIL_TIMEOUT": f"{self.email_timeout:g}",
            "BACKSTOP_BASE_URL": self.url,
            "BACKSTOP_EXECUTOR_ID": f"drain-{uuid.uuid4().hex[:6]}",
            "BACKSTOP_LOG_LEVEL": "WARNING",
        }
        args = [sys.executable, "-m", "backstop.cli", "serve", "--migrate", "--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited early:\n{self.log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{self.url}/api/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"the server did not come up:\n{self.log_path.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def signup_payload(email: str) -> dict[str, str]:
    return {"name": "Drain Bench", "email": email, "phone": "+1 415 555 0100", "company": "Drain Co",
            "password": PASSWORD}


def run_signups(base_url: str, *, tag: str, clients: int, count: int | None = None,
                until: threading.Event | None = None, interval: float = 0.0) -> tuple[list[float], list[str]]:
    """Signups with unique emails from ``clients`` keep-alive connections, ``count`` of them or until ``until`` is
    set, each client starting one at most every ``interval`` seconds; their 2xx latencies in ms and the errors."""
    numbers = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []

    def client_loop() -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            while until is None or not until.is_set():
                with lock:
                    number = next(numbers)
                if count is not None and number >= count:
                    return
                client.cookies.clear()  # each signup is a new visitor
                started = time.perf_counter()
                next_start = time.monotonic() + interval
                try:
                    response = client.post("/api/signup", json=signup_payload(f"{tag}-{number}@bench.example.com"))
                except httpx.HTTPError as error:
                    with lock:
                        errors.append(f"{error.__class__.__name__}: {error}")
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if 200 <= response.status_code < 300:
                        latencies.append(elapsed)
                    else:
                        errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                pause = next_start - time.monotonic()
                if pause > 0 and until is not None:
                    until.wait(pause)
                elif pause > 0:
                    time.sleep(pause)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(client_loop) for _ in range(clients)]:
            future.result()
    return latencies, errors


def welcome_sent(database: Database, tag: str) -> int:
    return database.scalar(
        "SELECT COUNT(*) FROM accounts_setupstep s JOIN accounts_account a ON a.id = s.account_id "
        "WHERE s.name = 'welcome_email' AND s.status = 'done' AND a.email LIKE %s", (f"{tag}-%",))


def accounts_active(database: Database, tag: str) -> int:
    return database.scalar("SELECT COUNT(*) FROM accounts_account WHERE state = 'active' AND email LIKE %s",
                           (f"{tag}-%",))


def breaker_state(database: Database) -> str:
    closed = database.scalar("SELECT COUNT(*) FROM runtime_circuitbreaker WHERE provider = 'email' "
                             "AND state = 'closed'")
    return "closed" if closed else "open"


def wait_for(condition: object, timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=10_000, help="N: accounts signing up during the outage")
    parser.add_argument("--rate", type=float, default=50.0, help="R: the provider's sends per second once back")
    parser.add_argument("--clients", type=int, default=4, help="concurrent signups during the outage")
    parser.add_argument("--baseline-signups", type=int, default=60, help="sequential signups on the quiet machine")
    parser.add_argument("--visitor-interval", type=float, default=2.0,
                        help="new visitors (baseline and during the drain) start a signup every this many seconds: "
                             "their own welcome emails share the provider's rate with the backlog")
    parser.add_argument("--outage-seconds", type=float, default=20.0,
                        help="how long the outage lasts after the last of the N signed up")
    parser.add_argument("--email-timeout", type=float, default=5.0)
    parser.add_argument("--drain-timeout", type=float, default=0.0,
                        help="give up waiting for the drain after this many seconds (default 5 x N/R + 120)")
    parser.add_argument("--database-url", default="", help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (server log)")
    args = parser.parse_args()

    n, rate = args.accounts, args.rate
    ideal = n / rate
    data_dir = Path(tempfile.mkdtemp(prefix="backstop-bench-drain-"))
    tag = f"drain{uuid.uuid4().hex[:6]}"
    fake = FakeMail(rate=rate).start()
    load_before = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f}; N={n}, R={rate:g}/s, N/R={ideal:.1f} s", flush=True)
    results: Results | None = None
    try:
        with fresh_database(args.database_url, data_dir) as database:
            server = Server(database, fake, args.email_timeout)
            server.start()
            try:
                print(f"database: {'PostgreSQL ' + database.url.rsplit('/', 1)[1] if database.url else 'SQLite'}; "
                      f"fake email provider at {fake.url}", flush=True)
                run_signups(server.url, tag=f"{tag}w", clients=1, count=5)  # warm-up
                print(f"baseline: {args.baseline_signups} sequential signups, provider up ...", flush=True)
                baseline, baseline_errors = run_signups(server.url, tag=f"{tag}b", clients=1,
                                                        count=args.baseline_signups, interval=args.visitor_interval)
                wait_for(lambda: welcome_sent(database, f"{tag}b") >= args.baseline_signups, 120)

                fake.set(mode="down")
                fake.reset()
                outage_started = time.monotonic()
                print(f"outage: {n} signups, {args.clients} at a time, provider down ...", flush=True)
                _, outage_errors = run_signups(server.url, tag=tag, clients=args.clients, count=n)
                signed_up_in = time.monotonic() - outage_started
                print(f"  signed up in {signed_up_in:.1f} s; outage goes on for {args.outage_seconds:g} s", flush=True)
                time.sleep(args.outage_seconds)
                down_counts = fake.counts
                outage_seconds = time.monotonic() - outage_started
                active_in_outage = accounts_active(database, tag)
                sent_in_outage = welcome_sent(database, tag)

                fake.set(mode="up")
                back = time.monotonic()
                print("drain: provider back; new visitors sign up one after another meanwhile ...", flush=True)
                done = threading.Event()
                during_latencies: list[float] = []
                during_errors: list[str] = []

                def visitors() -> None:
                    latencies, errors = run_signups(server.url, tag=f"{tag}v", clients=1, until=done,
                                                    interval=args.visitor_interval)
                    during_latencies.extend(latencies)
                    during_errors.extend(errors)

                visitor_thread = threading.Thread(target=visitors, daemon=True)
                visitor_thread.start()
                closed_at: float | None = None
                last_print = back
                limit = args.drain_timeout or 5 * ideal + 120
                finished = False
                while time.monotonic() - back < limit:
                    if closed_at is None and breaker_state(database) == "closed":
                        closed_at = time.monotonic()
                    sent = welcome_sent(database, tag)
                    if sent >= n:
                        finished = True
                        break
                    if time.monotonic() - last_print >= 15:
                        last_print = time.monotonic()
                        print(f"  {time.monotonic() - back:6.1f} s: {sent}/{n} sent, "
                              f"{fake.counts.throttled} 429s so far", flush=True)
                    time.sleep(0.5)
                drained_in = time.monotonic() - back
                done.set()
                visitor_thread.join(timeout=120)
                delivered = fake.delivered()
                back_at = time.time() - (time.monotonic() - back)
                kinds = Counter(("new visitors' " if m["to"][0].startswith(f"{tag}v-") else "the N's ")
                                + m["subject"].split(",")[0].split(":")[0] for m in delivered if m["at"] >= back_at)
                results = Results(
                    finished=finished, drained_in=drained_in, closed_after=(closed_at - back) if closed_at else None,
                    signed_up_in=signed_up_in, outage_seconds=outage_seconds, down=down_counts, drain=fake.counts,
                    active_in_outage=active_in_outage, sent_in_outage=sent_in_outage,
                    baseline=baseline, during=during_latencies,
                    errors={"baseline": baseline_errors, "outage": outage_errors, "during the drain": during_errors},
                    duplicates=len(delivered) - len({m["idempotency_key"] for m in delivered}),
                    load_before=load_before, load_after=os.getloadavg(), kinds=dict(kinds),
                )
            finally:
                database.close()
                server.stop()
                if args.keep:
                    shutil.copy(server.log_path, Path(tempfile.gettempdir()) / f"{tag}-server.log")
    finally:
        fake.stop()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            print(f"kept {data_dir}")
    if results is not None:
        print_report(results, n=n, rate=rate)


@dataclass
class Results:
    finished: bool
    drained_in: float
    closed_after: float | None
    signed_up_in: float
    outage_seconds: float
    down: Counts
    drain: Counts
    active_in_outage: int
    sent_in_outage: int
    baseline: list[float]
    during: list[float]
    errors: dict[str, list[str]]
    duplicates: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    kinds: dict[str, int]  # delivered during the drain, by recipient and subject


def print_report(r: Results, *, n: int, rate: float) -> None:
    threshold = int(os.environ.get("BACKSTOP_BREAKER_THRESHOLD", 5))
    probe = float(os.environ.get("BACKSTOP_BREAKER_PROBE_SECONDS", 10))
    cooldown = float(os.environ.get("BACKSTOP_BREAKER_COOLDOWN_SECONDS", 15))
    ideal = n / rate
    row = "{:<60} {:>14} {:>14} {:>8}"
    print(f"\nOutage drain: N={n} accounts, provider back at R={rate:g} sends/s")
    print(row.format("measure", "value", "target", ""))
    print("-" * 99)
    done = f"{r.drained_in:.1f} s" if r.finished else f">{r.drained_in:.0f} s unfinished"
    print(row.format("time until all N have their welcome email (setup done)", done,
                     f"{DRAIN_FACTOR * ideal:.1f} s", ""))
    ratio = r.drained_in / ideal
    print(row.format(f"  ratio to N/R = {ideal:.1f} s", f"{ratio:.2f}x", f"{DRAIN_FACTOR:.1f}x",
                     verdict(r.finished and ratio <= DRAIN_FACTOR)))
    messages = max(r.drain.delivered, 1)
    print(row.format(f"  ratio to all {messages} delivered meanwhile / R (visitors' too)",
                     f"{r.drained_in / (messages / rate):.2f}x", "", ""))
    print(row.format("  of which until the breaker closed (a probe found it back)",
                     f"{r.closed_after:.1f} s" if r.closed_after is not None else "never", f"<= {probe:g} s probe", ""))
    # The breaker lets through: the failures that open it, then one probe per probe interval, and one customer's call
    # when a cool-down ends.
    bound = threshold + r.outage_seconds / probe + r.outage_seconds / cooldown
    calls = r.down.calls_while_down
    print(row.format(f"calls to the provider while down ({r.outage_seconds:.0f} s)", str(calls),
                     f"~{bound:.0f}, not {n}", verdict(calls <= 2 * bound)))
    print(row.format("  sends / health calls", f"{r.down.sends} / {r.down.probes}", "", ""))
    print(row.format("429s received during the drain", str(r.drain.throttled), "", ""))
    print(row.format("  sends / delivered / replayed by idempotency key",
                     f"{r.drain.sends - r.down.sends} / {r.drain.delivered} / {r.drain.replayed}", "", ""))
    for kind, count in sorted(r.kinds.items(), key=lambda item: -item[1]):
        print(row.format(f"  delivered in the drain: {kind[:40]}", str(count), "", ""))
    print(row.format("messages delivered twice (same key)", str(r.duplicates), "0", verdict(r.duplicates == 0)))
    base_p99, during_p99 = percentile(r.baseline, 99), percentile(r.during, 99)
    print(row.format(f"new visitors' signup p99, quiet baseline (n={len(r.baseline)})", f"{base_p99:.0f} ms", "", ""))
    print(row.format(f"new visitors' signup p99, during the drain (n={len(r.during)})", f"{during_p99:.0f} ms",
                     f"{P99_FACTOR * base_p99:.0f} ms", ""))
    print(row.format("  ratio", f"{during_p99 / base_p99:.2f}x", f"{P99_FACTOR:.1f}x",
                     verdict(during_p99 / base_p99 <= P99_FACTOR)))
    print(row.format("  p50 baseline / during",
                     f"{percentile(r.baseline, 50):.0f} / {percentile(r.during, 50):.0f} ms", "", ""))
    print(f"\nthe {n} signups during the outage took {r.signed_up_in:.1f} s; by the outage's end {r.active_in_outage} "
          f"were active (workspace made) and {r.sent_in_outage} had their welcome email")
    print("load average before / after: " + " ".join(f"{v:.2f}" for v in r.load_before) + " / "
          + " ".join(f"{v:.2f}" for v in r.load_after))
    for phase, errors in r.errors.items():
        if errors:
            print(f"errors ({phase}): {len(errors)}, first: {errors[0]}")


if __name__ == "__main__":
    main()
