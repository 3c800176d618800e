"""``backstop snapshot``: a copy of the database, its personal data masked (``--sanitize``), for staging and preflights.

Which columns hold personal data is a registry, ``PERSONAL_FIELDS`` (model, field, kind), beside ``NOT_PERSONAL``, the
text columns declared free of it; a test fails while any text or JSON column of any model is in neither, so a new
column is classified by whoever adds it. The models are named by label, never imported: this app knows no domain.
Uploaded content (every ``BinaryField`` and ``FileField`` of every model) is found by its type, so it is masked
without being listed (``personal_fields()``). Tables whose rows are live credentials (``EMPTIED``: sessions) are
emptied in the copy rather than masked.

The copy: on SQLite, the backup API into a new file (a consistent copy made page by page; writers wait only for the
page being copied); on PostgreSQL, a new database on the same server filled by ``pg_dump | psql`` (one repeatable-read
snapshot that takes no lock a writer waits for). The masking then rewrites the copy, never the source, and the copy is
vacuumed so the rows it replaced leave no trace in its free pages.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.utils import load_backend
from django.utils import timezone

from backstop.preflight.copying import conninfo
from backstop.preflight.masking import mask

SNAPSHOT_ALIAS = "preflight_snapshot"
BATCH_SIZE = 1000
UPLOADS_BATCH_SIZE = 20
# A unique column whose masks keep colliding after this many salts has values too short to mask apart.
MAX_SALTS = 50


class Kind(enum.StrEnum):
    EMAIL = "email"  # an address, or a key made from one (every table masks one address alike, so joins still join)
    NAME = "name"  # a person's, a company's or a workspace's name
    PHONE = "phone"
    TEXT = "text"  # free text a person typed or that quotes one (messages, notes, errors that echo an address)
    SECRET = "secret"  # hashes and tokens: useless outside production, masked so a copy cannot sign anyone in
    JSON = "json"  # every string inside the document is masked as text; keys and numbers are kept
    BYTES = "bytes"  # uploaded bytes (an attachment): same-length bytes derived from the content by the key
    FILE = "file"  # a stored file's name (a FileField's path, which can name the customer): masked as text


@dataclass(frozen=True)
class PersonalField:
    model: str  # "app_label.ModelName"
    field: str
    kind: Kind


def _fields(model: str, kind: Kind, *names: str) -> list[PersonalField]:
    return [PersonalField(model, name, kind) for name in names]


# Tables whose rows are live credentials: the sanitized copy keeps none of them (their columns need no other entry).
# A session's key is a sign-in that works until it expires, and it is the table's primary key, which masking would
# rewrite. Sign-in codes, detail-change codes and an outbox message's secret are kept masked instead: a masked hash
# matches no code, and their rows keep the shapes a migration of those tables meets. Password reset links are
# derived from the password hash, which is masked.
EMPTIED: dict[str, str] = {
    "sessions.Session": "a session key is a live sign-in, and the table's primary key",
}

PERSONAL_FIELDS: tuple[PersonalField, ...] = (
    *_fields("runtime.GuardedIntent", Kind.TEXT, "key", "last_error"),
    *_fields("runtime.GuardedIntent", Kind.JSON, "payload"),
    *_fields("ratelimits.Counter", Kind.TEXT, "key"),  # keys name the address or the IP they limit
    *_fields("accounts.Account", Kind.SECRET, "password"),
    *_fields("accounts.Account", Kind.EMAIL, "email", "email_key"),
    *_fields("accounts.Account", Kind.NAME, "name", "company"),
    *_fields("accounts.Account", Kind.PHONE, "phone"),
    *_fields("accounts.SetupStep", Kind.TEXT, "last_error"),
    *_fields("accounts.AccountEvent", Kind.TEXT, "text"),
    *_fields("accounts.VerificationCode", Kind.SECRET, "code_hash", "link_hash"),
    *_fields("accounts.EmailKeyCollision", Kind.EMAIL, "email", "old_key", "new_key"),
    *_fields("accounts.EmailKeyCollision", Kind.TEXT, "what_was_done"),
    *_fields("accounts.DetailsChange", Kind.NAME, "name", "company"),
    *_fields("accounts.DetailsChange", Kind.PHONE, "phone"),
    *_fields("accounts.DetailsChange", Kind.SECRET, "code_hash"),
    *_fields("workspaces.Workspace", Kind.NAME, "name"),
    *_fields("workspaces.LocalProvisionedWorkspace", Kind.NAME, "name"),
    *_fields("workspaces.Note", Kind.TEXT, "title", "body"),
    *_fields("notify.Message", Kind.EMAIL, "to", "to_key"),
    *_fields("notify.Message", Kind.TEXT, "subject", "text", "html", "last_error"),
    *_fields("notify.Message", Kind.SECRET, "secret"),
    *_fields("notify.LocalMailboxItem", Kind.EMAIL, "to", "to_key"),
    *_fields("notify.LocalMailboxItem", Kind.TEXT, "subject", "text", "html"),
    *_fields("attention.AttentionRecord", Kind.TEXT, "summary", "resolution"),
    *_fields("attention.AttentionRecord", Kind.JSON, "detail"),
    *_fields("support.Case", Kind.EMAIL, "customer_key", "email"),
    *_fields("support.Case", Kind.TEXT, "summary", "resolution_note"),
    *_fields("support.Signal", Kind.TEXT, "summary", "cleared_how"),
    *_fields("support.Signal", Kind.JSON, "detail"),
    *_fields("support.Contact", Kind.EMAIL, "email", "customer_key"),
    *_fields("support.Contact", Kind.TEXT, "text", "reference", "public_reply", "private_reply", "page_reply"),
    *_fields("support.StrangerNotice", Kind.EMAIL, "customer_key"),
    *_fields("support.Incident", Kind.TEXT, "last_error"),
    *_fields("support.SupportAction", Kind.TEXT, "note"),
    *_fields("support.SupportAction", Kind.JSON, "params", "before", "after"),
    *_fields("support.CaseNote", Kind.TEXT, "body"),
    *_fields("support.StaffNotice", Kind.TEXT, "text"),
    *_fields("support.Commitment", Kind.TEXT, "text", "kept_how"),
    *_fields("support.Commitment", Kind.JSON, "detail"),
    *_fields("billing.PurchaseAttempt", Kind.EMAIL, "email", "email_key"),
    *_fields("billing.PurchaseAttempt", Kind.TEXT, "plan_claim", "decline_message", "last_error"),
    *_fields("billing.Order", Kind.EMAIL, "email", "email_key"),
    *_fields("billing.Entitlement", Kind.EMAIL, "email", "email_key"),
    *_fields("billing.KnownRefund", Kind.TEXT, "source"),  # a staff member's name when they refunded
    *_fields("billing.RefundRequest", Kind.TEXT, "requested_by"),
    *_fields("billing.Credit", Kind.TEXT, "reason", "actor"),
    *_fields("billing.AuditEntry", Kind.TEXT, "actor"),
    *_fields("billing.AuditEntry", Kind.JSON, "before", "after"),
    *_fields("drafts.Draft", Kind.JSON, "fields"),
    *_fields("accounts.VerificationCode", Kind.SECRET, "browser_hash"),
    # The search index repeats the case's address, name, phone and what the customer wrote, lower-cased.
    *_fields("support.CaseSearchEntry", Kind.TEXT, "identity", "body"),
    *_fields("support.IncidentSearchEntry", Kind.TEXT, "text"),  # quotes the post-mortem, which names customers
    # Inbound email: who wrote, what they wrote, and the reply addresses (their token lets mail into a case).
    *_fields("notify.Message", Kind.SECRET, "reply_to", "header_message_id"),
    *_fields("notify.LocalMailboxItem", Kind.SECRET, "reply_to"),
    *_fields("support.InboundMessage", Kind.EMAIL, "from_email"),
    *_fields("support.InboundMessage", Kind.NAME, "from_name"),
    *_fields("support.InboundMessage", Kind.TEXT, "to", "subject", "text", "visible_text", "html", "message_id",
             "in_reply_to", "references", "dedupe_key", "problem"),
    *_fields("support.InboundAttachment", Kind.TEXT, "filename"),
    # Staff write incidents and post-mortems in their own words, and may name a customer; an event's source can be
    # "staff:<their address>".
    *_fields("incidents.Incident", Kind.TEXT, "title", "last_error"),
    *_fields("incidents.IncidentUpdate", Kind.TEXT, "body"),
    *_fields("incidents.IncidentEvent", Kind.TEXT, "source", "text"),
    *_fields("incidents.IncidentEvent", Kind.JSON, "detail"),
    *_fields("incidents.ActionItem", Kind.TEXT, "title"),
    *_fields("incidents.PostMortem", Kind.TEXT, "markdown"),
    # A preflight's report quotes the offending rows' values (a duplicate email, a too-long name); an override's
    # reason is an operator's free text, and ``by`` their user name.
    *_fields("preflight.PreflightRun", Kind.JSON, "report"),
    *_fields("preflight.GuardOverride", Kind.TEXT, "reason", "by"),
)

# Text and JSON columns that hold nothing about a person: choices, codes our software makes, providers' ids,
# references, hashes of requests, and the staff's own saved replies.
NOT_PERSONAL: dict[str, tuple[str, ...]] = {
    "auth.Permission": ("name", "codename"),
    "auth.Group": ("name",),
    "contenttypes.ContentType": ("app_label", "model"),
    "runtime.Executor": ("id", "role", "hostname", "taken_over_by"),
    "runtime.CircuitBreaker": ("provider", "state", "last_error"),
    "runtime.GuardedIntent": ("operation", "state"),
    "accounts.Account": ("state", "setup_batch"),
    "accounts.SetupStep": ("name", "status"),
    "accounts.AccountEvent": ("kind",),
    "accounts.EmailKeyCollision": ("table", "account_ids"),
    "workspaces.Workspace": ("external_id",),
    "workspaces.LocalProvisionedWorkspace": ("idempotency_key",),
    "workspaces.Note": ("created_key", "last_key"),
    "notify.Message": ("key", "channel", "kind", "status"),
    "notify.LocalMailboxItem": ("channel", "message_id"),
    "attention.AttentionRecord": ("kind", "subject", "cause"),
    "support.Case": ("state", "kinds", "cause", "resolution"),
    "support.Signal": ("kind", "cause", "source"),
    "support.Contact": ("our_reference", "finding", "submission_key"),
    "support.Incident": ("cause", "provider", "state"),
    "support.SupportAction": ("idempotency_key", "action", "outcome"),
    "support.SavedReply": ("title", "body"),
    "support.CaseNote": ("idempotency_key",),
    "support.StaffNotice": ("key", "urgency", "batch_key"),
    "support.Commitment": ("kind", "made_in"),
    "demo.FaultSetting": ("provider", "mode"),
    "billing.Product": ("code", "name", "currency"),
    "billing.PurchaseAttempt": ("reference", "idempotency_key", "request_fingerprint", "currency", "payment_method",
                                "state", "payment_id", "decline_code", "buyer_saw"),
    "billing.Order": ("reference", "currency", "payment_id", "status", "fulfilled_by", "refund_id"),
    "billing.Entitlement": ("state",),
    "billing.ProcessorStatus": ("payment_id", "status", "currency", "learnt_from"),
    "billing.ProcessedWebhookEvent": ("event_id", "type", "payment_id", "outcome"),
    "billing.KnownRefund": ("payment_id",),
    "billing.RefundRequest": ("idempotency_key", "payment_id", "reference", "outcome", "refund_id"),
    "billing.ReconciliationWatermark": ("name", "last_summary"),
    "billing.Credit": ("key",),
    "billing.AuditEntry": ("action", "reference", "payment_id"),
    "drafts.Draft": ("owner", "surface", "device"),
    "preflight.PreflightRun": ("plan_fingerprint", "plan", "vendor"),
    "preflight.GuardOverride": ("plan_fingerprint", "plan"),
    "incidents.Incident": ("capability", "cause", "opened_by", "state"),
    "incidents.IncidentUpdate": ("idempotency_key", "state"),
    "incidents.IncidentEvent": ("kind",),
    "incidents.ActionItem": ("priority",),
    "incidents.AffectedCustomer": ("lost",),
    "incidents.AmendsAction": ("idempotency_key",),
    "support.CasePresence": ("tab",),
    "support.InboundMessage": ("esp", "kind", "threaded_by"),
    "support.InboundAttachment": ("content_type", "refused"),
    # A webhook signature's one-time token and a hash of what it signed: neither says who wrote (48 hours' worth).
    "support.InboundWebhookToken": ("token", "body_sha256"),
}


def classified_field_types() -> tuple[type[models.Field[Any, Any]], ...]:
    """The column types the registry must cover (EmailField and SlugField are CharFields; ImageField is a
    FileField)."""
    return (models.CharField, models.TextField, models.JSONField, models.BinaryField, models.FileField)


def uploaded_content_fields() -> list[PersonalField]:
    """Every BinaryField (BYTES) and FileField (FILE) of every model, but an emptied table's and those declared in
    ``NOT_PERSONAL``: found by type, so a new model's upload column is masked with nobody listing it."""
    found = []
    for model in apps.get_models():
        label = model._meta.label
        if label in EMPTIED:
            continue
        for model_field in model._meta.concrete_fields:
            if model_field.name in NOT_PERSONAL.get(label, ()):
                continue
            if isinstance(model_field, models.BinaryField):
                found.append(PersonalField(label, model_field.name, Kind.BYTES))
            elif isinstance(model_field, models.FileField):
                found.append(PersonalField(label, model_field.name, Kind.FILE))
    return found


def personal_fields() -> tuple[PersonalField, ...]:
    """What the sanitizer masks: the listed columns and the uploaded content found by type."""
    listed = {(entry.model, entry.field) for entry in PERSONAL_FIELDS}
    return PERSONAL_FIELDS + tuple(entry for entry in uploaded_content_fields()
                                   if (entry.model, entry.field) not in listed)


@dataclass
class SnapshotResult:
    target: str  # the file (SQLite) or the database name (PostgreSQL) written
    vendor: str
    data_taken_at: dt.datetime
    sanitized: bool
    masked_values: int


def default_target(*, using: str = DEFAULT_DB_ALIAS, now: dt.datetime | None = None) -> str:
    stamp = (now or timezone.now()).strftime("%Y%m%dT%H%M%SZ")
    connection = connections[using]
    if connection.vendor == "sqlite":
        return str(Path(settings.DATA_DIR) / f"snapshot-{stamp}.sqlite3")
    return f"{connection.settings_dict['NAME']}_snapshot_{stamp.lower()}"


def take_snapshot(*, using: str = DEFAULT_DB_ALIAS, target: str | None = None, sanitize: bool = True,
                  key: bytes | None = None, progress: Callable[[str], None] | None = None) -> SnapshotResult:
    """Copy the database ``using`` to ``target`` (a new SQLite file, or a new PostgreSQL database on the same server)
    and, with ``sanitize``, mask its personal data with ``key`` (the configured snapshot secret, else a new random
    one: then not even we can tell two snapshots' masks apart from two customers)."""
    say = progress or (lambda line: None)
    connection = connections[using]
    target = target or default_target(using=using)
    if connection.vendor == "sqlite":
        taken_at = _copy_sqlite(using=using, target=Path(target))
        config = {**connection.settings_dict, "NAME": target}
    elif connection.vendor == "postgresql":
        taken_at = _copy_postgresql(using=using, target=target)
        config = {**connection.settings_dict, "NAME": target}
        # The copy gets one plain connection; the production pool's settings are for production's traffic.
        config["OPTIONS"] = {k: v for k, v in config.get("OPTIONS", {}).items() if k != "pool"}
    else:
        raise ValueError(f"backstop snapshot knows SQLite and PostgreSQL, not {connection.vendor}")
    say(f"copied the database to {target} (data as of {taken_at:%Y-%m-%d %H:%M:%S} UTC)")
    masked = 0
    if sanitize:
        secret = key or settings.SNAPSHOT_SECRET.encode() or secrets.token_bytes(32)
        try:
            with snapshot_connection(config) as alias:
                masked_tables = sanitize_database(using=alias, key=secret, progress=say)
                _compact(alias, tables=[table for table, count in masked_tables.items() if count])
                emptied = {apps.get_model(label)._meta.db_table for label in EMPTIED}
                masked = sum(count for table, count in masked_tables.items() if table not in emptied)
        except BaseException:
            # A copy masked half-way still holds personal data, under the name a staging machine is told to use.
            _remove_copy(using=using, target=target)
            raise
        say(f"masked {masked} values")
    return SnapshotResult(target=target, vendor=connection.vendor, data_taken_at=taken_at, sanitized=sanitize,
                          masked_values=masked)


def _copy_sqlite(*, using: str, target: Path) -> dt.datetime:
    if target.exists():
        raise FileExistsError(f"{target} exists; a snapshot never overwrites a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    connection = connections[using]
    connection.ensure_connection()
    taken_at = timezone.now()
    destination = sqlite3.connect(target)
    try:
        # Pages in steps, the source's lock let go between them: a writer waits for one step at most.
        connection.connection.backup(destination, pages=256)
    finally:
        destination.close()
    return taken_at


def _postgres_environment(config: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    for variable, key in (("PGHOST", "HOST"), ("PGPORT", "PORT"), ("PGUSER", "USER"), ("PGPASSWORD", "PASSWORD")):
        if config.get(key):
            env[variable] = str(config[key])
    return env


def _copy_postgresql(*, using: str, target: str) -> dt.datetime:
    connection = connections[using]
    source = connection.settings_dict["NAME"]
    quoted = connection.ops.quote_name(target)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {quoted}")
    env = _postgres_environment(connection.settings_dict)
    try:
        with psycopg.connect(conninfo(connection.settings_dict)) as holder:
            # One repeatable-read snapshot, exported, that both dumps read: the schema and the rows of one moment.
            # pg_dump takes only ACCESS SHARE locks, which no insert, update or delete waits for.
            holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot = holder.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
            taken_at = timezone.now()
            # The whole schema first, constraints included, then the rows with the foreign-key triggers off (a
            # replica session; needs a superuser, as the preflight's copy does): rows a past bug orphaned are
            # production's data, and a restore that adds the constraints after the rows would refuse them.
            # The workflow engine's schema stays behind: staging runs its own workflows.
            _dump_into(source, target, ["--schema-only"], snapshot=snapshot, env=env)
            _dump_into(source, target, ["--data-only"], snapshot=snapshot,
                       env={**env, "PGOPTIONS": f"{env.get('PGOPTIONS', '')} -c session_replication_role=replica"})
    except Exception:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quoted}")
        raise
    return taken_at


def _remove_copy(*, using: str, target: str) -> None:
    connection = connections[using]
    if connection.vendor == "sqlite":
        for path in (Path(target), Path(f"{target}-wal"), Path(f"{target}-shm"), Path(f"{target}-journal")):
            path.unlink(missing_ok=True)
        return
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(target)} WITH (FORCE)")


def _dump_into(source: str, target: str, section: list[str], *, snapshot: str, env: dict[str, str]) -> None:
    dump = subprocess.Popen(["pg_dump", "--no-owner", "--no-privileges", "--exclude-schema=dbos",
                             f"--snapshot={snapshot}", *section, source], stdout=subprocess.PIPE, env=env)
    restore = subprocess.run(["psql", "--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--dbname", target],
                             stdin=dump.stdout, capture_output=True, env=env, check=False)
    assert dump.stdout is not None
    dump.stdout.close()
    dumped = dump.wait()
    if dumped or restore.returncode:
        raise RuntimeError(f"copying {source} to {target} failed (pg_dump {section[0]} {dumped}, psql "
                           f"{restore.returncode}): {restore.stderr.decode(errors='replace')[-2000:]}")


@contextlib.contextmanager
def snapshot_connection(config: dict[str, Any], *, alias: str = SNAPSHOT_ALIAS) -> Iterator[str]:
    """A database alias for the copy, in this thread, for as long as the block runs (never in settings.DATABASES:
    nothing else may find it)."""
    connections[alias] = load_backend(config["ENGINE"]).DatabaseWrapper(config, alias)
    try:
        yield alias
    finally:
        connections[alias].close()
        del connections[alias]


def _compact(alias: str, *, tables: list[str]) -> None:
    """Rewrite the copy's files (on PostgreSQL, the ``tables`` masked) so no free page still holds a value the masking
    replaced."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA journal_mode=DELETE")
            cursor.execute("VACUUM")
        else:
            for table in tables:
                cursor.execute(f"VACUUM FULL {connection.ops.quote_name(table)}")


def mask_value(value: Any, *, kind: Kind, key: bytes, salt: int = 0, vendor: str = "postgresql") -> Any:
    """The masked value of one column: NULL stays NULL, "" stays "", a JSON document keeps its structure, bytes keep
    their length. Case is folded as ``vendor``'s ``lower()`` folds it (see ``masking``)."""
    if value is None:
        return None
    if kind is Kind.JSON:
        return _mask_json(value, key=key, vendor=vendor)
    if kind is Kind.BYTES:
        return mask_bytes(bytes(value), key=key, salt=salt)
    return mask(str(value), key=key, salt=salt, dotted_capital_i_lowers_to_i=vendor != "sqlite")


def mask_bytes(value: bytes, *, key: bytes, salt: int = 0) -> bytes:
    """Bytes of ``value``'s length drawn from a keyed hash of the whole content: equal uploads mask alike (a duplicate
    stays a duplicate), and nothing of the original (no header, no text inside a PDF) survives."""
    seed = hmac.digest(key, salt.to_bytes(4, "big") + b"\x00" + value, "sha256")
    return hashlib.shake_256(seed).digest(len(value)) if value else value


def _mask_json(value: Any, *, key: bytes, vendor: str) -> Any:
    if isinstance(value, str):
        return mask(value, key=key, dotted_capital_i_lowers_to_i=vendor != "sqlite")
    if isinstance(value, list):
        return [_mask_json(item, key=key, vendor=vendor) for item in value]
    if isinstance(value, dict):
        return {name: _mask_json(item, key=key, vendor=vendor) for name, item in value.items()}
    return value


def sanitize_database(*, using: str, key: bytes, progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Empty the ``EMPTIED`` tables and mask every personal column of the database ``using`` in place; the values
    changed (rows removed), per table."""
    say = progress or (lambda line: None)
    by_model: dict[str, list[PersonalField]] = {}
    for entry in personal_fields():
        by_model.setdefault(entry.model, []).append(entry)
    connection = connections[using]
    existing = set(connection.introspection.table_names())
    changed: dict[str, int] = {}
    for label in EMPTIED:
        table = apps.get_model(label)._meta.db_table
        if table not in existing:
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")  # noqa: S608 (a model's table)
            changed[table] = max(cursor.rowcount, 0)
        say(f"removed {changed[table]} rows of {label}")
    for label, entries in by_model.items():
        model = apps.get_model(label)
        if model._meta.db_table not in existing:
            continue
        changed[model._meta.db_table] = _sanitize_model(model, entries, using=using, key=key)
        say(f"masked {changed[model._meta.db_table]} values of {label}")
    return changed


def _sanitize_model(model: type[models.Model], entries: list[PersonalField], *, using: str, key: bytes) -> int:
    names = [entry.field for entry in entries]
    vendor = connections[using].vendor
    unique = {entry.field for entry in entries if getattr(model._meta.get_field(entry.field), "unique", False)}
    taken: dict[str, dict[Any, Any]] = {name: {} for name in unique}
    changed = 0
    # Uploads can be megabytes a row: fewer of them in memory at once.
    batch_size = UPLOADS_BATCH_SIZE if any(entry.kind is Kind.BYTES for entry in entries) else BATCH_SIZE
    rows = model._base_manager.using(using).order_by("pk")
    last = None
    while True:
        # Pages by primary key, no cursor left open across the updates (SQLite would read rows it just rewrote).
        page = list((rows if last is None else rows.filter(pk__gt=last)).values_list("pk", *names)[:batch_size])
        if not page:
            return changed
        batch: list[models.Model] = []
        for pk, *values in page:
            masked: dict[str, Any] = {}
            for entry, value in zip(entries, values, strict=True):
                if entry.field in unique:
                    masked[entry.field] = _mask_unique(value, kind=entry.kind, key=key, taken=taken[entry.field],
                                                       vendor=vendor)
                else:
                    masked[entry.field] = mask_value(value, kind=entry.kind, key=key, vendor=vendor)
            changed += sum(1 for value, new in zip(values, masked.values(), strict=True) if new != value)
            batch.append(model(pk=pk, **masked))
        model._base_manager.using(using).bulk_update(batch, names)
        last = page[-1][0]


def _mask_unique(value: Any, *, kind: Kind, key: bytes, taken: dict[Any, Any], vendor: str) -> Any:
    """A unique column's mask, salted again while another value already masked to it (short values can collide)."""
    if value is None:
        return None
    for salt in range(MAX_SALTS):
        candidate = mask_value(value, kind=kind, key=key, salt=salt, vendor=vendor)
        owner = taken.setdefault(candidate if isinstance(candidate, bytes) else json.dumps(candidate), value)
        if owner == value:
            return candidate
    raise ValueError(f"cannot mask {len(str(value))}-character values of a unique column apart")
