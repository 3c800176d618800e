"""Support desk under load: p50/p95 of the desk queue and of a case page through a real `backstop serve` process.

Seeds 10,000 customers with 10,000 cases (7,000 open, one incident holding 300 of them, 3,000 resolved this week)
and 100,000 account timeline events (every third customer with an order, every fourth with a message), and 200 past
incident records with updates and post-mortems (the search box finds those too), signs in as
staff, then fetches /desk, random /desk/cases/<id> pages and the search box's answers as typed (fragments of
addresses, names, order references, payment ids, words of messages), one client at a time and then from several
clients at once. Targets: p95 under 200 ms for the pages, under 100 ms for search. The support cycle is parked
during the measurement (steady state: what a person opening the desk waits for).

    .venv/bin/python bench/desk_load.py [--cases 10000] [--events 100000] [--requests 200] [--clients 4]
    .venv/bin/python bench/desk_load.py --database-url postgres://USER@HOST:PORT/ANY_DB
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import free_port, percentile

ROOT = Path(__file__).resolve().parent.parent
TARGET_P95_MS = 200.0
SEARCH_TARGET_P95_MS = 100.0
MESSAGE_WORDS = ["invoice", "refund", "workspace", "password", "locked", "charged", "twice", "export", "billing",
                 "address", "upgrade", "cancel", "receipt", "login", "error", "slow", "missing", "team"]
STAFF_EMAIL = "bench-staff@backstop.localhost"
STAFF_PASSWORD = "bench staff passphrase"


# --- Seeding (runs in a child process with the server's environment) ---------------------------------

def seed(cases: int, events: int) -> None:
    """Migrate and write the data set with bulk inserts (the shapes the app writes, not its slow paths)."""
    import datetime as dt

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backstop.settings")
    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from backstop.accounts.models import Account, AccountEvent, AccountState, SetupStep, StepName, StepStatus
    from backstop.accounts.staff import ensure_staff_account
    from backstop.attention.models import AttentionKind, Harm
    from backstop.billing.models import AttemptState, FulfilledBy, Order, Product, PurchaseAttempt
    from backstop.notify.models import DeliveryStatus, Message
    from backstop.support.models import (
        ActionOutcome,
        Case,
        CaseState,
        Contact,
        Incident,
        IncidentState,
        Resolution,
        Signal,
        SignalKind,
        SupportAction,
    )
    from backstop.support.search import reindex_all, reindex_incident_records

    call_command("migrate", interactive=False, verbosity=0)
    ensure_staff_account(email=STAFF_EMAIL, password=STAFF_PASSWORD)
    now = timezone.now()
    rng = random.Random(7)
    batch = 5000

    accounts = Account.objects.bulk_create([
        Account(email=f"customer{i}@example.com", email_key=f"customer{i}@example.com", name=f"Customer {i}",
                company=f"Company {i}", phone="+14155550100", password="!", state=AccountState.ACTIVE,
                created_at=now - dt.timedelta(days=rng.uniform(0, 6.9)), activated_at=now)
        for i in range(cases)
    ], batch_size=batch)
    accounts = list(Account.objects.filter(email_key__startswith="customer").order_by("pk"))
    SetupStep.objects.bulk_create([
        SetupStep(account=a, name=name, status=StepStatus.DONE, attempts=1, done_at=now)
        for a in accounts for name in (StepName.WORKSPACE, StepName.WELCOME_EMAIL)
    ], batch_size=batch)
    per_account = max(1, events // len(accounts))
    texts = ["Signed up.", "Workspace: attempt 1 failed: the workspace provider answered with an error.",
             "Welcome email: done on attempt 1.", "Signed in with password.", "A sign-in code was sent."]
    AccountEvent.objects.bulk_create([
        AccountEvent(account=a, kind="bench", text=rng.choice(texts),
                     created_at=a.created_at + dt.timedelta(minutes=n))
        for a in accounts for n in range(per_account)
    ], batch_size=batch)
    Message.objects.bulk_create([
        Message(key=f"welcome:{a.pk}", account=a, channel="email", kind="welcome", to=a.email,
                subject="Welcome to Backstop", text="Hello", status=DeliveryStatus.SENT, attempts=1, sent_at=now)
        for a in accounts
    ], batch_size=batch)

    incident = Incident.objects.create(cause="provider:email", provider="email", state=IncidentState.OPEN,
                                       started_at=now - dt.timedelta(minutes=40),
                                       last_error="the email provider did not answer within 10 seconds")
    kinds = [(AttentionKind.SETUP_STALLED, Harm.LOCKED_OUT, "provider:workspace"),
             (AttentionKind.EMAIL_UNDELIVERED, Harm.DEGRADED, "provider:email"),
             (SignalKind.CONTACT, Harm.QUESTION, ""),
             (AttentionKind.PAYMENT_UNRESOLVED, Harm.MONEY, "")]
    case_rows: list[Case] = []
    waiting_on_incident = 0
    for i, account in enumerate(accounts):
        kind, harm, cause = kinds[i % len(kinds)]
        opened = now - dt.timedelta(hours=rng.uniform(0, 160))
        resolved = i % 10 >= 7  # 3 in 10 resolved this week
        resolved_at = min(now, opened + dt.timedelta(hours=rng.uniform(0.1, 8))) if resolved else None
        in_incident = not resolved and i % 10 == 0 and waiting_on_incident < 300
        waiting_on_incident += in_incident
        case_rows.append(Case(
            customer_key=account.email_key, email=account.email, account=account, harm=harm, kinds=[kind],
            cause=cause, summary=f"Bench problem {i}: {kind} ({cause or 'no cause'})", version=1, opened_at=opened,
            updated_at=opened, incident=incident if in_incident else None,
            state=CaseState.RESOLVED if resolved else CaseState.OPEN,
            resolved_at=resolved_at,
            resolution_seconds=round((resolved_at - opened).total_seconds()) if resolved_at else None,
            resolution=(Resolution.AUTOMATION if i % 2 else Resolution.STAFF) if resolved else "",
        ))
    Case.objects.bulk_create(case_rows, batch_size=batch)
    created = list(Case.objects.order_by("pk"))
    Signal.objects.bulk_create([
        Signal(case=c, kind=c.kinds[0], cause=c.cause, harm=c.harm, summary=c.summary, detail={},
               source=f"bench:{c.pk}", created_at=c.opened_at, cleared_at=c.resolved_at)
        for c in created
    ], batch_size=batch)
    SupportAction.objects.bulk_create([
        SupportAction(idempotency_key=f"bench:{c.pk}", case=c, action="retry_setup", outcome=ActionOutcome.DONE,
                      note="Setup started again.", before={"case": {"state": "open"}},
                      after={"case": {"state": "open"}}, created_at=c.opened_at, finished_at=c.opened_at)
        for c in created[::5]
    ], batch_size=batch)
    plan = Product.objects.get(code="annual")
    buyers = accounts[::3]
    PurchaseAttempt.objects.bulk_create([
        PurchaseAttempt(idempotency_key=f"bench:{a.pk}", request_fingerprint="bench", product=plan, amount_cents=24900,
                        currency="usd", email=a.email, email_key=a.email_key, account=a,
                        payment_method="pm_card_visa", reference=f"BA-{a.pk:06d}", payment_id=f"pi_bench{a.pk:06d}",
                        # Settled, as a checkout with an order is: a "recorded" one is charged by the server's
                        # purchase workflows, thousands of them running beside the pages being timed.
                        state=AttemptState.FULFILLED, charge_calls=1, charged_at=a.created_at)
        for a in buyers
    ], batch_size=batch)
    attempts = {t.account_id: t for t in PurchaseAttempt.objects.filter(idempotency_key__startswith="bench:")}
    Order.objects.bulk_create([
        Order(reference=f"BK-{a.pk:06d}", attempt=attempts[a.pk], product=plan, email=a.email, email_key=a.email_key,
              account=a, amount_cents=24900, currency="usd", payment_id=f"pi_bench{a.pk:06d}",
              payment_created_at=a.created_at, fulfilled_by=FulfilledBy.CHECKOUT)
        for a in buyers
    ], batch_size=batch)
    Contact.objects.bulk_create([
        Contact(case=c, email=c.email, customer_key=c.customer_key, account_id=c.account_id,
                text=" ".join(rng.choice(MESSAGE_WORDS) for _ in range(30)), our_reference=f"S-{c.pk:07d}",
                public_reply="", private_reply="", needs_human=True, created_at=c.opened_at, answered_at=c.opened_at)
        for c in created[::4]
    ], batch_size=batch)
    seed_incident_records(now=now, rng=rng)
    started = time.monotonic()
    reindex_all()  # the search entries the services write one by one, for the bulk-inserted rows
    reindex_incident_records()
    print(f"search entries written in {time.monotonic() - started:.0f} s", flush=True)
    print(f"seeded {len(accounts):,} customers, {len(created):,} cases, "
          f"{AccountEvent.objects.count():,} timeline events", flush=True)


INCIDENT_RECORDS = 200


def seed_incident_records(*, now: dt.datetime, rng: random.Random) -> None:
    """Past incidents with their updates and a post-mortem each (~3 kB): what the search box reads besides the cases.
    200 is years of a small team's incidents."""
    from backstop.incidents.models import Incident as IncidentRecord
    from backstop.incidents.models import IncidentState as RecordState
    from backstop.incidents.models import IncidentUpdate, OpenedBy, PostMortem

    capabilities = ["workspace", "email", "sms", "payments"]
    records = IncidentRecord.objects.bulk_create([
        IncidentRecord(title=f"Bench incident {i}: {capabilities[i % 4]} " + " ".join(rng.sample(MESSAGE_WORDS, 2)),
                       capability=capabilities[i % 4], opened_by=OpenedBy.STAFF, state=RecordState.RESOLVED,
                       started_at=now - dt.timedelta(days=i * 2 + 1), detected_at=now - dt.timedelta(days=i * 2 + 1),
                       resolved_at=now - dt.timedelta(days=i * 2), last_error="the provider answered 503")
        for i in range(INCIDENT_RECORDS)])
    records = list(IncidentRecord.objects.order_by("pk"))
    IncidentUpdate.objects.bulk_create([
        IncidentUpdate(incident=r, idempotency_key=f"bench:{r.pk}:{n}", state=RecordState.INVESTIGATING,
                       body=" ".join(rng.choice(MESSAGE_WORDS) for _ in range(25)), created_at=r.started_at)
        for r in records for n in range(3)])
    PostMortem.objects.bulk_create([
        PostMortem(incident=r, markdown="\n\n".join(
            f"## Section {n}\n" + " ".join(rng.choice(MESSAGE_WORDS) for _ in range(60)) for n in range(8)),
            review_due_at=r.started_at + dt.timedelta(days=30))
        for r in records])


# --- Databases and the server ------------------------------------------------------------------------

@dataclass
class Database:
    data_dir: Path
    url: str

    @property
    def label(self) -> str:
        return "SQLite" if not self.url else f"PostgreSQL ({self.url.rsplit('/', 1)[1]})"


@contextmanager
def fresh_database(server_url: str, data_dir: Path) -> Iterator[Database]:
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


def server_env(database: Database, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "BACKSTOP_DATA_DIR": str(database.data_dir),
        "DATABASE_URL": database.url,
        "BACKSTOP_BASE_URL": f"http://127.0.0.1:{port}",
        "BACKSTOP_EXECUTOR_ID": f"bench-{uuid.uuid4().hex[:6]}",
        "BACKSTOP_LOG_LEVEL": "WARNING",
        "BACKSTOP_RATE_LIMIT_SCALE": "0",
        # Steady state: the cycle is not writing while pages are timed.
        "BACKSTOP_SUPPORT_CYCLE_SECONDS": "86400",
    }


@contextmanager
def running_server(database: Database) -> Iterator[str]:
    port = free_port()
    env = server_env(database, port)
    log_path = database.data_dir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "backstop.cli", "serve", "--port", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited early:\n{log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/api/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the server did not come up:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def signed_in_client(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    client.get("/login")
    token = client.cookies.get("csrftoken") or ""
    answer = client.post("/login", data={"email": STAFF_EMAIL, "password": STAFF_PASSWORD,
                                         "csrfmiddlewaretoken": token}, headers={"Referer": f"{url}/login"})
    if answer.status_code != 302:
        raise SystemExit(f"staff sign-in failed: {answer.status_code}")
    return client


# --- Measuring ------------------------------------------------------------------------------------------

@dataclass
class Result:
    page: str
    clients: int
    latencies_ms: list[float]
    target_ms: float = TARGET_P95_MS

    def row(self) -> str:
        p95 = percentile(self.latencies_ms, 95)
        verdict = "ok" if p95 < self.target_ms else "OVER"
        return (f"| {self.page:<22} | {self.clients:>7} | {len(self.latencies_ms):>8} | "
                f"{percentile(self.latencies_ms, 50):>8.1f} | {p95:>8.1f} | {max(self.latencies_ms):>8.1f} | "
                f"{verdict:<7} |")


def timed_gets(client: httpx.Client, paths: list[str]) -> list[float]:
    latencies = []
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}")
    return latencies


def measure(url: str, page: str, paths: list[str], clients: int, target_ms: float = TARGET_P95_MS) -> Result:
    sessions = [signed_in_client(url) for _ in range(clients)]
    for session in sessions:
        timed_gets(session, paths[:5])  # warm-up: connections, template caches
    share = [paths[i::clients] for i in range(clients)]
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = [ms for part in pool.map(timed_gets, sessions, share) for ms in part]
    return Result(page=page, clients=clients, latencies_ms=latencies, target_ms=target_ms)


def search_queries(rng: random.Random, args: argparse.Namespace) -> list[str]:
    """What an agent types, in the shares one might: address fragments (each prefix of it, as results come while
    typing), names, order references, payment ids, words of messages, and the very address."""
    queries: list[str] = []
    while len(queries) < args.requests:
        n = rng.randrange(1, args.cases + 1)
        kind = rng.choice(["fragment", "name", "order", "payment", "words", "address"])
        if kind == "fragment":
            queries += [f"customer{n}"[:size] for size in range(3, len(f"customer{n}") + 1)][-3:]
        elif kind == "name":
            queries.append(f"Customer {n}")
        elif kind == "order":
            queries.append(f"BK-{n:06d}"[:rng.randrange(5, 10)])
        elif kind == "payment":
            queries.append(f"pi_bench{n:06d}")
        elif kind == "words":
            queries.append(" ".join(rng.sample(MESSAGE_WORDS, 2)))
        else:
            queries.append(f"customer{n}@example.com")
    return [query.replace(" ", "+").replace("@", "%40") for query in queries[:args.requests]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page and run")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients in the second run")
    parser.add_argument("--database-url", default="", help="a PostgreSQL server to use instead of SQLite")
    parser.add_argument("--seed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        seed(args.cases, args.events)
        return

    with tempfile.TemporaryDirectory(prefix="desk-bench-") as tmp, \
            fresh_database(args.database_url, Path(tmp)) as database:
        started = time.monotonic()
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--seed", "--cases", str(args.cases),
                        "--events", str(args.events)], env=server_env(database, 0), cwd=ROOT, check=True)
        print(f"{database.label}: seeded in {time.monotonic() - started:.0f} s", flush=True)
        with running_server(database) as url:
            rng = random.Random(11)
            ids = list(range(1, args.cases + 1))  # a fresh database numbers the seeded cases from 1
            desk_paths = ["/desk"] * args.requests
            case_paths = [f"/desk/cases/{rng.choice(ids)}" for _ in range(args.requests)]
            search_paths = [f"/desk/search?partial=1&q={query}" for query in search_queries(rng, args)]
            results = [measure(url, "GET /desk", desk_paths, 1),
                       measure(url, "GET /desk/cases/<id>", case_paths, 1),
                       measure(url, "GET /desk", desk_paths, args.clients),
                       measure(url, "GET /desk/cases/<id>", case_paths, args.clients),
                       measure(url, "search as typed", search_paths, 1, SEARCH_TARGET_P95_MS),
                       measure(url, "search as typed", search_paths, args.clients, SEARCH_TARGET_P95_MS)]
    print()
    print(f"Desk load on {database.label}: {args.cases:,} cases, {args.events:,} timeline events, "
          f"target p95 < {TARGET_P95_MS:.0f} ms (search < {SEARCH_TARGET_P95_MS:.0f} ms)")
    print("| page                   | clients | requests |  p50 ms  |  p95 ms  |  max ms  | target  |")
    print("|------------------------|---------|----------|----------|----------|----------|---------|")
    for result in results:
        print(result.row())
    if any(percentile(r.latencies_ms, 95) >= r.target_ms for r in results if r.clients == 1):
        sys.exit(1)


if __name__ == "__main__":
    main()
