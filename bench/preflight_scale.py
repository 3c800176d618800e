"""The preflight at scale: a migration touching a 1,000,000-row table, tried on a copy while production keeps writing.

A fresh database (SQLite in a temporary directory, or a new PostgreSQL database with --database-url) gets every
migration and 1,000,000 accounts (plain SQL, not the ORM). A pending migration is added after the accounts app's last
one: an index on the company and a unique constraint on the lower-cased email key (the data checks scan every row
for duplicates; the copy must hold the whole table). Then, each in its own process:

- a writer updates and inserts accounts in production, one short transaction every 5 ms, and records how long each
  write waited (start to commit); it runs for a second before the preflight (the baseline) and throughout it;
- the preflight: ``backstop.preflight.runner.run_preflight(using="default")``, timed by its progress callback into
  the copy and the run of the plan, with the process's peak RSS.

Targets: end to end under 120 s on this 2-core machine, no production write waiting more than 50 ms.

    .venv/bin/python bench/preflight_scale.py [--rows 1000000] [--keep]
    .venv/bin/python bench/preflight_scale.py --database-url postgres://USER@HOST:PORT/ANY_DB
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import percentile

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"end_to_end_seconds": 120.0, "writer_max_wait_ms": 50.0}
WRITE_EVERY_SECONDS = 0.005
BASELINE_SECONDS = 3.0
ROWS_PER_BATCH = 20_000
PENDING_PACKAGE = "bench_pending_accounts"
PENDING_MIGRATION = """from django.db import migrations, models
from django.db.models.functions import Lower


class Migration(migrations.Migration):
    dependencies = [("accounts", {leaf!r})]
    operations = [
        migrations.AddIndex(model_name="account", index=models.Index(fields=["company"], name="bench_company_idx")),
        migrations.AddConstraint(model_name="account", constraint=models.UniqueConstraint(
            Lower("email_key"), name="bench_one_account_per_lower_email_key")),
    ]
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backstop.settings")
    import django

    django.setup()


def _use_pending_migration(directory: Path) -> str:
    """Point the accounts app at a package holding its real migrations plus the bench's; return the pending name."""
    from django.conf import settings
    from django.db.migrations.loader import MigrationLoader

    import backstop.accounts.migrations as real

    leaf = next(name for app, name in MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes()
                if app == "accounts")
    package = directory / PENDING_PACKAGE
    if not package.exists():
        package.mkdir()
        (package / "__init__.py").write_text("")
        for path in sorted(Path(real.__file__).parent.glob("[0-9]*.py")):
            (package / path.name).write_text(
                f"import importlib\n\nMigration = importlib.import_module('backstop.accounts.migrations.{path.stem}')"
                ".Migration\n")
        (package / "9001_bench_company_index.py").write_text(PENDING_MIGRATION.format(leaf=leaf))
    sys.path.insert(0, str(directory))
    settings.MIGRATION_MODULES = {"accounts": PENDING_PACKAGE}
    return "accounts.9001_bench_company_index"


# --- Child processes ------------------------------------------------------------------------------------------

def child_prepare(rows: int) -> dict[str, Any]:
    """Every real migration, then ``rows`` accounts written with plain SQL in large transactions."""
    _django()
    from django.core.management import call_command
    from django.db import connection, transaction

    from backstop.accounts.models import Account

    started = time.monotonic()
    call_command("migrate", interactive=False, verbosity=0)
    fields = [field for field in Account._meta.concrete_fields if not field.primary_key]
    constants = {field.name: field.get_db_prep_save(field.get_default(), connection) for field in fields}
    constants.update({"password": "!bench", "state": "active"})
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO accounts_account ({columns}) VALUES ({marks})"  # noqa: S608 - column names from the model
    for first in range(0, rows, ROWS_PER_BATCH):
        batch = []
        for number in range(first, min(first + ROWS_PER_BATCH, rows)):
            address = f"customer{number}@example.com"
            values = {**constants, "email": address, "email_key": address, "name": f"Customer {number}",
                      "company": f"Company {number % 50_000}"}
            batch.append([values[field.name] for field in fields])
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":  # COPY: a million rows in seconds rather than minutes
                with cursor.cursor.copy(f"COPY accounts_account ({columns}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
            else:
                cursor.executemany(sql, batch)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE accounts_account")
    return {"prepare_seconds": round(time.monotonic() - started, 1), "rows": rows}


def child_writer(stop_file: str, result_file: str) -> dict[str, Any]:
    """Production's traffic: an update and an insert per transaction, every few milliseconds, each one timed."""
    _django()
    from django.db import OperationalError, connection, transaction
    from django.utils import timezone

    from backstop.accounts.models import Account

    # (when it began on the machine's monotonic clock, which every process shares; how long it took in ms; whether it
    # gave up waiting for a lock). A write's time mixes lock waits with CPU and disk contention on a shared machine;
    # the lock timeout below singles out the first: a write that waits more than 50 ms for a lock fails and is counted.
    waits: list[tuple[float, float, bool]] = []
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '50ms'" if connection.vendor == "postgresql" else "PRAGMA busy_timeout = 50")
    number = 0
    while not Path(stop_file).exists():
        number += 1
        began = time.monotonic()
        lock_timeout = False
        try:
            with transaction.atomic():
                Account.objects.filter(pk=number % 1000 + 1).update(setup_run=number)
                address = f"writer{number}-{uuid.uuid4().hex[:6]}@example.com"
                Account.objects.create(email=address, email_key=address, name="Writer", company="Writer Co",
                                       password="!bench", created_at=timezone.now())
        except OperationalError:  # lock_timeout (PostgreSQL) or "database is locked" after busy_timeout (SQLite)
            lock_timeout = True
        ended = time.monotonic()
        waits.append((began, (ended - began) * 1000, lock_timeout))
        time.sleep(max(0.0, WRITE_EVERY_SECONDS - (time.monotonic() - ended)))
    connection.close()
    Path(result_file).write_text(json.dumps(waits))
    return {"writes": len(waits)}


def child_preflight(work_dir: str) -> dict[str, Any]:
    _django()
    pending = _use_pending_migration(Path(work_dir))
    from backstop.preflight.plan import pending_plan, plan_names
    from backstop.preflight.runner import run_preflight

    assert plan_names(pending_plan()) == [pending], plan_names(pending_plan())
    marks: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        marks.setdefault(f"{stage}_first", now)
        marks[f"{stage}_last"] = now

    started = time.monotonic()
    run = run_preflight(using="default", source=None, progress=progress)
    ended = time.monotonic()
    # The copy ends where the plan starts to run on it.
    copy_ended = marks.get("migrate_first", marks.get("copy_last", ended))
    return {
        "passed": run.passed,
        "vendor": run.vendor,
        "preflight_seconds": round(ended - started, 2),
        "copy_seconds": round(copy_ended - started, 2),
        "run_seconds": round(ended - copy_ended, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "window": [started, ended],
        "migrations": [{key: entry.get(key) for key in ("migration", "status", "seconds")}
                       for entry in run.report.get("migrations", [])],
        "error": run.report.get("error"),
    }


def run_child(role: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    output = subprocess.run([sys.executable, __file__, "--child", role, *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, check=False)
    if output.returncode:
        raise SystemExit(f"{role} failed:\n{output.stderr[-4000:]}")
    return dict(json.loads(output.stdout.strip().splitlines()[-1]))


# --- The parent ---------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server to create the bench database on (named <its database>_bench_<id>)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("child_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = {"prepare": lambda: child_prepare(int(args.child_args[0])),
                  "writer": lambda: child_writer(*args.child_args),
                  "preflight": lambda: child_preflight(args.child_args[0])}[args.child]()
        print(json.dumps(result))
        return

    work = Path(tempfile.mkdtemp(prefix="preflight-bench-"))
    env = {**os.environ, "BACKSTOP_DATA_DIR": str(work), "BACKSTOP_LOG_LEVEL": "ERROR", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("DATABASE_URL", None)
    admin_url = ""
    name = ""
    if args.database_url:
        # Named after the database the URL gives, so scratch databases are recognisably whose.
        name = f"{args.database_url.rsplit('/', 1)[1] or 'backstop'}_bench_{uuid.uuid4().hex[:8]}"
        import psycopg

        admin_url = args.database_url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        env["DATABASE_URL"] = args.database_url.rsplit("/", 1)[0] + f"/{name}"
    results: dict[str, Any] = {"database": "postgresql" if admin_url else "sqlite"}
    writer: subprocess.Popen[str] | None = None
    try:
        results["prepare"] = run_child("prepare", env, str(args.rows))
        stop_file, waits_file = work / "stop", work / "waits.json"
        writer = subprocess.Popen([sys.executable, __file__, "--child", "writer", str(stop_file), str(waits_file)],
                                  env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(BASELINE_SECONDS + 3)  # the writer's Django start, then a baseline
        preflight = run_child("preflight", env, str(work))
        time.sleep(0.5)
        stop_file.touch()
        writer.wait(timeout=60)
        writes = json.loads(waits_file.read_text()) if waits_file.exists() else []
        window = preflight.pop("window")
        results["preflight"] = preflight
        results["writer"] = summarize(writes, window=window)
        results["targets"] = TARGETS
        results["met"] = {
            "end_to_end": preflight["preflight_seconds"] <= TARGETS["end_to_end_seconds"],
            "writer_max_wait": results["writer"]["during_max_ms"] <= TARGETS["writer_max_wait_ms"],
            "no_lock_wait_over_50_ms": results["writer"].get("during_lock_waits_over_50_ms") == 0,
        }
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
        if admin_url and not args.keep:
            import psycopg

            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))


def summarize(writes: list[list[Any]], *, window: list[float]) -> dict[str, Any]:
    """The writes before the preflight (the baseline) and those that began while it ran."""
    during = [(wait, locked) for at, wait, locked in writes if window[0] <= at <= window[1]]
    before = [wait for at, wait, _ in writes if at < window[0]]
    if not during:
        return {"writes": len(writes), "during_max_ms": float("inf")}
    times = [wait for wait, _ in during]
    return {
        "writes": len(writes),
        "baseline_writes": len(before),
        "baseline_max_ms": round(max(before), 1) if before else None,
        "during_writes": len(during),
        "during_p50_ms": round(percentile(times, 50), 2),
        "during_p99_ms": round(percentile(times, 99), 2),
        "during_max_ms": round(max(times), 1),
        "during_over_50_ms": sum(1 for wait in times if wait > 50),
        "during_lock_waits_over_50_ms": sum(1 for _, locked in during if locked),
    }


if __name__ == "__main__":
    main()
