"""What the workflow engine's own tables say, read at the moment someone asks (a scrape, a readiness probe).

Every process sees the same rows, so any web process answers for the whole deployment; nothing here is counted in a
process's memory. The engine keeps its tables in the "dbos" schema of the PostgreSQL database, or in a SQLite file of
its own; one short-lived connection per read keeps a scrape off the pool the requests use.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings

STATUS_TABLE = "workflow_status"
CONNECT_TIMEOUT_SECONDS = 3


@dataclass(frozen=True)
class WorkflowCount:
    name: str  # the workflow function's qualified name, e.g. "deliver_message"
    status: str  # PENDING, ENQUEUED, SUCCESS, ERROR, CANCELLED, MAX_RECOVERY_ATTEMPTS_EXCEEDED, DELAYED
    count: int
    recoveries: int  # times the engine started these again after their process died


@dataclass(frozen=True)
class QueueReading:
    queue: str
    waiting: int  # enqueued, not yet picked up by any worker
    running: int  # picked up, not finished
    oldest_wait_seconds: float  # how long the oldest waiting one has waited (0 when none waits)


@contextmanager
def _system_rows() -> Iterator[tuple[Any, str]]:
    """A DB-API cursor on the engine's tables, and the name to read the status table by."""
    url = settings.DBOS_SYSTEM_DATABASE_URL
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=CONNECT_TIMEOUT_SECONDS)) as lite:
            yield lite.cursor(), STATUS_TABLE
        return
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True,
                         connect_timeout=CONNECT_TIMEOUT_SECONDS) as postgres:
        yield postgres.cursor(), f"dbos.{STATUS_TABLE}"


def workflow_counts() -> list[WorkflowCount]:
    """Workflows by name and status, over the rows the engine keeps (it keeps every workflow until deleted)."""
    with _system_rows() as (cursor, table):
        cursor.execute(
            f"SELECT name, status, COUNT(*), COALESCE(SUM(CASE WHEN recovery_attempts > 1 THEN recovery_attempts - 1 "  # noqa: S608 (a constant)
            f"ELSE 0 END), 0) FROM {table} GROUP BY name, status")
        return [WorkflowCount(name=str(name or ""), status=str(status or ""), count=int(count),
                              recoveries=int(recoveries)) for name, status, count, recoveries in cursor.fetchall()]


def queue_readings() -> list[QueueReading]:
    """Each queue that has work: how much waits, how much runs, and how long the oldest has waited."""
    now_ms = time.time() * 1000
    with _system_rows() as (cursor, table):
        cursor.execute(
            f"SELECT queue_name, status, COUNT(*), MIN(created_at) FROM {table} "  # noqa: S608 (a constant)
            "WHERE queue_name IS NOT NULL AND status IN ('ENQUEUED', 'PENDING') GROUP BY queue_name, status")
        rows = cursor.fetchall()
    found: dict[str, dict[str, Any]] = {}
    for queue, status, count, oldest in rows:
        reading = found.setdefault(str(queue), {"waiting": 0, "running": 0, "oldest": 0.0})
        if status == "ENQUEUED":
            reading["waiting"] = int(count)
            reading["oldest"] = max(0.0, (now_ms - float(oldest)) / 1000) if oldest is not None else 0.0
        else:
            reading["running"] = int(count)
    return [QueueReading(queue=name, waiting=r["waiting"], running=r["running"], oldest_wait_seconds=r["oldest"])
            for name, r in sorted(found.items())]
