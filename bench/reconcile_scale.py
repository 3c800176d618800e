"""Reconciliation at scale: 1,000,000 processor payments, 0.1% of them without a local order, 1% refunded.

The payments are written straight into a fakepay database with its bulk insert (no HTTP); the local
purchase attempts and orders are written with plain SQL. Then, each in a fresh child process so its peak
memory is its own:

1. a full reconciliation (`reconcile_payments(full=True)`) through fakepay's HTTP list API, which finds the
   1,000 payments without an order and rebuilds them (order, entitlement, queued confirmation), and compares the
   10,000 refunded payments' totals (fakepay's refund list against our refunded orders), applying the 100 refunds
   our books missed;
2. 1,000 new payments arrive (one of them without an order) and an incremental reconciliation runs from
   the stored watermark.

Reported: wall time, payments read, fixes made, peak RSS (resource.getrusage) of the reconciling process, plus
fakepay's own peak, and CPU: the reconciler's own and fakepay's, in seconds and in microseconds per payment read.
Targets: full < 60 s, incremental < 2 s, peak RSS < 256 MB.

    .venv/bin/python bench/reconcile_scale.py [--payments 1000000] [--new 1000] [--keep]
    .venv/bin/python bench/reconcile_scale.py --database-url postgres://USER@HOST:PORT/ANY_DB

SQLite by default; with --database-url a fresh PostgreSQL database is created and dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import free_port, process_cpu_seconds, throwaway_database_name

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"full_seconds": 60.0, "incremental_seconds": 2.0, "peak_rss_mb": 256.0}
MISSING_EVERY = 1000  # 0.1% of payments have no local order
# 1% of payments were refunded in full at the processor a minute after they were made (number % 100 == 50, so never one
# without an order); our books know of all but 0.01% of them (number % 10000 == 50), which the full pass applies.
REFUNDED_EVERY, REFUNDED_AT = 100, 50
UNKNOWN_REFUND_EVERY = 10_000
SPREAD_DAYS = 30
AMOUNT = 24900
ROWS_PER_BATCH = 20_000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- Child processes: Django in a fresh interpreter ---------------------------------------------------

def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backstop.settings")
    import django

    django.setup()


def child_prepare() -> dict[str, Any]:
    """Schema for the app and the workflow engine (the reconciler queues confirmation emails through it)."""
    _django()
    from django.core.management import call_command

    from backstop.runtime import engine

    call_command("migrate", interactive=False, verbosity=0)
    engine.launch(role="bench-setup")
    engine.shutdown()
    return {}


def _payment_id(number: int) -> str:
    return f"pi_bench{number:012d}"


def _refunded_there(number: int) -> bool:
    return number % REFUNDED_EVERY == REFUNDED_AT


def _refunded_here(number: int) -> bool:
    return _refunded_there(number) and number % UNKNOWN_REFUND_EVERY != REFUNDED_AT


def child_seed(first: int, count: int, created_from: int, step: float) -> dict[str, Any]:
    """Attempts for every payment, orders for all but every MISSING_EVERY-th (their order row is lost)."""
    _django()
    from django.db import connection, transaction

    from backstop.billing.models import Product

    product = Product.objects.get(code="annual")
    started = time.monotonic()
    attempt_sql = (
        "INSERT INTO billing_purchaseattempt (id, reference, idempotency_key, request_fingerprint, product_id,"
        " amount_cents, currency, email, email_key, payment_method, state, payment_id, decline_code,"
        " decline_message, last_error, charge_calls, interrupted, created_at, updated_at, charged_at, fulfilled_at,"
        " settled_at, buyer_saw)"
        " VALUES (%s, %s, %s, 'bench', %s, %s, 'usd', %s, %s, 'pm_card_visa', 'fulfilled', %s, '', '', '', 1, %s,"
        " %s, %s, %s, %s, %s, 'paid')"
    )
    order_sql = (
        "INSERT INTO billing_order (reference, attempt_id, product_id, email, email_key, amount_cents, currency,"
        " payment_id, payment_created_at, status, fulfilled_by, refunded_cents, refund_id, refunded_at, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'usd', %s, %s, %s, 'checkout', %s, '', %s, %s)"
    )
    for batch_start in range(first, first + count, ROWS_PER_BATCH):
        attempts, orders = [], []
        for number in range(batch_start, min(batch_start + ROWS_PER_BATCH, first + count)):
            created = dt.datetime.fromtimestamp(int(created_from + (number - first) * step), tz=dt.UTC)
            reference = f"BK-{number:05d}-{number // 100000:05d}"[:20]
            email = f"buyer{number}@example.com"
            # Plain ASCII addresses: the identity key is the address itself (lib.email_identity).
            attempts.append((number, reference, f"bench-{number}", product.pk, AMOUNT, email, email,
                             _payment_id(number), False, created, created, created, created, created))
            if number % MISSING_EVERY:
                refunded = _refunded_here(number)
                orders.append((reference, number, product.pk, email, email, AMOUNT, _payment_id(number), created,
                               "refunded" if refunded else "paid", AMOUNT if refunded else 0,
                               created + dt.timedelta(minutes=1) if refunded else None, created))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(attempt_sql, attempts)
            cursor.executemany(order_sql, orders)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval(pg_get_serial_sequence('billing_purchaseattempt', 'id'), %s)",
                           [first + count])
            cursor.execute("ANALYZE")
    return {"seconds": time.monotonic() - started}


def child_reconcile(full: bool) -> dict[str, Any]:
    _django()
    from backstop.billing.reconcile import reconcile_payments

    baseline = peak_rss_mb()
    cpu_before = cpu_seconds()
    started = time.monotonic()
    if full and os.environ.get("RECONCILE_PROFILE"):
        import cProfile

        with cProfile.Profile() as profiler:  # the walking thread only; fetching and fixing run on their own
            summary = reconcile_payments(actor="bench", full=full)
        profiler.dump_stats(os.environ["RECONCILE_PROFILE"])
    else:
        summary = reconcile_payments(actor="bench", full=full)
    return {"seconds": time.monotonic() - started, "peak_rss_mb": peak_rss_mb(), "rss_after_import_mb": baseline,
            "cpu_seconds": cpu_seconds() - cpu_before, "summary": summary.as_dict()}


# --- Parent ------------------------------------------------------------------------------------------

def run_child(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, __file__, "--child", *args], env=env, cwd=ROOT, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{result.stdout}\n{result.stderr}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def generate_payments(db_path: Path, first: int, count: int, created_from: int, step: float) -> float:
    from backstop.fakepay import store

    def rows() -> Iterator[dict[str, Any]]:
        for number in range(first, first + count):
            created = int(created_from + (number - first) * step)
            yield {"id": _payment_id(number), "amount": AMOUNT, "created": created,
                   "receipt_email": f"buyer{number}@example.com",
                   "metadata": {"attempt_id": str(number), "email": f"buyer{number}@example.com"},
                   "amount_refunded": AMOUNT if _refunded_there(number) else 0, "refunded": created + 60}

    started = time.monotonic()
    store.insert_payment_intents_bulk(db_path, rows())
    return time.monotonic() - started


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=1_000)
    parser.add_argument("--database-url", default="", help="PostgreSQL server to create a throwaway database on")
    parser.add_argument("--keep", action="store_true", help="keep the data directory (its path is printed)")
    parser.add_argument("--profile", default="", metavar="FILE",
                        help="write a cProfile of the full run's walking thread to FILE (pstats format)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, *rest = args.child
        if mode == "prepare":
            out = child_prepare()
        elif mode == "generate":
            out = {"seconds": generate_payments(Path(rest[0]), int(rest[1]), int(rest[2]), int(rest[3]),
                                                float(rest[4]))}
        elif mode == "seed":
            out = child_seed(int(rest[0]), int(rest[1]), int(rest[2]), float(rest[3]))
        else:
            out = child_reconcile(full=mode == "full")
        print(json.dumps(out))
        return

    data_dir = Path(tempfile.mkdtemp(prefix="backstop-reconcile-bench-"))
    database_url, admin_url = "", ""
    if args.database_url:
        import psycopg

        base = args.database_url.split("?", 1)[0].rsplit("/", 1)[0]
        admin_url = f"{base}/postgres"
        database_url = f"{base}/{throwaway_database_name(args.database_url)}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database_url.rsplit("/", 1)[1]}"')
    fakepay_db = data_dir / "fakepay.sqlite3"
    port = free_port()
    env = {**os.environ, "BACKSTOP_DATA_DIR": str(data_dir), "DATABASE_URL": database_url,
           "STRIPE_API_BASE": f"http://127.0.0.1:{port}", "BACKSTOP_RECONCILE_SETTLE_SECONDS": "0",
           "BACKSTOP_RECONCILE_SCHEDULE": "", "BACKSTOP_LOG_LEVEL": "ERROR", "BACKSTOP_FAULT_INJECTION": "0",
           "BACKSTOP_FAULTS": "", "BACKSTOP_EMAIL": "mailbox"}
    if args.profile:
        env["RECONCILE_PROFILE"] = str(Path(args.profile).resolve())
    fakepay = None
    try:
        print(f"data in {data_dir} ({'PostgreSQL' if database_url else 'SQLite'})", flush=True)
        run_child(env, "prepare")
        now = int(time.time())
        # The million payments end two hours ago; the new ones arrive in the last minute.
        created_from = now - SPREAD_DAYS * 86400 - 7200
        step = (SPREAD_DAYS * 86400) / args.payments
        generated = float(run_child(env, "generate", str(fakepay_db), "1", str(args.payments), str(created_from),
                                    str(step))["seconds"])
        seeded = run_child(env, "seed", "1", str(args.payments), str(created_from), str(step))
        print(f"generated {args.payments:,} processor payments in {generated:.1f} s, "
              f"local attempts and orders in {seeded['seconds']:.1f} s", flush=True)

        log = open(data_dir / "fakepay.log", "wb")
        fakepay = subprocess.Popen([sys.executable, "-m", "backstop.cli", "fakepay", "--port", str(port), "--db",
                                    str(fakepay_db)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/_fakepay/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)

        fakepay_cpu = process_cpu_seconds(fakepay.pid)
        full = run_child(env, "full")
        full["fakepay_cpu_seconds"] = process_cpu_seconds(fakepay.pid) - fakepay_cpu
        first_new = args.payments + 1
        run_child(env, "generate", str(fakepay_db), str(first_new), str(args.new), str(now - 60),
                  str(50 / max(args.new, 1)))
        run_child(env, "seed", str(first_new), str(args.new), str(now - 60), str(50 / max(args.new, 1)))
        fakepay_cpu = process_cpu_seconds(fakepay.pid)
        incremental = run_child(env, "incremental")
        incremental["fakepay_cpu_seconds"] = process_cpu_seconds(fakepay.pid) - fakepay_cpu
        fakepay_peak = vm_hwm_mb(fakepay.pid)
        report(args, full, incremental, fakepay_peak)
    finally:
        if fakepay is not None:
            fakepay.terminate()
            fakepay.wait(timeout=10)
        if admin_url:
            import psycopg

            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)')
        if args.keep:
            print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def report(args: argparse.Namespace, full: dict[str, Any], incremental: dict[str, Any], fakepay_peak: float) -> None:
    rows = []
    for name, run, target in (("full", full, TARGETS["full_seconds"]),
                              ("incremental", incremental, TARGETS["incremental_seconds"])):
        summary = run["summary"]
        rate = summary["payments_seen"] / run["seconds"] if run["seconds"] else 0.0
        seen = max(summary["payments_seen"], 1)
        rows.append(f"{name:<12} {run['seconds']:>8.1f} s (target < {target:g} s: "
                    f"{'met' if run['seconds'] < target else 'MISSED'})  {summary['payments_seen']:>10,} payments "
                    f"({rate:,.0f}/s)  rebuilt {summary['orders_recreated']:,}  matched {summary['orders_matched']:,}  "
                    f"refunds applied {summary['refunds_applied']:,}  "
                    f"peak RSS {run['peak_rss_mb']:.0f} MB (after imports {run['rss_after_import_mb']:.0f} MB; "
                    f"target < {TARGETS['peak_rss_mb']:g} MB: "
                    f"{'met' if run['peak_rss_mb'] < TARGETS['peak_rss_mb'] else 'MISSED'})  "
                    f"CPU: reconciler {run['cpu_seconds']:.1f} s ({run['cpu_seconds'] / seen * 1e6:.0f} us/payment), "
                    f"fakepay {run['fakepay_cpu_seconds']:.1f} s "
                    f"({run['fakepay_cpu_seconds'] / seen * 1e6:.0f} us/payment)")
    print("\n".join(rows))
    print(f"fakepay peak RSS {fakepay_peak:.0f} MB; {os.cpu_count()} CPUs; load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for run in (full, incremental):
        if run["summary"]["problems"]:
            print("problems:", run["summary"]["problems"])


if __name__ == "__main__":
    main()
