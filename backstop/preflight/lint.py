"""Lint a migration: backward compatibility with the release still running during the deploy, and squawk's reading
of its PostgreSQL SQL for lock hazards.

The running code's models are the project state production stands at (the state before the migration): Django
selects and inserts every field a model has, so dropping or renaming any of them breaks the old release until it is
replaced. A migration that knows what it does says so: ``preflight_accept = {"drop_column": "why it is safe"}``;
the finding is kept in the report as accepted, with the reason, and does not fail the preflight.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations import operations as ops
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState

from backstop.preflight import messages

ERROR = "error"
WARNING = "warning"
ACCEPTED = "accepted"


@dataclass
class LintFinding:
    rule: str  # a key of messages.LINT_RULES
    severity: str  # error (fails the preflight), warning, accepted
    operation: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        text = messages.LINT_RULES[self.rule]
        return {**asdict(self), "title": text.title, "why": text.why, "recipe": text.recipe}


def compatibility_findings(
    migration: Migration, state: ProjectState, connection: BaseDatabaseWrapper,
    *, running_models: set[tuple[str, str]] | None = None,
) -> list[LintFinding]:
    """The operations the release running during the deploy cannot survive, each with its expand/contract recipe.

    ``running_models``: the (app_label, model_name) the running release has (production's state before the plan); a
    model the plan itself creates is unknown to that release, so nothing done to it can break it.
    """
    findings: list[LintFinding] = []
    before = state.clone()
    accepted: dict[str, str] = getattr(migration, "preflight_accept", {})
    for operation in migration.operations:
        after = before.clone()
        operation.state_forwards(migration.app_label, after)
        model_name = str(getattr(operation, "model_name", None) or getattr(operation, "name", "")).lower()
        if running_models is not None and (migration.app_label, model_name) not in running_models:
            before = after
            continue
        for rule, severity in _rules_for(operation, migration.app_label, before, after, connection):
            detail = ""
            if rule in accepted:
                severity, detail = ACCEPTED, accepted[rule]
            findings.append(LintFinding(rule=rule, severity=severity, operation=operation.describe(), detail=detail))
        before = after
    return findings


def _rules_for(
    operation: ops.base.Operation, app_label: str, before: ProjectState, after: ProjectState,
    connection: BaseDatabaseWrapper,
) -> list[tuple[str, str]]:
    if isinstance(operation, ops.RemoveField):
        return [("drop_column", ERROR)]
    if isinstance(operation, ops.RenameField):
        return [("rename_column", ERROR)]
    if isinstance(operation, ops.DeleteModel):
        return [("drop_table", ERROR)]
    if isinstance(operation, ops.RenameModel | ops.AlterModelTable):
        return [("rename_table", ERROR)]
    if isinstance(operation, ops.AddField):
        field = operation.field
        no_db_default = getattr(field, "db_default", models.NOT_PROVIDED) is models.NOT_PROVIDED
        if not field.many_to_many and not field.null and no_db_default:
            return [("not_null_without_db_default", ERROR)]
    if isinstance(operation, ops.AlterField):
        old = before.apps.get_model(app_label, operation.model_name)._meta.get_field(operation.name)
        new = after.apps.get_model(app_label, operation.model_name)._meta.get_field(operation.name)
        found: list[tuple[str, str]] = []
        if old.null and not new.null:
            found.append(("set_not_null", ERROR))
        if old.db_type(connection) != new.db_type(connection) and not _widens(old, new):
            found.append(("change_column_type", ERROR))
        return found
    if isinstance(operation, ops.RunPython) and not operation.reversible:
        return [("irreversible", WARNING)]
    if isinstance(operation, ops.RunSQL) and not operation.reversible:
        return [("irreversible", WARNING)]
    return []


def _widens(old: Any, new: Any) -> bool:
    """A longer varchar (or varchar to text) is a catalogue-only change on PostgreSQL and old writes still fit."""
    old_limit, new_limit = getattr(old, "max_length", None), getattr(new, "max_length", None)
    same_kind = isinstance(old, models.CharField) and isinstance(new, models.CharField | models.TextField)
    return same_kind and old_limit is not None and (new_limit is None or new_limit >= old_limit)


def squawk_path() -> str | None:
    beside_python = Path(sys.executable).parent / "squawk"
    return str(beside_python) if beside_python.exists() else shutil.which("squawk")


def squawk_findings(statements: list[str], *, atomic: bool, label: str, pg_version: str = "") -> list[LintFinding]:
    """squawk's warnings for the SQL one migration runs on PostgreSQL (its ``sqlmigrate`` text)."""
    executable = squawk_path()
    if executable is None or not statements:
        return []
    command = [executable, "--reporter", "json", "--stdin-filepath", f"{label}.sql"]
    if atomic:
        command.append("--assume-in-transaction")  # Django runs an atomic migration in one transaction
    if pg_version:
        command.append(f"--pg-version={pg_version}")
    sql = "\n".join(statement if statement.rstrip().endswith(";") else statement + ";" for statement in statements)
    result = subprocess.run(command, input=sql.encode(), capture_output=True, check=False, timeout=60)
    try:
        reported = json.loads(result.stdout or b"[]")
    except json.JSONDecodeError:
        return [LintFinding(rule="squawk", severity=WARNING, operation=label,
                            detail=f"squawk could not read the SQL: {result.stderr.decode(errors='replace')[:500]}")]
    lines = sql.splitlines()
    findings = []
    for warning in reported:
        line_number = warning.get("line", -1)  # squawk counts lines from 0
        line = lines[line_number].strip() if 0 <= line_number < len(lines) else ""
        findings.append(LintFinding(
            rule="squawk", severity=WARNING, operation=line[:200],
            detail=f"{warning['rule_name']}: {warning['message']} {warning.get('help') or ''}".strip(),
        ))
    return findings
