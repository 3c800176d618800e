"""The chaos soak: mixed traffic against two web and two worker processes on one PostgreSQL while processes die.

It starts, all on free loopback ports: a fresh PostgreSQL database (created on the server of ``--database-url`` and
dropped at the end), the email provider's local fake (``backstop.notify.fakemail``, Resend's API with its
``Idempotency-Key`` dedupe, in a thread of this process; the processes send with ``BACKSTOP_EMAIL=resend``; or an SMTP
sink with ``--email smtp``, the old behaviour), ``backstop fakepay`` (its webhooks to both web processes), two
``backstop serve`` web processes running no workflows and two ``backstop worker`` processes. For ``--duration``
seconds it sends mixed traffic from a few client threads: signups, logins, re-signups and recoveries (the code read
from the mailbox), checkouts with Back-button repeats (the same form key again, and a new one), contacts, and draft
saves (the acknowledged ones kept here). Meanwhile it SIGKILLs a random web or worker process every 10-40 s and starts
it again, and flips provider faults (error, timeout, slow, crash after charge) through the demo's fault switches; a
process that dies by itself (crash after charge) is started again too.

At the end it clears the faults, waits for the backlog to drain (bounded by ``--drain-timeout``) and checks every
invariant against the database, fakepay and the mailbox (what the fake provider delivered, or the sink received):

- every account is active, or needs attention with an open case;
- every succeeded charge has exactly one order, every order a succeeded charge, and every buyer intent (a purchase
  attempt; a buyer's plan) at most one succeeded charge;
- no customer has a message twice: no message delivered twice, and no once-per-customer kind (welcome, account
  ready, order confirmation) twice, counted in the mailbox and in our table (with the fake provider it also prints how
  many resends the idempotency key deduplicated);
- every contact is in a case, and every contact acknowledged to a client exists;
- no draft save acknowledged to a client is missing.

It prints the counts as a table and exits 1 on any violation, listing the ids (2 when the run itself could not be
made: a process that never came up, a database it could not create).

    .venv/bin/python bench/chaos.py [--duration 600] [--email resend|smtp]
        [--database-url postgres://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import httpx
from common import free_port, wait_until

from backstop.notify.fakemail import FakeMail

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
PRODUCT = "annual"
SECRET_KEY = "chaos-soak-secret-key-" + "k" * 40  # one key for every web process: a session works on both
# Once per customer, whatever the message key: a second one is a duplicate the customer sees.
ONCE_PER_CUSTOMER = {"welcome": "welcome", "account_ready": "account ready",
                     "purchase_confirmation": "order confirmation", "purchase_recovered": "order confirmation"}
STARTUP_SECONDS = 240  # a fresh database's migrations take a minute and more on a busy 2-core machine
REQUEST_TIMEOUT = 30.0
FAULT_WEIGHTS = {"ok": 5, "error": 2, "timeout": 1, "slow": 2}
FAULT_PROVIDERS = ("email", "workspace", "payments")

# Fast retries, breakers and heartbeats, so a 2-minute run sees several of each; small connection pools, since the
# server allows 100 connections to everyone on the machine.
PROCESS_ENV = {
    "BACKSTOP_RATE_LIMIT_SCALE": "0",
    "BACKSTOP_FAULT_INJECTION": "1",
    "BACKSTOP_DEMO_PAGES": "1",
    "BACKSTOP_SECRET_KEY": SECRET_KEY,
    "BACKSTOP_LOG_LEVEL": "WARNING",
    "BACKSTOP_PAYMENTS": "fakepay",
    "BACKSTOP_RETRY_BASE_SECONDS": "0.5",
    "BACKSTOP_RETRY_CAP_SECONDS": "3",
    "BACKSTOP_SETUP_MAX_ATTEMPTS": "1000",
    "BACKSTOP_BREAKER_COOLDOWN_SECONDS": "2",
    "BACKSTOP_BREAKER_PROBE_SECONDS": "2",
    "BACKSTOP_EMAIL_TIMEOUT": "1",
    "BACKSTOP_SMS_TIMEOUT": "1",
    "BACKSTOP_WORKSPACE_TIMEOUT": "1",
    "BACKSTOP_PAYMENT_TIMEOUT": "2",
    "BACKSTOP_FAULT_SLOW_SECONDS": "0.5",
    "BACKSTOP_SWEEP_GRACE_SECONDS": "5",
    "BACKSTOP_QUEUE_POLL_SECONDS": "0.2",
    "BACKSTOP_SUPPORT_CYCLE_SECONDS": "5",
    "BACKSTOP_RECONCILE_SCHEDULE": "*/30 * * * * *",
    "BACKSTOP_RECONCILE_SETTLE_SECONDS": "5",
    "BACKSTOP_RECONCILE_STUCK_AFTER_SECONDS": "20",
    "BACKSTOP_DB_POOL_SIZE": "6",
}


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --- The database -------------------------------------------------------------------------------------------------

class Database:
    """The soak's own connection, opened once and kept: the server's 100 connections are shared by everyone on the
    machine, and a checker that cannot connect at the end would see nothing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None
        self.lock = threading.Lock()
        self.keep = False  # --keep-database after a failed check

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with self.lock:
            for attempt in range(30):
                try:
                    if self.conn is None or self.conn.closed:
                        self.conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
                    return list(self.conn.execute(sql, params).fetchall())
                except psycopg.OperationalError:
                    if self.conn is not None:
                        self.conn.close()
                    self.conn = None
                    if attempt == 29:
                        raise
                    time.sleep(1)
            raise AssertionError("unreachable")

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def close(self) -> None:
        with self.lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None


@contextmanager
def fresh_database(server_url: str) -> Iterator[Database]:
    import psycopg

    base = server_url.split("?", 1)[0].rsplit("/", 1)[0]
    name = f"backstop_chaos_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(url=f"{base}/{name}")
    try:
        yield db
    finally:
        db.close()
        if not db.keep:
            with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- The mailboxes: the email provider's fake, or an SMTP sink ----------------------------------------------------

@dataclass
class Received:
    to: str
    message_id: str
    subject: str
    text: str
    at: str = field(default_factory=lambda: time.strftime("%H:%M:%S"))


class SmtpSink:
    """A real SMTP server on loopback (aiosmtpd, in a thread of this process) that keeps what it receives. SMTP has no
    idempotency key: a message sent again after a lost answer is received twice (``--email smtp``)."""

    label = "SMTP sink"

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.keep(message_from_bytes(envelope.content, _class=EmailMessage, policy=policy.default))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def keep(self, message: EmailMessage) -> None:
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        with self.lock:
            self.messages.append(Received(to=str(message["To"] or "").strip().lower(),
                                          message_id=str(message["Message-ID"] or "").strip(),
                                          subject=str(message["Subject"] or ""), text=text))

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if m.to == address.lower()]

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.messages)

    def env(self) -> dict[str, str]:
        return {"BACKSTOP_EMAIL": "smtp", "BACKSTOP_SMTP_HOST": "127.0.0.1", "BACKSTOP_SMTP_PORT": str(self.port)}

    def figures(self) -> dict[str, int]:
        return {}

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


class FakeProviderMailbox:
    """The email provider's local fake (``backstop.notify.fakemail``: Resend's API, one delivery per
    ``Idempotency-Key``) in threads of this process; the processes send to it with ``BACKSTOP_EMAIL=resend``, each
    message's Message-ID as the key. What it delivered is what a customer would see; its ``replayed`` count is the
    sends it answered without delivering again."""

    label = "fake provider"

    def __init__(self) -> None:
        self.fake = FakeMail()  # no rate limit: the soak's own faults are the demo's switches

    def to(self, address: str) -> list[Received]:
        return [m for m in self.received() if m.to == address.lower()]

    def received(self) -> list[Received]:
        return [Received(to=parseaddr(to)[1].lower(),
                         message_id=str(m["headers"].get("Message-ID") or m["idempotency_key"]),
                         subject=m["subject"], text=m["text"], at=time.strftime("%H:%M:%S", time.localtime(m["at"])))
                for m in self.fake.delivered() for to in m["to"]]

    def env(self) -> dict[str, str]:
        return {"BACKSTOP_EMAIL": "resend", "BACKSTOP_RESEND_API_KEY": "re_chaos_soak",
                "BACKSTOP_RESEND_API_URL": self.fake.url}

    def figures(self) -> dict[str, int]:
        counts = self.fake.counts
        return {"email sends asked of the fake provider": counts.sends,
                "email resends the key deduplicated": counts.replayed,
                "email sends refused (429, down, no key)": counts.throttled + counts.refused_down + counts.unauthorized}

    def start(self) -> None:
        self.fake.start()

    def stop(self) -> None:
        self.fake.stop()


Mailbox = SmtpSink | FakeProviderMailbox


# --- The processes ------------------------------------------------------------------------------------------------

@dataclass
class Process:
    """One `backstop serve`, `backstop worker` or `backstop fakepay` child, started again on the same port and id."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    url: str = ""  # web processes and fakepay: where they answer
    health_path: str = "/healthz"
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    killed: int = 0
    died: int = 0  # exits nobody asked for (the injected crash after a charge)
    # Held while the process is killed or started, so the killer and the reviver never start it twice.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            out.write(f"\n=== start {self.starts + 1} at {time.strftime('%H:%M:%S')} ===\n".encode())
            out.flush()
            self.popen = subprocess.Popen(self.args, env={**os.environ, **self.env}, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=ROOT)
        self.starts += 1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def answers(self) -> bool:
        if not self.url:
            return self.alive()
        try:
            return httpx.get(f"{self.url}{self.health_path}", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no clean-up code runs, as when the machine under it dies."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=30)
            self.killed += 1

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)


def backstop(*args: str) -> list[str]:
    return [sys.executable, "-m", "backstop.cli", *args]


# --- Clients ------------------------------------------------------------------------------------------------------

class Unanswered(Exception):
    """No web process gave an answer within the bounded tries (each was down or was killed mid-request)."""


@dataclass
class Customer:
    email: str
    password: str
    signed_up: bool = False  # a signup was answered 200/201


@dataclass
class Intent:
    """One buyer's checkout, and what its Back-button repeats were answered."""

    email: str
    keys: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)


@dataclass
class DraftWriter:
    """A browser typing into one draft; ``acked`` is the last save a server answered 200 (version, save id, fields)."""

    cookies: httpx.Cookies  # the browser's, kept after it closed: the session or the visitor's draft cookie
    surface: str
    label: str
    acked: tuple[int, str, dict[str, str]] | None = None
    saves: int = 0


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    unanswered: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, action: str, status: int | None) -> None:
        with self.lock:
            self.sent[action] += 1
            if status is None:
                self.unanswered[action] += 1
            else:
                self.answered[action] += 1
                self.statuses[f"{action} {status}"] += 1


class Traffic:
    """The clients' side: what they sent and what they were told, to check against the system at the end."""

    def __init__(self, webs: list[Process], sink: Mailbox, rng: random.Random, run: str) -> None:
        self.webs = webs
        self.sink = sink
        self.rng = rng
        self.run = run
        self.lock = threading.Lock()
        self.customers: list[Customer] = []
        self.intents: list[Intent] = []
        self.contacts_acked: list[str] = []
        self.drafts: list[DraftWriter] = []
        self.tally = Tally()
        self.counter = 0
        self.errors: Counter[str] = Counter()

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def browser(self) -> httpx.Client:
        return httpx.Client(timeout=REQUEST_TIMEOUT)

    def send(self, client: httpx.Client, method: str, path: str, *, tries: int = 6,
             **kwargs: Any) -> httpx.Response:
        """One request, sent again (to either web process, as a load balancer would) while no answer comes back.

        A 502-like answer never happens here: either a process answers or the connection fails. Each retry sends the
        same request (the same idempotency key, save id, payload), as a browser's retry or a person's second press.
        """
        for attempt in range(tries):
            web = self.rng.choice(self.webs)
            try:
                return client.request(method, f"{web.url}{path}", **kwargs)
            except httpx.HTTPError:
                time.sleep(min(0.5 * (attempt + 1), 3))
        raise Unanswered(f"{method} {path}")

    # Each action returns nothing; it records what the clients were told.

    def signup(self) -> None:
        n = self.next_id()
        customer = Customer(email=f"c{n}-{self.run}@example.com", password=PASSWORD)
        with self.lock:
            self.customers.append(customer)
        with self.browser() as client:
            status = self._signup(client, customer)
            if status in (200, 201) and self.rng.random() < 0.5:
                self._draft_session(client, f"note:{n}", label=customer.email)

    def _signup(self, client: httpx.Client, customer: Customer) -> int | None:
        payload = {"name": "Chaos Customer", "email": customer.email, "phone": "+14155550123",
                   "company": "Chaos Ltd", "password": customer.password}
        status = self._call("signup", client, "POST", "/api/signup", json=payload)
        if status in (200, 201):
            customer.signed_up = True
        return status

    def resignup(self) -> None:
        """The signup form again for an address that has an account: with its password (resumed), or with another
        (refused, and the owner told of the attempt)."""
        customer = self._some_customer()
        if customer is None:
            return self.signup()
        with self.browser() as client:
            if self.rng.random() < 0.5:
                self._signup(client, customer)
            else:
                self._signup(client, Customer(email=customer.email, password=PASSWORD + " forgotten"))

    def login(self) -> None:
        customer = self._some_customer()
        if customer is None:
            return self.signup()
        with self.browser() as client:
            status = self._call("login", client, "POST", "/api/login",
                                json={"email": customer.email, "password": customer.password})
            if status == 200 and self.rng.random() < 0.3:
                self._draft_session(client, f"note:{self.next_id()}", label=customer.email)

    def recovery(self) -> None:
        customer = self._some_customer()
        if customer is None:
            return self.signup()
        with self.browser() as client:
            before = len(self.sink.to(customer.email))
            status = self._call("recover", client, "POST", "/api/recover", json={"email": customer.email})
            if status != 202:
                return
            code = self._wait_for_code(customer.email, before)
            if code is None:
                with self.lock:
                    self.errors["recovery code not in the mailbox within 45 s"] += 1
                return
            self._call("recover verify", client, "POST", "/api/recover/verify",
                       json={"email": customer.email, "code": code, "new_password": ""})

    def _wait_for_code(self, email: str, before: int) -> str | None:
        deadline = time.monotonic() + 45  # an email fault or an open breaker holds it back
        while time.monotonic() < deadline:
            for message in self.sink.to(email)[before:]:
                found = re.search(r"sign-in code is (\S+?)\.", message.text)
                if found:
                    return found.group(1)
            time.sleep(0.5)
        return None

    def checkout(self) -> None:
        """A buyer (a customer, or a stranger) buys the plan, then presses Back and buys again: with the same form
        (the same idempotency key) and with a new one."""
        customer = self._some_customer() if self.rng.random() < 0.5 else None
        email = customer.email if customer else f"buyer{self.next_id()}-{self.run}@example.com"
        intent = Intent(email=email)
        with self.lock:
            self.intents.append(intent)
        with self.browser() as client:
            key = uuid.uuid4().hex
            for repeat in range(self.rng.choice((1, 2, 3))):
                if repeat and self.rng.random() < 0.5:
                    key = uuid.uuid4().hex  # the form drawn again: a new key for the same buyer and plan
                intent.keys.append(key)
                status = self._call("checkout", client, "POST", "/api/checkout",
                                    json={"product": PRODUCT, "email": email},
                                    headers={"Idempotency-Key": key})
                intent.answers.append(status or 0)
                time.sleep(self.rng.uniform(0, 1.5))

    def contact(self) -> None:
        customer = self._some_customer() if self.rng.random() < 0.7 else None
        email = customer.email if customer else f"stranger{self.next_id()}-{self.run}@example.com"
        with self.browser() as client:
            try:
                answer = self.send(client, "POST", "/api/support/contact",
                                   json={"email": email, "message": "My account is not working, please help."})
            except Unanswered:
                self.tally.note("contact", None)
                return
            self.tally.note("contact", answer.status_code)
            if answer.status_code == 202:
                with self.lock:
                    self.contacts_acked.append(answer.json()["reference"])

    def draft(self) -> None:
        with self.browser() as client:
            try:
                self.send(client, "GET", "/support/contact")  # the CSRF cookie, as the page gives it
            except Unanswered:
                return
            self._draft_session(client, f"contact:{self.next_id()}", label="visitor")

    def _draft_session(self, client: httpx.Client, surface: str, *, label: str) -> None:
        """Type into one draft: several saves, each on the version the last answer gave."""
        if "csrftoken" not in client.cookies:
            try:
                self.send(client, "GET", "/support/contact")
            except Unanswered:
                return
        writer = DraftWriter(cookies=client.cookies, surface=surface, label=label)
        with self.lock:
            self.drafts.append(writer)
        text = ""
        for _ in range(self.rng.randint(2, 6)):
            text += self.rng.choice(("Hello ", "the invoice ", "is wrong ", "since Monday. ", "Thanks! "))
            save_id = str(uuid.uuid4())
            base = writer.acked[0] if writer.acked else 0
            fields = {"message": text}
            status: int | None = None
            answer = None
            for _retry in range(3):  # the page sends the same save again while it hears nothing
                try:
                    answer = self.send(client, "PUT", f"/api/drafts/{surface}",
                                       json={"fields": fields, "base_version": base, "save_id": save_id,
                                             "device": "chaos"},
                                       headers={"X-CSRFToken": client.cookies.get("csrftoken") or ""})
                    status = answer.status_code
                    break
                except Unanswered:
                    continue
            self.tally.note("draft save", status)
            writer.saves += 1
            if answer is not None and status == 200:
                writer.acked = (int(answer.json()["version"]), save_id, fields)
            elif status is None:
                return  # the page gives up for now; what it was told last is what must be kept
            time.sleep(self.rng.uniform(0.1, 0.6))

    def _call(self, action: str, client: httpx.Client, method: str, path: str, **kwargs: Any) -> int | None:
        try:
            answer = self.send(client, method, path, **kwargs)
        except Unanswered:
            self.tally.note(action, None)
            return None
        self.tally.note(action, answer.status_code)
        return answer.status_code

    def _some_customer(self) -> Customer | None:
        with self.lock:
            known = [c for c in self.customers if c.signed_up]
        return self.rng.choice(known) if known else None

    ACTIONS: dict[str, int] = {"signup": 5, "resignup": 1, "login": 2, "recovery": 1, "checkout": 4, "contact": 2,
                               "draft": 2}

    def loop(self, stop: threading.Event) -> None:
        names = list(self.ACTIONS)
        weights = [self.ACTIONS[name] for name in names]
        while not stop.is_set():
            action: Callable[[], None] = getattr(self, self.rng.choices(names, weights)[0])
            try:
                action()
            except Exception as error:  # a client's own failure is counted, never fatal to the soak
                with self.lock:
                    self.errors[f"{type(error).__name__}: {str(error)[:80]}"] += 1
            time.sleep(self.rng.uniform(0.05, 0.4))


# --- Chaos --------------------------------------------------------------------------------------------------------

class Chaos:
    """Kills a random web or worker process every ``kill_every`` seconds and starts it again; flips faults."""

    def __init__(self, processes: list[Process], webs: list[Process], rng: random.Random,
                 kill_every: tuple[float, float]) -> None:
        self.processes = processes
        self.webs = webs
        self.rng = rng
        self.kill_every = kill_every
        self.kills: list[str] = []
        self.flips: Counter[str] = Counter()
        self.lock = threading.Lock()

    def set_faults(self, modes: dict[str, str], *, tries: int = 20) -> bool:
        for _ in range(tries):
            for web in self.rng.sample(self.webs, len(self.webs)):
                try:
                    answer = httpx.post(f"{web.url}/demo/api/faults", json=modes, timeout=10)
                    if answer.status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
            time.sleep(1)
        return False

    def flip_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.rng.uniform(5, 20)):
            provider = self.rng.choice(FAULT_PROVIDERS)
            weights = dict(FAULT_WEIGHTS)
            if provider == "payments":
                weights["crash_after_charge"] = 2
            mode = self.rng.choices(list(weights), list(weights.values()))[0]
            if self.set_faults({provider: mode}, tries=3):
                with self.lock:
                    self.flips[f"{provider}={mode}"] += 1

    def kill_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.rng.uniform(*self.kill_every)):
            victim = self.rng.choice(self.processes)
            with victim.lock:
                if not victim.alive():
                    continue  # it died by itself a moment ago: the reviver starts it
                victim.kill()
                with self.lock:
                    self.kills.append(victim.name)
                log(f"SIGKILL {victim.name}; starting it again")
                victim.start()

    def revive_loop(self, stop: threading.Event) -> None:
        """A process that exits by itself (the injected crash after a charge) is started again, as systemd would."""
        while not stop.wait(0.5):
            for process in self.processes:
                with process.lock:
                    if process.popen is None or process.popen.poll() is None:
                        continue
                    process.died += 1
                    log(f"{process.name} exited with {process.popen.returncode}; starting it again")
                    process.start()


# --- The end: drain, then the invariants --------------------------------------------------------------------------

def backlog(db: Database) -> dict[str, int]:
    """What is still moving: a non-zero figure means the system has not settled yet."""
    figures = {
        "accounts setting up": db.scalar("SELECT COUNT(*) FROM accounts_account WHERE state = 'setting_up'"),
        "messages unsent": db.scalar("SELECT COUNT(*) FROM notify_message WHERE status IN ('queued', 'retrying')"),
        "checkouts open": db.scalar(
            "SELECT COUNT(*) FROM billing_purchaseattempt WHERE state IN ('recorded', 'charging', 'charged', "
            "'in_doubt')"),
        "contacts without a case": db.scalar("SELECT COUNT(*) FROM support_contact WHERE case_id IS NULL"),
    }
    figures["workflows pending"] = db.scalar(
            "SELECT COUNT(*) FROM dbos.workflow_status WHERE status IN ('PENDING', 'ENQUEUED')")
    return {name: int(value or 0) for name, value in figures.items()}


def stuck(db: Database) -> list[str]:
    """What is left after the drain, row by row (capped), for whoever reads the logs next."""
    rows = [f"message {key} ({kind}, {status}, {attempts} attempts, created {created:%H:%M:%S}): {error[:120]}"
            for key, kind, status, attempts, created, error in db.query(
                "SELECT key, kind, status, attempts, created_at, last_error FROM notify_message "
                "WHERE status IN ('queued', 'retrying') ORDER BY id LIMIT 20")]
    rows += [f"account {pk} setting up" for (pk,) in db.query(
        "SELECT id FROM accounts_account WHERE state = 'setting_up' ORDER BY id LIMIT 20")]
    rows += [f"checkout {ref} {state}" for ref, state in db.query(
        "SELECT reference, state FROM billing_purchaseattempt WHERE state IN ('recorded', 'charging', 'charged', "
        "'in_doubt') ORDER BY id LIMIT 20")]
    rows += [f"workflow {wid} {status}" for wid, status in db.query(
        "SELECT workflow_uuid, status FROM dbos.workflow_status WHERE status IN ('PENDING', 'ENQUEUED') LIMIT 20")]
    return rows


def drain(db: Database, timeout: float) -> tuple[bool, float, dict[str, int]]:
    started = time.monotonic()
    last: dict[str, int] = {}

    def settled() -> bool:
        nonlocal last
        try:
            last = backlog(db)
        except Exception as error:
            log(f"backlog not readable: {error}")
            return False
        return not any(last.values())

    done = wait_until(settled, timeout)
    return done, time.monotonic() - started, last


@dataclass
class Violation:
    invariant: str
    ids: list[str]


def check_accounts(db: Database) -> tuple[dict[str, int], list[Violation]]:
    rows = db.query("SELECT id, email_key, state FROM accounts_account WHERE NOT is_staff")
    open_cases = db.query("SELECT account_id, customer_key FROM support_case WHERE state = 'open'")
    by_account = {a for a, _ in open_cases if a is not None}
    by_key = {k for _, k in open_cases}
    states = Counter(state for _, _, state in rows)
    lost = [f"account {pk} ({state})" for pk, key, state in rows
            if state != "active" and not (state == "needs_attention" and (pk in by_account or key in by_key))]
    return ({f"accounts {state}": n for state, n in sorted(states.items())},
            [Violation("every account is active, or needs attention with a case", lost)] if lost else [])


def check_payments(db: Database, fakepay_db: Path) -> tuple[dict[str, int], list[Violation]]:
    import sqlite3

    with sqlite3.connect(fakepay_db, timeout=30) as conn:
        charges = conn.execute("SELECT id, status, metadata FROM payment_intents").fetchall()
        refunded = {row[0] for row in conn.execute("SELECT payment_intent FROM refunds")}
    succeeded = {pid: json.loads(meta or "{}") for pid, status, meta in charges if status == "succeeded"}
    orders = Counter(pid for (pid,) in db.query("SELECT payment_id FROM billing_order"))
    violations = []
    without_order = [f"charge {pid}" for pid in succeeded if orders[pid] != 1]
    if without_order:
        violations.append(Violation("every succeeded charge has exactly one order", without_order))
    without_charge = [f"order for {pid}" for pid in orders if pid not in succeeded]
    if without_charge:
        violations.append(Violation("every order has a succeeded charge", without_charge))
    per_attempt: defaultdict[str, list[str]] = defaultdict(list)
    per_buyer: defaultdict[str, list[str]] = defaultdict(list)
    for pid, meta in succeeded.items():
        per_attempt[meta.get("attempt_id", "?")].append(pid)
        if pid not in refunded:
            per_buyer[f"{meta.get('email', '?').lower()} {meta.get('product', '?')}"].append(pid)
    twice = [f"attempt {attempt}: {', '.join(pids)}" for attempt, pids in per_attempt.items() if len(pids) > 1]
    twice += [f"buyer {buyer}: {', '.join(pids)}" for buyer, pids in per_buyer.items() if len(pids) > 1]
    if twice:
        violations.append(Violation("every buyer intent has at most one charge", twice))
    attempts = Counter(state for (state,) in db.query("SELECT state FROM billing_purchaseattempt"))
    figures = {"charges in fakepay": len(charges), "charges succeeded": len(succeeded), "orders": sum(orders.values())}
    figures |= {f"checkouts {state}": n for state, n in sorted(attempts.items())}
    return figures, violations


def check_mail(db: Database, sink: Mailbox) -> tuple[dict[str, int], list[Violation]]:
    # The Message-ID each message is sent with (notify.Message.message_id_header): the one its sender chose (a case's
    # thread id), or the one made from its key.
    known = {header or f"<{key.replace(':', '.')}@backstop>": (key, kind, to.lower(), status, channel)
             for key, kind, to, status, channel, header in db.query(
                 "SELECT key, kind, \"to\", status, channel, header_message_id FROM notify_message")}
    received = sink.received()  # the fake provider's deliveries (after its dedupe), or what the sink received
    violations = []
    deliveries: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for m in received:
        deliveries[(m.to, m.message_id)].append(m.at)
    twice = [f"{known.get(mid, (mid,))[0]} to {to}, received at {', '.join(times)}"
             for (to, mid), times in deliveries.items() if len(times) > 1]
    if twice:
        violations.append(Violation(f"no message delivered twice ({sink.label})", twice))
    strangers = [f"{m.message_id} to {m.to} ({m.subject!r} at {m.at})" for m in received if m.message_id not in known]
    if strangers:
        violations.append(Violation(f"every message delivered ({sink.label}) is one we recorded", strangers))
    in_sink: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for m in received:
        if m.message_id in known:
            key, kind, *_ = known[m.message_id]
            if kind in ONCE_PER_CUSTOMER:
                in_sink[(m.to, ONCE_PER_CUSTOMER[kind])].add(key)
    again = [f"{to} {kind}: {', '.join(sorted(keys))}" for (to, kind), keys in in_sink.items() if len(keys) > 1]
    if again:
        violations.append(Violation(f"no customer has a once-only kind twice ({sink.label})", again))
    in_table: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for key, kind, to, _status, channel in known.values():
        if kind in ONCE_PER_CUSTOMER and channel == "email":
            in_table[(to, ONCE_PER_CUSTOMER[kind])].add(key)
    again = [f"{to} {kind}: {', '.join(sorted(keys))}" for (to, kind), keys in in_table.items() if len(keys) > 1]
    if again:
        violations.append(Violation("no customer has a once-only kind twice (our messages table)", again))
    statuses = Counter(status for _, _, _, status, channel in known.values() if channel == "email")
    figures = {f"emails delivered ({sink.label})": len(received)} | sink.figures()
    figures |= {f"emails {s}": n for s, n in sorted(statuses.items())}
    return figures, violations


def check_contacts(db: Database, acked: list[str]) -> tuple[dict[str, int], list[Violation]]:
    rows = db.query("SELECT id, our_reference, case_id FROM support_contact")
    violations = []
    caseless = [f"contact {pk} ({ref})" for pk, ref, case in rows if case is None]
    if caseless:
        violations.append(Violation("every contact is in a case", caseless))
    stored = {ref for _, ref, _ in rows}
    missing = [ref for ref in acked if ref not in stored]
    if missing:
        violations.append(Violation("every acknowledged contact exists", missing))
    return {"contacts": len(rows), "contacts acknowledged": len(acked)}, violations


def check_drafts(traffic: Traffic) -> tuple[dict[str, int], list[Violation]]:
    """Each writer's last acknowledged save, read back through the API with the writer's own cookies."""
    lost = []
    acked = [w for w in traffic.drafts if w.acked is not None]
    for writer in acked:
        assert writer.acked is not None
        version, save_id, fields = writer.acked
        try:
            with httpx.Client(timeout=REQUEST_TIMEOUT, cookies=writer.cookies) as client:
                answer = traffic.send(client, "GET", f"/api/drafts/{writer.surface}")
        except Unanswered:
            lost.append(f"{writer.surface} ({writer.label}): unreadable")
            continue
        if answer.status_code != 200:
            lost.append(f"{writer.surface} ({writer.label}): {answer.status_code}, acknowledged v{version}")
            continue
        draft = answer.json()
        if draft["version"] < version or (draft["version"] == version and draft["fields"] != fields):
            lost.append(f"{writer.surface} ({writer.label}): v{draft['version']} on the server, "
                        f"v{version} acknowledged (save {save_id})")
    saves = sum(w.saves for w in traffic.drafts)
    return ({"draft writers": len(traffic.drafts), "draft saves sent": saves, "drafts acknowledged": len(acked)},
            [Violation("no acknowledged draft save is missing", lost)] if lost else [])


# --- The run ------------------------------------------------------------------------------------------------------

def table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name.ljust(width)}  {value}" for name, value in rows)


def build_processes(db: Database, data_dir: Path, sink: Mailbox, fakepay_url: str, fakepay_db: Path,
                    web_ports: list[int], dead_after: float) -> tuple[Process, list[Process], list[Process]]:
    fakepay = Process(
        name="fakepay", log_path=data_dir / "fakepay.log", url=fakepay_url, health_path="/_fakepay/health",
        args=backstop("fakepay", "--port", fakepay_url.rsplit(":", 1)[1], "--db", str(fakepay_db),
                      *[arg for port in web_ports
                        for arg in ("--webhook-url", f"http://127.0.0.1:{port}/api/webhooks/payments")]),
        env={"BACKSTOP_DATA_DIR": str(data_dir)})
    common = {**PROCESS_ENV, "DATABASE_URL": db.url, "BACKSTOP_EXECUTOR_DEAD_AFTER_SECONDS": f"{dead_after:g}",
              "BACKSTOP_HEARTBEAT_SECONDS": f"{max(0.5, dead_after / 6):g}", "BACKSTOP_DATA_DIR": str(data_dir),
              **sink.env(),
              "STRIPE_API_BASE": fakepay_url, "BACKSTOP_BASE_URL": f"http://127.0.0.1:{web_ports[0]}"}
    webs = [Process(name=f"web-{n}", log_path=data_dir / f"web-{n}.log", url=f"http://127.0.0.1:{port}",
                    args=backstop("serve", "--port", str(port), "--threads", "8"),
                    env={**common, "BACKSTOP_SERVE_WORKFLOWS": "none", "BACKSTOP_EXECUTOR_ID": f"chaos-web-{n}"})
            for n, port in enumerate(web_ports, 1)]
    workers = [Process(name=f"worker-{n}", log_path=data_dir / f"worker-{n}.log", args=backstop("worker"),
                       env={**common, "BACKSTOP_EXECUTOR_ID": f"chaos-worker-{n}"}) for n in (1, 2)]
    return fakepay, webs, workers


def start_all(db: Database, fakepay: Process, webs: list[Process], workers: list[Process]) -> None:
    fakepay.start()
    if not wait_until(fakepay.answers, 30):
        raise SystemExit(2)
    # One process migrates first, as a deploy does (docs/deploy.md); the others start on the migrated database.
    migrate = Process(name="migrate", log_path=workers[0].log_path, args=backstop("migrate", "--no-input"),
                      env=workers[0].env)
    migrate.start()
    assert migrate.popen is not None
    if migrate.popen.wait(timeout=STARTUP_SECONDS) != 0:
        log(f"migrate failed: see {migrate.log_path}")
        raise SystemExit(2)
    for process in (*workers, *webs):
        process.start()
    for web in webs:
        if not wait_until(web.answers, STARTUP_SECONDS):
            log(f"{web.name} never answered: see {web.log_path}")
            raise SystemExit(2)

    def workers_reported() -> bool:
        ids = {row[0] for row in db.query("SELECT id FROM runtime_executor")}
        return {"chaos-worker-1", "chaos-worker-2"} <= ids

    if not wait_until(workers_reported, STARTUP_SECONDS):
        log("the workers never reported in")
        raise SystemExit(2)


def soak(args: argparse.Namespace, db: Database, data_dir: Path) -> int:
    rng = random.Random(args.seed)
    run = uuid.uuid4().hex[:6]
    sink: Mailbox = SmtpSink() if args.email == "smtp" else FakeProviderMailbox()
    sink.start()
    fakepay_url = f"http://127.0.0.1:{free_port()}"
    web_ports = [free_port(), free_port()]
    fakepay, webs, workers = build_processes(db, data_dir, sink, fakepay_url, data_dir / "fakepay.sqlite3",
                                             web_ports, args.dead_after)
    everything = [fakepay, *webs, *workers]
    stop_traffic, stop_chaos = threading.Event(), threading.Event()
    threads: list[threading.Thread] = []
    try:
        log(f"email through the {sink.label}; starting fakepay, 2 web and 2 worker processes on "
            f"{db.url.rsplit('/', 1)[1]} (logs in {data_dir})")
        start_all(db, fakepay, webs, workers)
        traffic = Traffic(webs, sink, rng, run)
        chaos = Chaos([*webs, *workers], webs, rng, (args.kill_min, args.kill_max))
        chaos_threads = [threading.Thread(target=chaos.kill_loop, args=(stop_chaos,), daemon=True),
                         threading.Thread(target=chaos.flip_loop, args=(stop_chaos,), daemon=True),
                         threading.Thread(target=chaos.revive_loop, args=(stop_chaos,), daemon=True)]
        traffic_threads = [threading.Thread(target=traffic.loop, args=(stop_traffic,), daemon=True)
                           for _ in range(args.clients)]
        threads = chaos_threads + traffic_threads
        log(f"traffic from {args.clients} clients for {args.duration:g} s, a process killed every "
            f"{args.kill_min:g}-{args.kill_max:g} s")
        soak_started = time.monotonic()
        for thread in threads:
            thread.start()
        stop_traffic.wait(args.duration)
        stop_traffic.set()
        for thread in traffic_threads:
            thread.join(timeout=120)
        stop_chaos.set()
        for thread in chaos_threads:
            thread.join(timeout=60)
        soaked = time.monotonic() - soak_started
        # Every process up again, the faults cleared: from here on the system must heal itself.
        for process in (*webs, *workers):
            if not process.alive():
                process.start()
        for web in webs:
            wait_until(web.answers, STARTUP_SECONDS)
        if not chaos.set_faults({provider: "ok" for provider in ("email", "sms", "workspace", "payments")}):
            log("could not clear the faults")
            return 2
        log(f"traffic stopped after {soaked:.0f} s; faults cleared; waiting up to {args.drain_timeout:g} s for the "
            "backlog to drain")
        drained, drain_seconds, left = drain(db, args.drain_timeout)
        time.sleep(3)  # an email handed to the mailbox as the last row was written
        kills_by_name = ", ".join(f"{name} {n}" for name, n in sorted(Counter(chaos.kills).items()))
        figures: list[tuple[str, Any]] = [
            ("soak seconds", f"{soaked:.0f}"),
            ("drain seconds", f"{drain_seconds:.0f}" + ("" if drained else " (not drained)")),
            *[(f"left after the drain: {name}", n) for name, n in left.items()],
            ("processes killed", f"{len(chaos.kills)} ({kills_by_name})"),
            ("processes that died by themselves", sum(p.died for p in everything)),
            ("fault flips", sum(chaos.flips.values())),
        ]
        figures += [(f"sent: {action}", f"{n} (unanswered {traffic.tally.unanswered[action]})")
                    for action, n in sorted(traffic.tally.sent.items())]
        figures += [(f"answered: {status}", n) for status, n in sorted(traffic.tally.statuses.items())]
        figures += [("checkout intents", len(traffic.intents)),
                    ("checkout requests", sum(len(i.keys) for i in traffic.intents))]
        violations: list[Violation] = []
        if not drained:
            violations.append(Violation(f"the backlog drains within {args.drain_timeout:g} s",
                                        [f"{name}: {n}" for name, n in left.items() if n] + stuck(db)))
        for counted, found in (check_accounts(db), check_payments(db, data_dir / "fakepay.sqlite3"),
                               check_mail(db, sink), check_contacts(db, traffic.contacts_acked),
                               check_drafts(traffic)):
            figures += list(counted.items())
            violations += found
        figures += [(f"client error: {name}", n) for name, n in traffic.errors.most_common()]
        print("\nChaos soak: counts")
        print(table(figures))
        if violations:
            print(f"\n{len(violations)} invariant(s) violated:")
            for violation in violations:
                shown = violation.ids[:50]
                more = f" ... and {len(violation.ids) - len(shown)} more" if len(violation.ids) > len(shown) else ""
                print(f"- {violation.invariant}: {len(violation.ids)}\n" + "\n".join(f"  * {i}" for i in shown) + more)
            print(f"\nlogs kept in {data_dir}")
            return 1
        print("\nevery invariant holds")
        return 0
    finally:
        stop_traffic.set()
        stop_chaos.set()
        for process in everything:
            process.stop()
        sink.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600, help="seconds of traffic (default 600)")
    parser.add_argument("--database-url", default=os.environ.get(
        "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server: a fresh database is created on it and dropped at the end")
    parser.add_argument("--clients", type=int, default=4, help="client threads sending traffic (default 4)")
    parser.add_argument("--kill-min", type=float, default=10, help="least seconds between kills (default 10)")
    parser.add_argument("--kill-max", type=float, default=40, help="most seconds between kills (default 40)")
    parser.add_argument("--drain-timeout", type=float, default=300,
                        help="most seconds to wait for the backlog after the traffic (default 300)")
    parser.add_argument("--dead-after", type=float, default=30,
                        help="BACKSTOP_EXECUTOR_DEAD_AFTER_SECONDS (production's default 30; heartbeats at a sixth)")
    parser.add_argument("--email", choices=("resend", "smtp"), default="resend",
                        help="resend (default): through the fake provider, which delivers once per Idempotency-Key; "
                             "smtp: to an SMTP sink, which has no key (the old behaviour)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    parser.add_argument("--keep-database", action="store_true",
                        help="leave the soak's database on the server when a check failed (its name is printed)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs when every check passes")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1_000_000)
    if not 0 < args.duration <= 24 * 3600 or not 0 < args.kill_min <= args.kill_max or args.clients < 1:
        parser.error("--duration in (0, 86400], 0 < --kill-min <= --kill-max, --clients >= 1")
    log(f"chaos soak, seed {args.seed}")
    # Stopped early (Ctrl-C, or a TERM from whoever started it in the background), it still stops its processes and
    # drops its database: both signals unwind through the finally blocks.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    data_dir = ROOT / "var" / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with fresh_database(args.database_url) as db:
            status = soak(args, db, data_dir)
            if status == 1 and args.keep_database:
                db.keep = True
                log(f"database {db.url.rsplit('/', 1)[1]} kept; drop it when done")
    except SystemExit as stop:
        log(f"the soak could not run; logs in {data_dir}")
        return int(stop.code or 2)
    if status == 0 and not args.keep_logs:
        shutil.rmtree(data_dir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
