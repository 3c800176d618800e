"""fakepay's SQLite layer: schema, per-thread connections, transactions, keyset pagination, bulk seeding.

Choices that matter:

* WAL mode with a busy timeout, and one connection per thread, so the server's request threads and the
  webhook thread read concurrently while writes queue up instead of failing with "database is locked".
* Every POST runs inside ``BEGIN IMMEDIATE``: the idempotency-key check, the state change, its events
  and outbox rows, and the saved response commit together, so concurrent requests with one key are
  serialised and create one object.
* Lists are ordered newest first by ``(created, seq)``, where ``seq`` is the insertion order. ``created``
  is whole seconds, as on Stripe, so ``seq`` breaks ties in the order objects were made. Pagination is
  keyset (``(created, seq) < cursor``) on an index of exactly those columns: a page after the millionth
  row costs the same as the first page.
* A payment intent and its one successful charge share a row (``charge_id`` and the refund totals live
  on the intent): fakepay never makes more than one charge per intent, and one row per payment keeps a
  million-payment benchmark database small.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from backstop.fakepay.params import CreatedRange
from backstop.lib.env import env_path

BUSY_TIMEOUT_SECONDS = 30.0
BULK_INSERT_BATCH = 50_000
ID_RANDOM_BYTES = 18  # 24 base64 characters
BULK_CACHE_KIB = 256 * 1024  # a big page cache keeps the random-key unique indexes in memory while seeding

# Tables a list endpoint may page through; every query names one of these literally.
ListedTable = Literal["payment_intents", "events", "refunds"]
Position = tuple[int, int]  # (created, seq) of a list cursor
DeliveryState = Literal["pending", "delivered", "failed"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS payment_intents (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    payment_method TEXT,
    description TEXT,
    receipt_email TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    automatic_payment_methods TEXT,
    last_payment_error TEXT,
    canceled_at INTEGER,
    cancellation_reason TEXT,
    amount_received INTEGER NOT NULL DEFAULT 0,
    charge_id TEXT UNIQUE,
    charge_created INTEGER,
    amount_refunded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS payment_intents_by_created ON payment_intents (created, seq);

CREATE TABLE IF NOT EXISTS refunds (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    payment_intent TEXT NOT NULL REFERENCES payment_intents (id),
    amount INTEGER NOT NULL,
    reason TEXT,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS refunds_by_created ON refunds (created, seq);

CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_created ON events (created, seq);

-- The webhook outbox: written in the same transaction as the event, so no event is lost between
-- "state changed" and "delivery scheduled", and pending deliveries survive a restart.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES events (id),
    url TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due
    ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_keys_by_created ON idempotency_keys (created);
"""

ALL_TABLES = ("webhook_deliveries", "events", "refunds", "idempotency_keys", "payment_intents")

def new_id(prefix: str) -> str:
    """A Stripe-looking id: ``pi_`` plus 24 letters and digits (about 140 random bits).

    Base64 of 18 random bytes is 24 characters; its two non-alphanumeric symbols are swapped for
    letters. This is fast enough to mint the millions of ids a bulk benchmark seed needs.
    """
    return f"{prefix}_{base64.b64encode(os.urandom(ID_RANDOM_BYTES), altchars=b'xZ').decode()}"


def default_database_path() -> Path:
    return env_path("BACKSTOP_DATA_DIR", Path("var")) / "fakepay.sqlite3"


def connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; every transaction here is explicit.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        conn.executescript(SCHEMA)
    finally:
        conn.close()


class Database:
    """One SQLite file, one connection per thread that uses it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A transaction that takes the write lock up front (waiting up to the busy timeout for it)."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot for a cursor lookup and the page after it."""
        conn = self.connection()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")


def _json(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else value


# --- Payment intents (and their charge) --------------------------------------------------------------

PAYMENT_INTENT_UPDATABLE = frozenset(
    {
        "status",
        "payment_method",
        "receipt_email",
        "last_payment_error",
        "canceled_at",
        "cancellation_reason",
        "amount_received",
        "charge_id",
        "charge_created",
        "amount_refunded",
    }
)


def insert_payment_intent(conn: sqlite3.Connection, values: Mapping[str, Any]) -> sqlite3.Row:
    columns = list(values)
    placeholders = ", ".join("?" for _ in columns)
    row = conn.execute(
        f"INSERT INTO payment_intents ({', '.join(columns)}) VALUES ({placeholders}) RETURNING *",  # noqa: S608 (column names come from our own code, values are bound)
        [_json(values[column]) for column in columns],
    ).fetchone()
    assert row is not None
    return row


def payment_intent(conn: sqlite3.Connection, intent_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM payment_intents WHERE id = ?", (intent_id,)
    ).fetchone()
    return row


def payment_intent_by_charge(conn: sqlite3.Connection, charge_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM payment_intents WHERE charge_id = ?", (charge_id,)
    ).fetchone()
    return row


def update_payment_intent(conn: sqlite3.Connection, intent_id: str, **changes: Any) -> sqlite3.Row:
    """Set the given columns (dicts stored as JSON) and return the updated row."""
    unknown = set(changes) - PAYMENT_INTENT_UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = ", ".join(f"{column} = ?" for column in changes)
    row = conn.execute(
        f"UPDATE payment_intents SET {assignments} WHERE id = ? RETURNING *",  # noqa: S608 (columns checked against PAYMENT_INTENT_UPDATABLE)
        [*(_json(value) for value in changes.values()), intent_id],
    ).fetchone()
    if row is None:
        raise LookupError(intent_id)
    return row


def insert_payment_intents_bulk(db_path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write succeeded payment intents straight into a fakepay database (for benchmarks); returns the count.

    Each row is a mapping with:

    * ``amount`` (int, minor units) and ``created`` (int, unix seconds): required;
    * ``id`` (``pi_...``), ``currency`` (default ``"usd"``), ``payment_method`` (default ``"pm_card_visa"``),
      ``metadata`` (dict of str, default ``{}``), ``description``, ``receipt_email``: optional;
    * ``amount_refunded`` (int, default 0) and ``refunded`` (unix seconds, default ``created``): optional, one
      refund of that amount created then.

    Each intent gets a succeeded charge (``ch_...``) for its full amount, created at the intent's
    ``created``. No events or webhooks are written. The schema is created if missing, so this works
    on a fresh file or under a running server; rows are committed in batches of ``BULK_INSERT_BATCH``.
    """
    path = Path(db_path)
    migrate(path)
    conn = connect(path)
    conn.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")
    inserted = 0
    try:
        records = (
            (
                row.get("id") or new_id("pi"),
                int(row["created"]),
                int(row["amount"]),
                str(row.get("currency", "usd")).lower(),
                row.get("payment_method", "pm_card_visa"),
                row.get("description"),
                row.get("receipt_email"),
                _json(dict(row.get("metadata") or {})),
                int(row["amount"]),
                new_id("ch"),
                int(row["created"]),
                int(row.get("amount_refunded") or 0),
                int(row.get("refunded") or row["created"]),
            )
            for row in rows
        )
        while batch := list(islice(records, BULK_INSERT_BATCH)):
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO payment_intents (id, created, amount, currency, status, payment_method,"
                    " description, receipt_email, metadata, amount_received, charge_id, charge_created,"
                    " amount_refunded)"
                    " VALUES (?, ?, ?, ?, 'succeeded', ?, ?, ?, ?, ?, ?, ?, ?)",
                    [record[:-1] for record in batch],
                )
                conn.executemany(
                    "INSERT INTO refunds (id, created, payment_intent, amount, reason, metadata)"
                    " VALUES (?, ?, ?, ?, 'requested_by_customer', '{}')",
                    [(new_id("re"), record[-1], record[0], record[-2]) for record in batch if record[-2] > 0],
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            inserted += len(batch)
    finally:
        conn.close()
    return inserted


# --- Refunds -----------------------------------------------------------------------------------------


def insert_refund(conn: sqlite3.Connection, values: Mapping[str, Any]) -> None:
    conn.execute(
        "INSERT INTO refunds (id, created, payment_intent, amount, reason, metadata) VALUES (?, ?, ?, ?, ?, ?)",
        (
            values["id"],
            values["created"],
            values["payment_intent"],
            values["amount"],
            values["reason"],
            _json(values["metadata"]),
        ),
    )


def refund(conn: sqlite3.Connection, refund_id: str) -> sqlite3.Row | None:
    """The refund with its charge id and currency, which live on the payment intent's row."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT refunds.*, payment_intents.charge_id, payment_intents.currency FROM refunds"
        " JOIN payment_intents ON payment_intents.id = refunds.payment_intent WHERE refunds.id = ?",
        (refund_id,),
    ).fetchone()
    return row


# --- Events and their webhook outbox -------------------------------------------------------------------


def insert_event(conn: sqlite3.Connection, *, event_id: str, event_type: str, created: int, body: str) -> None:
    conn.execute(
        "INSERT INTO events (id, created, type, body) VALUES (?, ?, ?, ?)", (event_id, created, event_type, body)
    )


def event(conn: sqlite3.Connection, event_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
    return row


def enqueue_deliveries(conn: sqlite3.Connection, event_id: str, urls: Iterable[str], now: float) -> int:
    cursor = conn.executemany(
        "INSERT INTO webhook_deliveries (event_id, url, next_attempt_at) VALUES (?, ?, ?)",
        [(event_id, url, now) for url in urls],
    )
    return cursor.rowcount


def due_deliveries(conn: sqlite3.Connection, now: float, limit: int) -> list[sqlite3.Row]:
    """Pending deliveries whose time has come, oldest first, with the event body to send."""
    return conn.execute(
        "SELECT webhook_deliveries.*, events.body FROM webhook_deliveries"
        " JOIN events ON events.id = webhook_deliveries.event_id"
        " WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, webhook_deliveries.seq"
        " LIMIT ?",
        (now, limit),
    ).fetchall()


def next_delivery_at(conn: sqlite3.Connection) -> float | None:
    row = conn.execute(
        "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE state = 'pending'"
    ).fetchone()
    return None if row[0] is None else float(row[0])


def record_delivery_attempt(
    conn: sqlite3.Connection,
    delivery_seq: int,
    *,
    state: DeliveryState,
    attempts: int,
    next_attempt_at: float,
    status: int | None,
    error: str | None,
) -> None:
    conn.execute(
        "UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ?, last_status = ?,"
        " last_error = ? WHERE seq = ?",
        (state, attempts, next_attempt_at, status, error, delivery_seq),
    )


# --- Lists -------------------------------------------------------------------------------------------


def position(conn: sqlite3.Connection, table: ListedTable, object_id: str) -> Position | None:
    """Where a list cursor (an object id) sits in ``table``'s order."""
    row = conn.execute(
        f"SELECT created, seq FROM {table} WHERE id = ?",  # noqa: S608 (table is a ListedTable literal)
        (object_id,),
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def page(
    conn: sqlite3.Connection,
    table: ListedTable,
    *,
    limit: int,
    after: Position | None = None,
    before: Position | None = None,
    created: CreatedRange = CreatedRange(),  # noqa: B008 (frozen dataclass, safe as a default)
    type_patterns: Iterable[str] = (),
) -> tuple[list[sqlite3.Row], bool]:
    """One page, newest first, and whether more rows lie beyond it in the direction of travel.

    ``after`` is Stripe's ``starting_after`` (older rows), ``before`` its ``ending_before`` (newer rows,
    still returned newest first). ``type_patterns`` are SQL LIKE patterns on the events' ``type``.
    """
    conditions: list[str] = []
    values: list[Any] = []
    for operator, bound in (("<", created.lt), ("<=", created.lte), (">", created.gt), (">=", created.gte)):
        if bound is not None:
            conditions.append(f"created {operator} ?")
            values.append(bound)
    if after is not None:
        conditions.append("(created, seq) < (?, ?)")
        values.extend(after)
    if before is not None:
        conditions.append("(created, seq) > (?, ?)")
        values.extend(before)
    patterns = list(type_patterns)
    if patterns:
        conditions.append("(" + " OR ".join("type LIKE ? ESCAPE '\\'" for _ in patterns) + ")")
        values.extend(patterns)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    direction = "ASC" if before is not None else "DESC"
    rows = conn.execute(
        f"SELECT * FROM {table} {where} ORDER BY created {direction}, seq {direction} LIMIT ?",  # noqa: S608 (fixed table, conditions built above, values bound)
        [*values, limit + 1],
    ).fetchall()
    has_more = len(rows) > limit
    rows = rows[:limit]
    if before is not None:
        rows.reverse()
    return rows, has_more


# --- Idempotency keys --------------------------------------------------------------------------------


def saved_response(conn: sqlite3.Connection, key: str, *, not_before: float) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM idempotency_keys WHERE key = ? AND created >= ?", (key, not_before)
    ).fetchone()
    return row


def save_response(
    conn: sqlite3.Connection,
    *,
    key: str,
    created: float,
    fingerprint: str,
    status: int,
    body: str,
    request_id: str,
) -> None:
    # REPLACE: an expired row for the same key may still be there; the key is free again after 24h.
    conn.execute(
        "INSERT OR REPLACE INTO idempotency_keys (key, created, fingerprint, status, body, request_id)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (key, created, fingerprint, status, body, request_id),
    )


def forget_responses_before(conn: sqlite3.Connection, cutoff: float) -> None:
    conn.execute("DELETE FROM idempotency_keys WHERE created < ?", (cutoff,))


def reset(conn: sqlite3.Connection) -> None:
    for table in ALL_TABLES:
        conn.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed table names)
