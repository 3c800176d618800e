"""``run_preflight``: the plan pending on production, tried on a copy of production's data, and the verdict saved.

Per migration, on the copy, in plan order: the data checks (on the data the migration will meet), the lint (the SQL
is collected from the copy, whose schema stands exactly where the migration will find it), then the migration itself,
timed, with the locks it took. The first failure stops the plan there, as ``migrate`` would; the rest are "not run".
Production is read (a snapshot) and written once: the PreflightRun row.
"""

from __future__ import annotations

import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations import operations as ops
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState
from django.utils import timezone

from backstop.preflight import messages
from backstop.preflight.checks import SAMPLE_ROWS, check_migration
from backstop.preflight.copying import DatabaseCopy, Progress, copy_database
from backstop.preflight.lint import (
    ERROR,
    WARNING,
    LintFinding,
    compatibility_findings,
    squawk_findings,
    squawk_path,
)
from backstop.preflight.models import OTHER_SOURCE_KEY, PreflightRun
from backstop.preflight.plan import pending_plan, plan_fingerprint, plan_names

APPLIED = "applied"
FAILED = "failed"
NOT_RUN = "not_run"
LOCK_SAMPLE_SECONDS = 0.005

# The operations whose tables we can name; anything else (RunPython, RunSQL, a custom operation) may read or write
# any table, so the copy then holds every table's rows.
_NAMED_TABLE_OPERATIONS = (ops.fields.FieldOperation, ops.models.ModelOperation, ops.models.IndexOperation)


def run_preflight(
    *, using: str = DEFAULT_DB_ALIAS, source: str | None = None, progress: Progress | None = None
) -> PreflightRun:
    """Copy ``using`` (or the SQLite file / PostgreSQL URL ``source``), try its pending plan there, save the verdict."""
    plan = pending_plan(using=using)
    names = plan_names(plan)
    run = PreflightRun(plan_fingerprint=plan_fingerprint(plan), plan=names, vendor=connections[using].vendor,
                       started_at=timezone.now(), data_taken_at=timezone.now())
    report: dict[str, Any] = {"plan": names, "migrations": [], "notes": [], "copy": {}}
    if source is not None:
        # The guard reads this key: only a copy of the database itself speaks for its data (guard.py).
        report[OTHER_SOURCE_KEY] = _without_password(source)
        report["notes"].append(messages.OTHER_SOURCE.format(source=report[OTHER_SOURCE_KEY]))
    if not plan:
        report["notes"].append(messages.NOTHING_PENDING)
        run.passed = True
    else:
        try:
            tables = tables_the_plan_touches(plan, using=using)
            with copy_database(using=using, source=source, tables=tables, progress=progress) as copy:
                run.data_taken_at = copy.taken_at
                run.vendor = copy.vendor
                report["copy"] = {"vendor": copy.vendor, "taken_at": copy.taken_at.isoformat(), "seconds": copy.seconds,
                                  "tables_with_rows": copy.tables_with_rows, "notes": copy.notes}
                with _only_the_copy(copy.alias, aliases={DEFAULT_DB_ALIAS, using}):
                    run.passed = _try_plan(copy, names, report, progress=progress)
        except Exception as error:  # the copy itself failed: a preflight that could not run has not passed
            report["error"] = f"{type(error).__name__}: {error}"
            report["traceback"] = traceback.format_exc(limit=8)
            run.passed = False
    run.finished_at = timezone.now()
    run.report = report
    if PreflightRun._meta.db_table in connections[using].introspection.table_names():
        run.save(using=using)
    else:
        # The first deploy of this app: its own table is in the plan. The verdict is reported, not kept.
        report["notes"].append(messages.NOT_SAVED)
    return run


def _without_password(source: str) -> str:
    """The --source as the report may keep it: a URL's password never goes into a saved report."""
    parts = urlsplit(source)
    if not parts.password:
        return source
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}@{netloc}"))


def applied_state(executor: MigrationExecutor) -> ProjectState:
    """The project state of the migrations applied to the executor's database (what ``migrate`` starts from)."""
    return executor._create_project_state(with_applied_migrations=True)  # type: ignore[attr-defined]


@contextmanager
def _only_the_copy(copy_alias: str, *, aliases: set[str]) -> Iterator[None]:
    """In this thread, ``aliases`` (production) lead to the copy while the plan runs there.

    A RunPython that calls ``Model.objects`` (not ``.using(schema_editor.connection.alias)``), or reaches for
    ``django.db.connection``, would otherwise write production: most data migrations do. Swapping the connection
    objects in this thread sends every query of the run to the copy; other threads keep production.
    """
    saved = {alias: getattr(connections._connections, alias, None) for alias in aliases}  # type: ignore[attr-defined]
    copy_connection = connections[copy_alias]
    for alias in aliases:
        connections[alias] = copy_connection
    try:
        yield
    finally:
        for alias, wrapper in saved.items():
            if wrapper is None:
                del connections[alias]
            else:
                connections[alias] = wrapper


def tables_the_plan_touches(plan: list[Migration], *, using: str) -> set[str] | None:
    """Tables whose rows the plan meets: the models its operations name and the models their relations point at.

    None when an operation could touch anything (RunPython, RunSQL): then every table's rows are copied.
    """
    state = applied_state(MigrationExecutor(connections[using]))
    tables: set[str] = set()
    for migration in plan:
        for operation in migration.operations:
            if not isinstance(operation, _NAMED_TABLE_OPERATIONS):
                return None
            model_name = getattr(operation, "model_name", None) or getattr(operation, "name", None)
            for candidate in (model_name, getattr(operation, "old_name", None)):
                model_state = state.models.get((migration.app_label, str(candidate).lower())) if candidate else None
                if model_state is not None:
                    tables.add(model_state.options.get("db_table") or f"{migration.app_label}_{model_state.name_lower}")
            field = getattr(operation, "field", None)
            if field is not None and field.is_relation and field.related_model:
                related = field.related_model
                label = related if isinstance(related, str) else related._meta.label_lower
                app_label, _, related_name = label.rpartition(".")
                related_state = state.models.get((app_label or migration.app_label, related_name.lower()))
                if related_state is not None:
                    tables.add(related_state.options.get("db_table") or f"{related_state.app_label}_"
                               f"{related_state.name_lower}")
            operation.state_forwards(migration.app_label, state)
    return tables


def _try_plan(copy: DatabaseCopy, names: list[str], report: dict[str, Any], *, progress: Progress | None) -> bool:
    connection = connections[copy.alias]
    executor = MigrationExecutor(connection)
    executor.loader.check_consistent_history(connection)
    copy_plan = [migration for migration, backwards in
                 executor.migration_plan(executor.loader.graph.leaf_nodes()) if not backwards]
    if plan_names(copy_plan) != names:
        report["error"] = messages.PLAN_MISMATCH.format(copy_plan=plan_names(copy_plan) or "empty", plan=names)
        return False
    lint_squawk = copy.vendor == "postgresql" and squawk_path() is not None
    if copy.vendor != "postgresql":
        report["notes"].append(messages.LINT_SKIPPED_ON_SQLITE)
    elif not lint_squawk:
        report["notes"].append(messages.LINT_SKIPPED_NO_SQUAWK)
    state = applied_state(executor)
    running_models = set(state.models)  # what the release running during the deploy knows
    passed = True
    failed = False
    for position, migration in enumerate(copy_plan, start=1):
        entry: dict[str, Any] = {"migration": f"{migration.app_label}.{migration.name}", "status": NOT_RUN,
                                 "seconds": None, "locks": [], "checks": [], "lint": [], "error": "",
                                 "offending_rows": []}
        report["migrations"].append(entry)
        if failed:
            entry["error"] = messages.NOT_RUN
            continue
        if progress is not None:
            progress("migrate", position - 1, len(copy_plan))
        state.apps  # noqa: B018 (render the historical models once, before checks and migration share them)
        findings = check_migration(migration, state, alias=copy.alias)
        entry["checks"] = [finding.as_dict() for finding in findings]
        lint = compatibility_findings(migration, state, connection, running_models=running_models)
        if lint_squawk:
            try:
                statements = executor.loader.collect_sql([(migration, False)])  # type: ignore[attr-defined]
            except Exception as error:  # sqlmigrate cannot write every operation as SQL; the run itself still can
                lint.append(LintFinding(rule="squawk", severity=WARNING, operation=entry["migration"],
                                        detail=f"its SQL could not be collected: {_describe_error(error)}"))
            else:
                lint += squawk_findings(statements, atomic=migration.atomic, label=entry["migration"],
                                        pg_version=_server_version(connection))
        entry["lint"] = [finding.as_dict() for finding in lint]
        failure: BaseException | None = None
        with _recording_locks(connection) as locks:
            started = time.monotonic()
            try:
                state = executor.apply_migration(state, migration)
                entry["status"] = APPLIED
            except Exception as error:
                failure = error
                entry["status"] = FAILED
                entry["error"] = _describe_error(error)
                failed = True
            finished = time.monotonic()
        entry["seconds"] = round(finished - started, 4)
        entry["locks"] = locks.held_until(finished, started=started)
        if failed:
            # The rows that broke it: the checks' findings name them, compared the way the database compares.
            entry["offending_rows"] = [{"check": finding.check, "table": finding.table, "what": finding.what,
                                        "count": finding.count, "rows": finding.rows} for finding in findings]
            if not findings and failure is not None:  # nothing foreseen it (RunSQL, a custom operation): ask the DB
                entry["offending_rows"] = rows_named_by_the_error(failure, alias=copy.alias)
        if findings or failed or any(finding.severity == ERROR for finding in lint):
            passed = False
    if progress is not None:
        progress("migrate", len(copy_plan), len(copy_plan))
    return passed


# PostgreSQL's detail for a unique or foreign-key violation: Key (lower(company::text))=(acme corp) is duplicated.
_KEY_DETAIL = re.compile(r"^Key \((?P<expression>.+)\)=\((?P<value>.*)\) (is duplicated|is not present in table .*)\.$")


def rows_named_by_the_error(error: BaseException, *, alias: str) -> list[dict[str, Any]]:
    """The rows a PostgreSQL constraint error names, read back from the copy (its transaction was rolled back).

    A unique or foreign-key violation names one key and its value: the rows whose key, compared as text, equals it.
    A NOT NULL violation names the column: the rows holding NULL there. Only the key is reported, no other column.
    """
    diag = getattr(error.__cause__, "diag", None)
    table = getattr(diag, "table_name", None)
    if diag is None or not table:
        return []
    connection = connections[alias]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        pk = connection.introspection.get_primary_key_column(cursor, table) or "ctid"
    key_match = _KEY_DETAIL.match(getattr(diag, "message_detail", None) or "")
    if diag.sqlstate in ("23505", "23503") and key_match and "," not in key_match["expression"]:
        what, where, params = key_match["expression"], f"({key_match['expression']})::text = %s", [key_match["value"]]
    elif diag.sqlstate == "23502" and diag.column_name:
        what, where, params = diag.column_name, f"{quote(diag.column_name)} IS NULL", []
    else:
        return []
    try:
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            # The expression is PostgreSQL's own text of the key it could not build, run on the copy only.
            cursor.execute(f"SELECT {quote(pk)}, ({what})::text FROM {quote(table)} WHERE {where} "  # noqa: S608
                           f"ORDER BY 1 LIMIT {SAMPLE_ROWS}", params)
            rows = [{"pk": row_pk, "values": {what: value}} for row_pk, value in cursor.fetchall()]
    except DatabaseError:
        return []
    return [{"check": "database", "table": table, "what": diag.message_detail or diag.message_primary,
             "count": len(rows), "rows": rows}]


def _server_version(connection: BaseDatabaseWrapper) -> str:
    major, minor = divmod(connection.pg_version, 10000)  # type: ignore[attr-defined]
    return f"{major}.{minor}"


def _describe_error(error: BaseException) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())  # one line: the table report indents it
    diag = getattr(error.__cause__, "diag", None)
    detail = getattr(diag, "message_detail", None)
    if detail and detail not in text:
        text += f" ({detail})"
    return text


class _LockLog:
    """The relation locks a migration's transaction took: when each was first seen, so how long it was held."""

    def __init__(self) -> None:
        self.first_seen: dict[tuple[str, str], tuple[float, str]] = {}
        self.whole_database = False

    def held_until(self, end: float, *, started: float) -> list[dict[str, Any]]:
        if self.whole_database:
            # SQLite has one lock: the migration's write transaction holds the whole file until it ends.
            return [{"relation": "(whole database)", "mode": "write lock", "seconds": round(end - started, 4),
                     "statement": ""}]
        return [{"relation": relation, "mode": mode, "seconds": round(end - seen, 4), "statement": statement}
                for (relation, mode), (seen, statement) in sorted(self.first_seen.items())]


LOCKS_SQL = """
SELECT c.oid::regclass::text, l.mode
FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
WHERE l.pid = %s AND l.locktype = 'relation' AND l.granted
  AND c.relnamespace <> 'pg_catalog'::regnamespace
  AND c.relname NOT LIKE 'django\\_migrations%%'  -- the row recording the migration: not the migration's doing
"""


@contextmanager
def _recording_locks(connection: BaseDatabaseWrapper) -> Iterator[_LockLog]:
    """The locks the migration's transaction takes, and from when: a lock is held until the transaction ends.

    Two readers. After each statement, from inside the transaction: exact, however short the statement. And a second
    connection sampling every few milliseconds, because a statement that fails aborts the transaction and releases its
    locks at once: on a large table (where it matters) the sampler sees what the failing statement held while it ran.
    """
    log = _LockLog()
    if connection.vendor != "postgresql":
        log.whole_database = True
        yield log
        return
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    pid = raw.info.backend_pid
    current_statement = [""]

    def read(cursor: Any) -> None:
        now = time.monotonic()
        cursor.execute(LOCKS_SQL, (pid,))
        for relation, mode in cursor.fetchall():
            log.first_seen.setdefault((relation, mode), (now, current_statement[0]))

    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        current_statement[0] = " ".join(str(sql).split())[:200]
        result = execute(sql, params, many, context)
        if not raw.autocommit:
            with raw.cursor() as cursor:
                read(cursor)
        return result

    stop = threading.Event()
    settings_dict = connection.settings_dict
    observer = psycopg.connect(dbname=settings_dict["NAME"], host=settings_dict["HOST"] or None,
                               port=settings_dict["PORT"] or None, user=settings_dict["USER"] or None,
                               password=settings_dict["PASSWORD"] or None, autocommit=True)

    def sample() -> None:
        with observer.cursor() as cursor:
            while not stop.wait(LOCK_SAMPLE_SECONDS):
                read(cursor)

    sampler = threading.Thread(target=sample, name="preflight-lock-sampler", daemon=True)
    sampler.start()
    try:
        with connection.execute_wrapper(record):
            yield log
    finally:
        stop.set()
        sampler.join()
        observer.close()
