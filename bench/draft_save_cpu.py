"""CPU one draft save costs the web process, in-process: no HTTP server, no other process, so the figure does not move
with the machine's load the way a latency does.

Migrates the database DATABASE_URL names (or `--database-url`; PostgreSQL, use one of your own), seeds `--editors`
signed-in accounts as `bench/draft_saves.py` does, then sends `PUT /api/drafts/note:<n>` through the site's WSGI
application (every middleware, the API, the ORM, PostgreSQL) one after the other, each typed on the version the
previous one got, and prints the process's CPU (`time.process_time`) per save. `--profile` prints cProfile's top
functions by their own time and by cumulative time as well.

    DATABASE_URL=postgres://USER@HOST:PORT/OWN_DB .venv/bin/python bench/draft_save_cpu.py [--saves 3000] [--profile]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
import uuid
from typing import Any

TEXT = ("We are moving the launch to the week after the audit, because the audit needs the same two people. "
        "Everything else stays as planned: docs freeze on Monday, the beta list gets its invite on Wednesday. ") * 8


def _environ(*, method: str, path: str, body: bytes, cookies: str, csrf: str) -> dict[str, Any]:
    """What waitress hands the application for one request from the bench's client."""
    return {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000", "HTTP_COOKIE": cookies, "HTTP_X_CSRFTOKEN": csrf,
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False, "wsgi.version": (1, 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=3000)
    parser.add_argument("--editors", type=int, default=50)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        raise SystemExit("--database-url (or DATABASE_URL) must name a PostgreSQL database of your own")
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("BACKSTOP_LOG_LEVEL", "WARNING")
    os.environ.setdefault("BACKSTOP_RATE_LIMIT_SCALE", "0")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backstop.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from draft_saves import seed  # bench/ is on the path: the scripts run as files

    out = io.StringIO()
    real_stdout, sys.stdout = sys.stdout, out
    try:
        seed(args.editors)
    finally:
        sys.stdout = real_stdout
    sessions = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]

    from backstop.wsgi import application

    versions = [0] * len(sessions)
    typed = [TEXT] * len(sessions)

    def save(n: int) -> None:
        session = sessions[n]
        typed[n] += random.choice("abcdefghij ") * 3
        body = json.dumps({"fields": {"title": f"Note {n}", "body": typed[n]}, "base_version": versions[n],
                           "save_id": str(uuid.uuid4()), "device": "bench"}).encode()
        environ = _environ(method="PUT", path=f"/api/drafts/note:{n}", body=body, csrf=session["csrf"],
                           cookies=f"sessionid={session['session']}; csrftoken={session['csrf']}")
        statuses: list[str] = []
        chunks = application(environ, lambda status, headers, exc_info=None: statuses.append(status))
        data = b"".join(chunks)
        getattr(chunks, "close", lambda: None)()
        if not statuses[0].startswith("200"):
            raise SystemExit(f"save answered {statuses[0]}: {data[:300]!r}")
        versions[n] = json.loads(data)["version"]

    for n in range(len(sessions)):  # each editor's first save makes its draft (an INSERT): not the usual save
        save(n)
    for n in range(min(200, args.saves)):  # warm-up
        save(n % len(sessions))

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not the wait for PostgreSQL
        profiler.enable()
    per_save = []
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    for k in range(args.saves):
        before = time.process_time()
        save(k % len(sessions))
        per_save.append(time.process_time() - before)
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started_wall
    if profiler is not None:
        profiler.disable()
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print(f"{args.saves} saves: CPU {1000 * cpu / args.saves:.3f} ms a save (median of single saves "
          f"{1000 * statistics.median(per_save):.3f} ms), wall {1000 * wall / args.saves:.3f} ms a save "
          f"(load average {load})")
    if profiler is not None:
        import pstats

        for key in ("tottime", "cumulative"):
            pstats.Stats(profiler).sort_stats(key).print_stats(int(os.environ.get("PROFILE_LINES", "35")))


if __name__ == "__main__":
    main()
