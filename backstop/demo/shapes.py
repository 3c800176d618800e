"""Production-shaped data: the mess real systems hold, for staging, preflights and tests (``backstop seed --shape
production``).

What a fixture written by hand never has: company names that differ only in case (and in the ways case folding
disagrees with lower-casing: ``Straße``/``STRASSE``, dotted ``İ``), names at their column's full length, right-to-left
and mixed-direction names, emoji, empty phones, NULLs where older code left them (never verified, activated before
``activated_at`` existed, guest checkouts without an account, fulfilled attempts without ``charged_at``), accounts and
setup steps in every state, checkouts in every state with their orders paid and refunded and entitlements active and
revoked, messages to addresses no account has, and orphaned rows from past bugs (rows whose account was deleted while
foreign-key checks were off): the schema forbids them, so they are written with the checks off, as the bug did.

Everything goes in with ``bulk_create``: 10,000 customers take seconds. The same ``seed`` gives the same data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections import Counter
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.utils import timezone

from backstop.accounts.models import Account, AccountEvent, AccountState, SetupStep, StepName, StepStatus
from backstop.billing.models import (
    AttemptState,
    Entitlement,
    EntitlementState,
    FulfilledBy,
    Order,
    OrderStatus,
    Product,
    PurchaseAttempt,
)
from backstop.lib.email_identity import email_key
from backstop.notify.models import Channel, DeliveryStatus, Message
from backstop.workspaces.models import Workspace

BATCH_SIZE = 2000
# An unusable password hash (Django's "!" prefix): seeded customers cannot sign in, and no hashing slows the seed.
NO_PASSWORD = "!seeded-production-shape"

# Spelled the ways a company's people type it: case-only duplicates, and pairs that case-fold alike but lower-case
# apart (a unique index on lower() and one on casefold() disagree on them).
COMPANY_SPELLINGS: tuple[tuple[str, ...], ...] = (
    ("Acme Corp", "ACME Corp", "acme corp", "Acme corp", "ACME CORP"),
    ("Straße Logistik AG", "STRASSE LOGISTIK AG", "strasse logistik ag"),
    ("\u0130stanbul Yaz\u0131l\u0131m", "istanbul yaz\u0131l\u0131m", "\u0130STANBUL YAZILIM"),  # dotted and dotless i
    ("Ünicorn 🦄 GmbH", "ünicorn 🦄 gmbh", "ÜNICORN 🦄 GMBH"),
    ("חברת שלום בע״מ",),
    ("شركة الأمل للتقنية",),
    ("株式会社サンプル",),
    ("Globex", "GLOBEX", "globex"),
    ("Initech LLC", "InitecH LLC"),
)
NAMES: tuple[str, ...] = (
    "Ada Lovelace", "Grace Hopper", "Zoë 🦄🚀 Ünicorn", "דוד כהן", "ליאת Levi", "ليلى العربي", "محمد Ali",
    "山田 太郎", "Ирина Петрова", "José Núñez", "O'Brien, Seán", "👩‍💻", "  padded name  ", "x",
)
PHONES: tuple[str, ...] = ("", "", "+44 20 7946 0958", "+1 (555) 010-7788", "+972 52-123-4567", "0049 30 1234567",
                           "+971 50 765 4321", "555-0100 ext. 12", "+1 555 010 9999 99")
DOMAINS: tuple[str, ...] = ("example.com", "Example.COM", "bücher.example", "שלום.example", "mail.example.ae")


@dataclasses.dataclass
class ShapeReport:
    rows: Counter[str] = dataclasses.field(default_factory=Counter)
    quirks: Counter[str] = dataclasses.field(default_factory=Counter)
    skipped: list[str] = dataclasses.field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{count:>9,} {table}" for table, count in sorted(self.rows.items())]
        out += [f"{count:>9,} {quirk}" for quirk, count in sorted(self.quirks.items())]
        out += [f"  skipped: {why}" for why in self.skipped]
        return out


def _insert(model: type[models.Model], rows: list[Any], *, using: str, report: ShapeReport) -> None:
    model._default_manager.using(using).bulk_create(rows, batch_size=BATCH_SIZE)
    report.rows[model._meta.label] += len(rows)


def _long(text: str, length: int) -> str:
    return (text * (length // len(text) + 1))[:length]


def seed_production_shape(*, customers: int, seed: int = 0, using: str = DEFAULT_DB_ALIAS,
                          orphans: bool = True) -> ShapeReport:
    """Add ``customers`` production-shaped customers (and their setups, checkouts, orders, messages) to ``using``."""
    pick = random.Random(seed)
    report = ShapeReport()
    now = timezone.now()
    product, _ = Product.objects.using(using).get_or_create(
        code="shape-annual", defaults={"name": "Annual plan (seeded)", "amount_cents": 9900, "period_days": 365})
    first = (Account.objects.using(using).aggregate(models.Max("pk"))["pk__max"] or 0) + 1
    with transaction.atomic(using=using):
        accounts = _accounts(customers, first=first, pick=pick, now=now, report=report)
        _insert(Account, accounts, using=using, report=report)
        # bulk_create sets primary keys on PostgreSQL only; read them back by the unique key on both.
        ids = dict(Account.objects.using(using).filter(email_key__in=[a.email_key for a in accounts])
                   .values_list("email_key", "pk"))
        for account in accounts:
            account.pk = ids[account.email_key]
        _setups(accounts, pick=pick, now=now, using=using, report=report)
        _checkouts(accounts, product=product, pick=pick, now=now, using=using, report=report)
        _messages(accounts, pick=pick, now=now, using=using, report=report)
    if orphans:
        _orphans(product=product, now=now, using=using, report=report)
    return report


def _accounts(count: int, *, first: int, pick: random.Random, now: dt.datetime, report: ShapeReport) -> list[Account]:
    states = list(AccountState.values)
    rows = []
    for index in range(count):
        number = first + index  # only the addresses depend on what is there already: the rest on the seed alone
        spellings = pick.choice(COMPANY_SPELLINGS)
        company = pick.choice(spellings)
        name = pick.choice(NAMES)
        if index % 97 == 96:
            name, company = _long("Wolfeschlegelsteinhausenbergerdorff ", 150), _long("Very Long Holdings ", 150)
            report.quirks["names and companies at their full 150 characters"] += 1
        if index % 89 == 88:
            company = company.rstrip() + " "  # a trailing space old signups kept
            report.quirks["companies with a trailing space"] += 1
        local = f"Customer.{number}" if index % 3 == 0 else f"customer{number}"
        email = f"{local}@{pick.choice(DOMAINS)}"
        if index % 101 == 100:
            email = f"{_long('long.local.part.', 64 - len(str(number)))}{number}@{_long('sub.', 177)}example.com"
            report.quirks["addresses near 254 characters"] += 1
        state = states[index % len(states)]
        created = now - dt.timedelta(days=pick.randint(0, 2000), seconds=pick.randint(0, 86_399))
        legacy = index % 5 == 4  # signed up before verification and activated_at were recorded
        if legacy:
            report.quirks["active or older accounts with NULL email_verified_at / activated_at"] += 1
        rows.append(Account(
            email=email, email_key=email_key(email), name=name, company=company, phone=pick.choice(PHONES),
            password=NO_PASSWORD, state=state, created_at=created,
            email_verified_at=None if legacy else created + dt.timedelta(minutes=3),
            activated_at=created + dt.timedelta(minutes=5) if state == AccountState.ACTIVE and not legacy else None,
        ))
        if any(ord(char) > 0x58F for char in name + company):
            report.quirks["right-to-left, CJK or emoji names"] += 1
    spellings_of: dict[str, set[str]] = {}
    for account in rows:
        spellings_of.setdefault(account.company.casefold().strip(), set()).add(account.company)
    report.quirks["accounts whose company another spells differently only in case"] = sum(
        1 for account in rows if len(spellings_of[account.company.casefold().strip()]) > 1)
    return rows


def _setups(accounts: list[Account], *, pick: random.Random, now: dt.datetime, using: str,
            report: ShapeReport) -> None:
    statuses = list(StepStatus.values)
    steps, events, workspaces = [], [], []
    for index, account in enumerate(accounts):
        for offset, step in enumerate(StepName.values):
            active = account.state == AccountState.ACTIVE
            status = StepStatus.DONE if active else statuses[(index + offset) % len(statuses)]
            steps.append(SetupStep(
                account_id=account.pk, name=step, status=status, attempts=0 if status == StepStatus.PENDING else
                pick.randint(1, 8), last_error="" if status == StepStatus.DONE else "provider timed out after 10 s",
                done_at=account.created_at if status == StepStatus.DONE else None, updated_at=account.created_at))
        events.append(AccountEvent(account_id=account.pk, kind="signup", text=f"Signed up as {account.email}",
                                   created_at=account.created_at))
        if account.state == AccountState.ACTIVE:
            workspaces.append(Workspace(account_id=account.pk, name=account.company,
                                        external_id=f"ws-shape-{account.pk}", created_at=account.created_at))
    _insert(SetupStep, steps, using=using, report=report)
    _insert(AccountEvent, events, using=using, report=report)
    _insert(Workspace, workspaces, using=using, report=report)


def _checkouts(accounts: list[Account], *, product: Product, pick: random.Random, now: dt.datetime, using: str,
               report: ShapeReport) -> None:
    states = list(AttemptState.values)
    attempts: list[PurchaseAttempt] = []
    for index, account in enumerate(accounts[::2]):
        state = states[index % len(states)]
        guest = index % 7 == 0  # bought without signing in: no account, found by email key alone
        if guest:
            report.quirks["guest checkouts (account NULL)"] += 1
        typed = account.email.upper() if index % 4 == 0 else account.email  # the buyer typed it another way
        attempts.append(PurchaseAttempt(
            email=typed, email_key=email_key(typed), idempotency_key=f"shape-{account.pk}-{index}",
            request_fingerprint="0" * 64, product=product, amount_cents=product.amount_cents, currency="usd",
            account=None if guest else account, payment_method="pm_card_visa", state=state,
            payment_id="" if state in (AttemptState.RECORDED, AttemptState.DECLINED) else f"pi_shape_{account.pk}",
            decline_code="card_declined" if state == AttemptState.DECLINED else "",
            created_at=account.created_at, updated_at=account.created_at,
            # Fulfilled before charged_at and plan claims existed: NULL, as the old code left them.
            charged_at=None if state != AttemptState.CHARGED else account.created_at,
            fulfilled_at=account.created_at if state == AttemptState.FULFILLED else None,
            plan_claim=f"{email_key(typed)}|{product.code}" if state in (AttemptState.RECORDED,
                                                                           AttemptState.CHARGING) else None,
        ))
    _insert(PurchaseAttempt, attempts, using=using, report=report)
    saved = PurchaseAttempt.objects.using(using).filter(
        idempotency_key__in=[a.idempotency_key for a in attempts], state=AttemptState.FULFILLED)
    orders, entitlements = [], []
    for index, attempt in enumerate(saved):
        refunded = index % 3 == 0
        orders.append(Order(
            email=attempt.email, email_key=attempt.email_key, reference=attempt.reference, attempt=attempt,
            product=product, account_id=attempt.account_id, amount_cents=attempt.amount_cents, currency="usd",
            payment_id=attempt.payment_id, payment_created_at=attempt.created_at,
            status=OrderStatus.REFUNDED if refunded else OrderStatus.PAID, fulfilled_by=pick.choice(FulfilledBy.values),
            refunded_cents=attempt.amount_cents if refunded else 0, refunded_at=now if refunded else None))
    _insert(Order, orders, using=using, report=report)
    for order in Order.objects.using(using).filter(reference__in=[o.reference for o in orders]):
        revoked = order.status == OrderStatus.REFUNDED
        entitlements.append(Entitlement(
            email=order.email, email_key=order.email_key, order=order, product=product, account_id=order.account_id,
            state=EntitlementState.REVOKED if revoked else EntitlementState.ACTIVE, starts_at=order.created_at,
            ends_at=order.created_at + dt.timedelta(days=product.period_days), revoked_at=now if revoked else None))
    _insert(Entitlement, entitlements, using=using, report=report)


def _messages(accounts: list[Account], *, pick: random.Random, now: dt.datetime, using: str,
              report: ShapeReport) -> None:
    # Sent or failed only: a queued message in a database a server runs on would be sent.
    rows = [Message(to=account.email, account=account, key=f"shape-welcome:{account.pk}", channel=Channel.EMAIL,
                    kind="welcome", subject=f"Welcome, {account.name}", text=f"Hello {account.name},",
                    status=pick.choice((DeliveryStatus.SENT, DeliveryStatus.FAILED)), created_at=account.created_at)
            for account in accounts]
    rows += [Message(to=f"+1555{index:07d}", account=None, key=f"shape-sms:{accounts[0].pk}:{index}",
                     channel=Channel.SMS, kind="code", text="Your code is 000000", status=DeliveryStatus.SENT)
             for index in range(max(1, len(accounts) // 50))]
    report.quirks["messages to numbers no account has"] += max(1, len(accounts) // 50)
    _insert(Message, rows, using=using, report=report)


def _orphans(*, product: Product, now: dt.datetime, using: str, report: ShapeReport) -> None:
    """Rows whose account a past bug deleted while foreign-key checks were off (the schema forbids them today)."""
    connection = connections[using]
    missing = (Account.objects.using(using).aggregate(models.Max("pk"))["pk__max"] or 0) + 1_000_000
    rows: list[models.Model] = [
        SetupStep(account_id=missing + n, name=StepName.WORKSPACE, status=StepStatus.FAILED) for n in range(3)]
    rows += [AccountEvent(account_id=missing + n, kind="signup", text="orphaned by a past bug") for n in range(3)]
    if connection.vendor == "sqlite":
        if connection.in_atomic_block:
            # PRAGMA foreign_keys cannot change inside a transaction; Django's SQLite foreign keys are deferred, so
            # the rows go in and are checked at commit (a test's transaction never commits).
            _write_orphans(rows, using=using, report=report)
            return
        with connection.constraint_checks_disabled():
            _write_orphans(rows, using=using, report=report)
        return
    try:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            # Foreign keys are triggers on PostgreSQL; as a replica the session fires none (needs a superuser).
            cursor.execute("SET LOCAL session_replication_role = replica")
            _write_orphans(rows, using=using, report=report)
    except Exception as error:  # any refusal (permissions, a managed database) only skips the orphans
        report.skipped.append(f"orphaned rows: PostgreSQL refused to write them with foreign keys off ({error})")


def _write_orphans(rows: list[Any], *, using: str, report: ShapeReport) -> None:
    by_model: dict[type[models.Model], list[Any]] = {}
    for row in rows:
        by_model.setdefault(type(row), []).append(row)
    for model, batch in by_model.items():
        model._default_manager.using(using).bulk_create(batch)
        report.quirks[f"orphaned {model._meta.label} rows (account deleted)"] += len(batch)
