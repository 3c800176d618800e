"""Draft saves under load: N people typing, each editor saving its draft every 2 s, against `backstop serve` on
PostgreSQL.

Creates a fresh PostgreSQL database (`backstop_bench_<random>`, dropped afterwards), starts a real `backstop serve
--migrate` on a free port, and seeds one signed-in account per editor (a session and a CSRF token each, written
directly: no Argon2 per editor). Then each editor sends `PUT /api/drafts/note:<n>` on a fixed schedule, every
`--interval` seconds from a random start (open loop: a slow answer does not slow the schedule down), each save typed
on the version the previous one got, its text (about 1.5 KB) a little longer each time. The requests go over a pool
of keep-alive connections, as they would from a proxy in front of the server. A plain no-op request
(`GET /api/drafts/ping`: no session, no database) is sent in the same run, `--ping-rate` a second, as the floor.

Latency is counted from each request's scheduled moment to its answer (time spent waiting for a free connection
included), over the `--seconds` after a `--warmup`. Figures per run: saves/s answered 200, p50/p99/max of the saves,
p50/p99 of the no-op, non-200 answers by status, and the CPU the server (with its workflow worker), PostgreSQL and
this script used, against the machine's busy share (`/proc/stat`: anything else running shows up there).

    .venv/bin/python bench/draft_saves.py [--editors 500] [--seconds 30] [--interval 2]
    .venv/bin/python bench/draft_saves.py --editors 500,250,100 --database-url postgres://USER@HOST:PORT/ANY_DB
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import free_port, percentile

ROOT = Path(__file__).resolve().parent.parent
TARGET_EDITORS = 500
TARGET_P99_MS = 150.0
TEXT = ("We are moving the launch to the week after the audit, because the audit needs the same two people. "
        "Everything else stays as planned: docs freeze on Monday, the beta list gets its invite on Wednesday. ") * 8


# --- Seeding (a child process with the server's environment) ------------------------------------------

def seed(editors: int) -> None:
    """One account and one signed-in session per editor; prints them as JSON, one per line."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backstop.settings")
    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils.crypto import get_random_string

    from backstop.accounts.models import Account, AccountState

    password = make_password("bench editor passphrase")
    run = uuid.uuid4().hex[:6]
    accounts = Account.objects.bulk_create([
        Account(email=f"editor{n}-{run}@example.com", email_key=f"editor{n}-{run}@example.com", name=f"Editor {n}",
                company="Bench", state=AccountState.ACTIVE, password=password)
        for n in range(editors)
    ])
    for account in accounts:
        session = SessionStore()
        session["_auth_user_id"] = str(account.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = account.get_session_auth_hash()
        session.create()
        print(json.dumps({"session": session.session_key, "csrf": get_random_string(32)}), flush=True)


# --- The database and the server ------------------------------------------------------------------------

@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
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


@dataclass
class Server:
    url: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]


@contextmanager
def running_server(database_url: str, data_dir: Path, threads: int, web_processes: int = 1) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        "BACKSTOP_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "BACKSTOP_BASE_URL": f"http://127.0.0.1:{port}",
        "BACKSTOP_EXECUTOR_ID": f"bench-{uuid.uuid4().hex[:6]}",
        "BACKSTOP_LOG_LEVEL": "WARNING",
        "BACKSTOP_RATE_LIMIT_SCALE": "0",
    }
    log_path = data_dir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "backstop.cli", "serve", "--migrate", "--port", str(port), "--threads",
             str(threads), "--web-processes", str(web_processes)], env=env, stdout=log, stderr=subprocess.STDOUT,
            cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited early:\n{log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/api/drafts/ping", timeout=1).status_code == 204:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not come up:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        yield Server(url=url, port=port, env=env, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def seed_editors(server: Server, editors: int) -> list[dict[str, str]]:
    done = subprocess.run([sys.executable, __file__, "--seed", str(editors)], env=server.env, cwd=ROOT,
                          capture_output=True, check=True, timeout=600)
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")]


# --- CPU ---------------------------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip().startswith("postgres"):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _machine() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class CpuSample:
    server: int
    postgres: int
    bench: int
    busy: int
    total: int

    @classmethod
    def take(cls, server_pid: int) -> CpuSample:
        server = _process_ticks(server_pid) + sum(_process_ticks(c) for c in _children(server_pid))
        busy, total = _machine()
        return cls(server=server, postgres=sum(_process_ticks(p) for p in _postgres_pids()),
                   bench=_process_ticks(os.getpid()), busy=busy, total=total)


# --- The load --------------------------------------------------------------------------------------------

class Connection:
    """One keep-alive HTTP/1.1 connection, spoken by hand: the load generator must cost little CPU."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, head: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        try:
            self.writer.write(head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            await self.writer.drain()
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("closed")
            status = int(status_line.split()[1])
            length, chunked, close = 0, False, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
                elif name == "connection" and "close" in value.lower():
                    close = True
            if chunked:
                data = b""
                while (size := int((await self.reader.readline()).strip(), 16)) > 0:
                    data += await self.reader.readexactly(size + 2)
                await self.reader.readline()
            else:
                data = await self.reader.readexactly(length) if length else b""
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            self.close()
            raise
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Run:
    editors: int
    seconds: float
    web_processes: int = 1
    saves_ms: list[float] = field(default_factory=list)
    pings_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    sent: int = 0


async def load(port: int, sessions: list[dict[str, str]], *, interval: float, warmup: float, seconds: float,
               connections: int, ping_rate: float) -> Run:
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(Connection(port))
    run = Run(editors=len(sessions), seconds=seconds)
    loop = asyncio.get_running_loop()
    start = loop.time() + 1.0
    measure_from, measure_to = start + warmup, start + warmup + seconds

    async def send(head: str, body: bytes, scheduled: float) -> tuple[int, bytes, float]:
        connection = await pool.get()
        try:
            status, data = await connection.request(head, body)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as error:
            status, data = 0, type(error).__name__.encode()
        finally:
            pool.put_nowait(connection)
        return status, data, (loop.time() - scheduled) * 1000

    async def editor(n: int, session: dict[str, str]) -> None:
        version, typed = 0, TEXT
        head = (f"PUT /api/drafts/note:{n} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Cookie: sessionid={session['session']}; csrftoken={session['csrf']}\r\n"
                f"X-CSRFToken: {session['csrf']}\r\nContent-Type: application/json\r\n")
        scheduled = start + random.uniform(0, interval)
        while scheduled < measure_to:
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            typed += random.choice("abcdefghij ") * 3
            body = json.dumps({"fields": {"title": f"Note {n}", "body": typed}, "base_version": version,
                               "save_id": str(uuid.uuid4()), "device": "bench"}).encode()
            status, data, elapsed = await send(head, body, scheduled)
            counted = measure_from <= scheduled < measure_to
            if status == 200:
                version = json.loads(data)["version"]
                if counted:
                    run.saves_ms.append(elapsed)
            elif counted:
                run.failures[str(status) if status else data.decode()] += 1
            if counted:
                run.sent += 1
            scheduled += interval

    async def ping(scheduled: float) -> None:
        head = f"GET /api/drafts/ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        status, _, elapsed = await send(head, b"", scheduled)
        if measure_from <= scheduled < measure_to:
            if status == 204:
                run.pings_ms.append(elapsed)
            else:
                run.failures[f"ping {status}"] += 1

    # Each no-op is sent at its moment whatever the others are doing (as from as many different visitors).
    pings = [start + k / ping_rate for k in range(int((measure_to - start) * ping_rate))]
    await asyncio.gather(*(ping(t) for t in pings), *(editor(n, s) for n, s in enumerate(sessions)))
    while not pool.empty():
        pool.get_nowait().close()
    return run


# --- Main ------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--editors", default=str(TARGET_EDITORS), help="one number, or several: 500,250,100")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between one editor's saves")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections to the server")
    parser.add_argument("--threads", type=int, default=16, help="the server's request threads (per web process)")
    parser.add_argument("--web-processes", default="1",
                        help="`backstop serve --web-processes`: one number, or several (1,2), each run with every "
                             "--editors count")
    parser.add_argument("--ping-rate", type=float, default=20.0, help="no-op requests a second, the floor")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed is not None:
        seed(args.seed)
        return
    counts = [int(n) for n in args.editors.split(",")]
    print(f"load average at start: {' '.join(Path('/proc/loadavg').read_text().split()[:3])} "
          f"({os.cpu_count()} CPUs); each editor saves every {args.interval:g} s for {args.seconds:g} s "
          f"after {args.warmup:g} s of warm-up, over {args.connections} connections, server threads {args.threads}",
          flush=True)
    import tempfile

    rows = []
    for processes in [int(n) for n in args.web_processes.split(",")]:
        for editors in counts:
            with tempfile.TemporaryDirectory() as data_dir, fresh_database(args.database_url) as database_url, \
                    running_server(database_url, Path(data_dir), args.threads, processes) as server:
                sessions = seed_editors(server, editors)
                before = CpuSample.take(server.process.pid)
                run = asyncio.run(load(server.port, sessions, interval=args.interval, warmup=args.warmup,
                                       seconds=args.seconds, connections=args.connections, ping_rate=args.ping_rate))
                after = CpuSample.take(server.process.pid)
                run.web_processes = processes
                rows.append((run, before, after))
                print(f"{editors} editors, {processes} web process(es): {len(run.saves_ms)} saves answered 200 in "
                      f"{run.seconds:g} s, failures {dict(run.failures) or 'none'}; load average now "
                      f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}", flush=True)
    print()
    print_table(rows, args.interval)


def _cpu(ticks: int, seconds: float) -> str:
    return f"{100 * ticks / CLOCK_TICKS / seconds:.0f}%"


def print_table(rows: list[tuple[Run, CpuSample, CpuSample]], interval: float) -> None:
    print("| editors | web processes | offered saves/s | saves/s (200) | save p50 ms | save p99 ms | save max ms "
          "| no-op p50 ms | no-op p99 ms | failures | CPU server | CPU PostgreSQL | CPU bench | machine busy "
          "| target |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")
    for run, before, after in rows:
        # The CPU samples span the load (warm-up and measurement), not the seeding.
        elapsed = max(1e-9, (after.total - before.total) / CLOCK_TICKS / (os.cpu_count() or 1))
        busy = 100 * (after.busy - before.busy) / max(1, after.total - before.total) * (os.cpu_count() or 1)
        p99 = percentile(run.saves_ms, 99)
        verdict = ("ok" if p99 < TARGET_P99_MS and not run.failures else "OVER") if run.editors >= TARGET_EDITORS \
            else ("(under)" if p99 < TARGET_P99_MS and not run.failures else "(over)")
        print(f"| {run.editors} | {run.web_processes} | {run.editors / interval:.0f} "
              f"| {len(run.saves_ms) / run.seconds:.0f} | {percentile(run.saves_ms, 50):.1f} | {p99:.1f} "
              f"| {max(run.saves_ms, default=float('nan')):.0f} "
              f"| {percentile(run.pings_ms, 50):.1f} | {percentile(run.pings_ms, 99):.1f} "
              f"| {sum(run.failures.values())} | {_cpu(after.server - before.server, elapsed)} "
              f"| {_cpu(after.postgres - before.postgres, elapsed)} | {_cpu(after.bench - before.bench, elapsed)} "
              f"| {busy:.0f}% | {verdict} |")
    print(f"target: {TARGET_EDITORS} editors ({TARGET_EDITORS / interval:.0f} saves/s), save p99 under "
          f"{TARGET_P99_MS:.0f} ms, no failures. CPU: share of one core over the run (200% = both cores of a 2-core "
          f"machine). machine busy counts every process, other work on the machine included.")


if __name__ == "__main__":
    main()
