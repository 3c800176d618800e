"""The copy the preflight runs a plan on: never production itself, read without blocking production's writers.

SQLite: the backup API, from one read transaction (in WAL mode a reader never blocks a writer), into a file in a
temporary directory. PostgreSQL: a REPEATABLE READ READ ONLY transaction on the source exports its snapshot; the whole
schema comes from ``pg_dump --schema-only --snapshot`` (so it is exactly production's, drift included), and the rows of
the tables the plan touches and their foreign-key neighbours are streamed with ``COPY`` from that same snapshot into a
scratch database, dropped afterwards. Only ACCESS SHARE locks are taken on the source, which conflict with no write.

The scratch database's tables are UNLOGGED: it is thrown away, so nothing it holds needs the write-ahead log, and its
rows then cost the server's WAL writer (and production's commits, which share it) nothing. The schema dump is
rewritten (``CREATE TABLE`` -> ``CREATE UNLOGGED TABLE``) before it is restored, and the tables the plan creates on the
copy are made UNLOGGED too (a logged table may not point a foreign key at an unlogged one).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import psycopg
from django.db import connections
from django.db.utils import load_backend
from django.utils import timezone

# progress(stage, done, total): the command draws it as a bar on stderr.
Progress = Callable[[str, int, int], None]
COPY_ALIAS_PREFIX = "preflight_copy_"
SQLITE_PAGES_PER_STEP = 4096  # 16 MiB at SQLite's default page size: a redraw every few hundred milliseconds
COPY_REDRAW_BYTES = 4 << 20
LOCK_WAIT_MILLISECONDS = 2000  # the longest the copy waits for a lock on production before giving up


@dataclass
class DatabaseCopy:
    """A copy registered as a Django connection alias for as long as the ``copy_database`` block runs."""

    alias: str
    vendor: str
    taken_at: dt.datetime  # when the source's snapshot was read
    seconds: float = 0.0  # how long making the copy took
    tables_with_rows: list[str] | None = None  # None: every table (SQLite copies the whole file)
    notes: list[str] = field(default_factory=list)


def source_settings(*, using: str, source: str | None) -> dict[str, Any]:
    """The Django settings of the database to copy: ``using``'s own, or a SQLite file / PostgreSQL URL."""
    if source is None:
        return dict(connections[using].settings_dict)
    if "://" in source:
        parsed = dict(dj_database_url.parse(source))
        if parsed["ENGINE"] not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
            raise ValueError(f"preflight copies SQLite files and PostgreSQL databases, not {urlsplit(source).scheme}")
        return parsed
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"no SQLite file at {source}")
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}


def _vendor(settings_dict: dict[str, Any]) -> str:
    return "sqlite" if settings_dict["ENGINE"].endswith("sqlite3") else "postgresql"


def _register_alias(alias: str, settings_dict: dict[str, Any], *, unlogged: bool = False) -> None:
    """Open the copy under ``alias`` in this thread only: DATABASES is not changed, no other code can reach it.

    ``unlogged``: the tables the plan creates on the copy are created UNLOGGED, as the copied ones were."""
    # configure_settings fills in every key Django expects (it insists on a "default" entry, hence the name).
    configured = connections.configure_settings({"default": dict(settings_dict)})["default"]
    wrapper = load_backend(configured["ENGINE"]).DatabaseWrapper(configured, alias)
    if unlogged:
        wrapper.SchemaEditorClass = _unlogged_schema_editor(wrapper.SchemaEditorClass)
    connections[alias] = wrapper


# A CREATE TABLE at the start of a statement (pg_dump's output, Django's DDL, a RunSQL's text).
_CREATE_TABLE = re.compile(r"(?:^|(?<=[;\n]))(\s*)CREATE(\s+)TABLE\b", re.IGNORECASE)


def unlogged_tables(sql: str) -> str:
    """``sql`` with each ``CREATE TABLE`` statement made ``CREATE UNLOGGED TABLE``, but a partitioned table's (which
    PostgreSQL refuses to make unlogged; its partitions still are)."""
    def rewrite(match: re.Match[str]) -> str:
        end = sql.find(";", match.end())
        statement = sql[match.end(): end if end >= 0 else len(sql)]
        if re.search(r"\bPARTITION\s+BY\b", statement, re.IGNORECASE):
            return match.group(0)
        return f"{match.group(1)}CREATE{match.group(2)}UNLOGGED TABLE"
    return _CREATE_TABLE.sub(rewrite, sql)


def _unlogged_schema_editor(base: type[Any]) -> type[Any]:
    class UnloggedSchemaEditor(base):
        """Runs ``CREATE TABLE`` as ``CREATE UNLOGGED TABLE``; the SQL it collects (what squawk and the report read)
        stays the SQL production would run."""

        def execute(self, sql: Any, params: Any = ()) -> None:
            if not self.collect_sql and sql is not None:
                text = str(sql)  # Django's deferred statements are objects; its own execute() makes them text
                rewritten = unlogged_tables(text)
                if rewritten != text:
                    sql = rewritten
            super().execute(sql, params)

    return UnloggedSchemaEditor


def _unregister_alias(alias: str) -> None:
    with suppress(Exception):
        connections[alias].close()
    with suppress(AttributeError):
        del connections[alias]


@contextmanager
def copy_database(
    *, using: str, source: str | None, tables: set[str] | None, progress: Progress | None = None
) -> Iterator[DatabaseCopy]:
    """Copy ``source`` (default: the database ``using``) and register it as a connection alias; drop it on exit.

    ``tables``: the tables whose rows the plan needs (PostgreSQL copies these and their foreign-key neighbours;
    None copies all). SQLite always copies the whole file: the backup API has no table filter and is fast.
    """
    settings_dict = source_settings(using=using, source=source)
    alias = COPY_ALIAS_PREFIX + secrets.token_hex(4)
    started = time.monotonic()
    if _vendor(settings_dict) == "sqlite":
        with _sqlite_copy(settings_dict, alias=alias, progress=progress) as copy:
            copy.seconds = round(time.monotonic() - started, 3)
            yield copy
    else:
        with _postgresql_copy(settings_dict, alias=alias, tables=tables, progress=progress) as copy:
            copy.seconds = round(time.monotonic() - started, 3)
            yield copy


# SQLite ----------------------------------------------------------------------------------------------------------


@contextmanager
def _sqlite_copy(settings_dict: dict[str, Any], *, alias: str, progress: Progress | None) -> Iterator[DatabaseCopy]:
    with tempfile.TemporaryDirectory(prefix="backstop-preflight-") as directory:
        target_path = Path(directory) / "copy.sqlite3"
        # Read-only URI: the preflight cannot write production even by mistake.
        source_uri = f"file:{Path(settings_dict['NAME']).resolve()}?mode=ro"
        source = sqlite3.connect(source_uri, uri=True, isolation_level=None)
        target = sqlite3.connect(target_path)
        try:
            # One read transaction around the whole backup: its snapshot stays fixed while production writes (WAL),
            # so the stepped backup never restarts, and the steps let us draw progress.
            source.execute("BEGIN")
            source.execute("SELECT count(*) FROM sqlite_master").fetchone()
            taken_at = timezone.now()

            def step(status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress("copy", total - remaining, total)

            source.backup(target, pages=SQLITE_PAGES_PER_STEP, progress=step)
            source.execute("COMMIT")
        finally:
            source.close()
            target.close()
        copy_settings = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(target_path),
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 5},
        }
        _register_alias(alias, copy_settings)
        try:
            yield DatabaseCopy(alias=alias, vendor="sqlite", taken_at=taken_at)
        finally:
            _unregister_alias(alias)


# PostgreSQL ------------------------------------------------------------------------------------------------------


def conninfo(settings_dict: dict[str, Any], *, dbname: str | None = None) -> str:
    parts = {
        "dbname": dbname or settings_dict["NAME"],
        "host": settings_dict.get("HOST") or "",
        "port": str(settings_dict.get("PORT") or ""),
        "user": settings_dict.get("USER") or "",
        "password": settings_dict.get("PASSWORD") or "",
    }
    return psycopg.conninfo.make_conninfo(**{key: value for key, value in parts.items() if value})


def _libpq_env(settings_dict: dict[str, Any]) -> dict[str, str]:
    import os

    env = dict(os.environ)
    for key, setting in (("PGHOST", "HOST"), ("PGPORT", "PORT"), ("PGUSER", "USER"), ("PGPASSWORD", "PASSWORD")):
        if settings_dict.get(setting):
            env[key] = str(settings_dict[setting])
    return env


FK_NEIGHBOURS_SQL = """
SELECT DISTINCT c.conrelid::regclass::text, c.confrelid::regclass::text
FROM pg_constraint c
WHERE c.contype = 'f'
  AND (c.conrelid::regclass::text = ANY(%(tables)s) OR c.confrelid::regclass::text = ANY(%(tables)s))
"""

USER_TABLES_SQL = """
SELECT c.oid::regclass::text, pg_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()
ORDER BY 1
"""


def tables_to_copy(connection: psycopg.Connection[Any], tables: set[str] | None) -> dict[str, int]:
    """The tables whose rows go into the copy, each with its size in bytes (what the progress bar counts)."""
    existing = dict(connection.execute(USER_TABLES_SQL).fetchall())
    if tables is None:
        return existing
    wanted = {name for name in tables | {"django_migrations"} if name in existing}
    # Both directions: the tables the touched ones point at (an FK added or validated needs them) and the tables that
    # point at the touched ones (a changed key, a deleted row, a cascade meets them).
    for child, parent in connection.execute(FK_NEIGHBOURS_SQL, {"tables": sorted(wanted)}).fetchall():
        wanted.update({child, parent})
    return {name: existing[name] for name in sorted(wanted) if name in existing}


@contextmanager
def _postgresql_copy(
    settings_dict: dict[str, Any], *, alias: str, tables: set[str] | None, progress: Progress | None
) -> Iterator[DatabaseCopy]:
    source_name = settings_dict["NAME"]
    scratch_name = f"{source_name}_preflight_{secrets.token_hex(4)}"[:63]
    admin = psycopg.connect(conninfo(settings_dict, dbname="postgres"), autocommit=True)
    created = False
    try:
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(scratch_name)))
        created = True
        # The copy is thrown away: no need to wait for its writes to reach the disk.
        admin.execute(psycopg.sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(
            psycopg.sql.Identifier(scratch_name)))
        with psycopg.connect(conninfo(settings_dict)) as source:
            # The snapshot every byte of the copy is read from. READ ONLY: the copy cannot write production.
            source.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # A reader of a table that a concurrent DDL waits on would make every writer queue behind that DDL: give up
            # rather than wait for a lock (the preflight can be run again; production cannot wait).
            source.execute(f"SET LOCAL lock_timeout = {LOCK_WAIT_MILLISECONDS}")
            snapshot = source.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
            taken_at = timezone.now()
            chosen = tables_to_copy(source, tables)
            _restore_schema(settings_dict, snapshot=snapshot, scratch_name=scratch_name)
            with psycopg.connect(conninfo(settings_dict, dbname=scratch_name)) as target:
                # The copy holds only some tables' rows: foreign keys into the others would refuse them, and the
                # plan's own checks run on the tables it touches, which are all here with their neighbours.
                target.execute("SET session_replication_role = replica")
                _copy_rows(source, target, chosen, progress=progress)
                _copy_sequences(source, target)
                target.execute("SET session_replication_role = DEFAULT")
                target.execute("ANALYZE")
            source.rollback()
        copy_settings = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": scratch_name,
            "HOST": settings_dict.get("HOST", ""),
            "PORT": settings_dict.get("PORT", ""),
            "USER": settings_dict.get("USER", ""),
            "PASSWORD": settings_dict.get("PASSWORD", ""),
        }
        _register_alias(alias, copy_settings, unlogged=True)
        try:
            notes = [] if tables is None else [f"rows copied from {len(chosen)} tables; the others are empty"]
            yield DatabaseCopy(alias=alias, vendor="postgresql", taken_at=taken_at,
                               tables_with_rows=sorted(chosen), notes=notes)
        finally:
            _unregister_alias(alias)
    finally:
        if created:
            # FORCE: a lock sampler or a stray connection of the run must not keep the scratch database alive.
            admin.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(scratch_name)))
        admin.close()


def _restore_schema(settings_dict: dict[str, Any], *, snapshot: str, scratch_name: str) -> None:
    env = _libpq_env(settings_dict)
    missing = [tool for tool in ("pg_dump", "psql") if shutil.which(tool, path=env.get("PATH")) is None]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not found: a PostgreSQL copy needs the PostgreSQL client "
                           "programs, of the server's major version or newer")
    dump = subprocess.run(
        # pg_dump takes ACCESS SHARE on every table it dumps, like the copy: it gives up rather than queue.
        ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
         f"--lock-wait-timeout={LOCK_WAIT_MILLISECONDS}",
         "--dbname", settings_dict["NAME"]],
        env=env, capture_output=True, check=False,
    )
    if dump.returncode != 0:
        raise RuntimeError(f"pg_dump --schema-only failed: {dump.stderr.decode(errors='replace').strip()}")
    # The copy is thrown away: its tables need no WAL (the module's docstring).
    schema = unlogged_tables(dump.stdout.decode()).encode()
    restore = subprocess.run(
        ["psql", "--quiet", "--no-psqlrc", "--single-transaction", "-v", "ON_ERROR_STOP=1", "--dbname", scratch_name],
        input=schema, env=env, capture_output=True, check=False,
    )
    if restore.returncode != 0:
        raise RuntimeError(f"restoring the schema failed: {restore.stderr.decode(errors='replace').strip()}")


SEQUENCES_SQL = """
SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences
WHERE schemaname = current_schema() AND last_value IS NOT NULL
"""


def _copy_sequences(source: psycopg.Connection[Any], target: psycopg.Connection[Any]) -> None:
    """Ids the copy hands out continue production's: a new row on the copy never collides with a copied one."""
    for sequence, last_value in source.execute(SEQUENCES_SQL).fetchall():
        target.execute("SELECT setval(%s::regclass, %s)", (sequence, last_value))


def _copy_rows(
    source: psycopg.Connection[Any], target: psycopg.Connection[Any], tables: dict[str, int],
    *, progress: Progress | None,
) -> None:
    """Stream each table's rows from the snapshot into the copy; progress counts bytes against the tables' sizes."""
    total = max(sum(tables.values()), 1)
    done = 0
    redrawn_at = 0
    for table in tables:
        name = psycopg.sql.SQL(table)  # regclass text: already quoted where it needs to be
        with source.cursor().copy(psycopg.sql.SQL("COPY {} TO STDOUT (FORMAT BINARY)").format(name)) as out, \
                target.cursor().copy(psycopg.sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(name)) as into:
            for chunk in out:
                into.write(chunk)
                done += len(chunk)
                if progress is not None and done - redrawn_at >= COPY_REDRAW_BYTES:
                    redrawn_at = done
                    progress("copy", min(done, total), max(total, done))
    if progress is not None:
        progress("copy", max(total, done), max(total, done))
