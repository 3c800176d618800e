"""Lint: the backward-compatibility rules (what the release still running cannot survive) and squawk."""

from __future__ import annotations

import pytest
from django.db import connection, models
from django.db.migrations import operations as ops
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration

from backstop.preflight import messages
from backstop.preflight.lint import LintFinding, compatibility_findings, squawk_findings, squawk_path
from backstop.preflight.runner import applied_state

pytestmark = pytest.mark.django_db


def lint(*operations: ops.base.Operation, accept: dict[str, str] | None = None) -> list[LintFinding]:
    migration = Migration("9001_test", "accounts")
    migration.operations = list(operations)  # type: ignore[misc]
    if accept is not None:
        migration.preflight_accept = accept  # type: ignore[attr-defined]
    state = applied_state(MigrationExecutor(connection))
    return compatibility_findings(migration, state, connection)


def rules(findings: list[LintFinding]) -> list[tuple[str, str]]:
    return [(finding.rule, finding.severity) for finding in findings]


def test_it_refuses_what_the_running_release_still_reads() -> None:
    assert rules(lint(ops.RemoveField("account", "phone"))) == [("drop_column", "error")]
    assert rules(lint(ops.RenameField("account", "phone", "telephone"))) == [("rename_column", "error")]
    assert rules(lint(ops.DeleteModel("accountevent"))) == [("drop_table", "error")]
    assert rules(lint(ops.RenameModel("accountevent", "accounthistory"))) == [("rename_table", "error")]
    assert rules(lint(ops.AlterModelTable("accountevent", "history"))) == [("rename_table", "error")]


def test_it_refuses_a_not_null_column_without_a_database_default() -> None:
    refused = lint(ops.AddField("account", "plan", models.CharField(max_length=10, default="free")))
    assert rules(refused) == [("not_null_without_db_default", "error")]
    assert "db_default" in refused[0].as_dict()["recipe"]
    assert lint(ops.AddField("account", "plan", models.CharField(max_length=10, db_default="free"))) == []
    assert lint(ops.AddField("account", "plan", models.CharField(max_length=10, null=True))) == []


def test_it_refuses_set_not_null_and_type_changes_but_not_a_wider_varchar() -> None:
    assert rules(lint(ops.AlterField("account", "email_verified_at", models.DateTimeField()))) == [
        ("set_not_null", "error")]
    assert rules(lint(ops.AlterField("account", "setup_run", models.CharField(max_length=10, default="1")))) == [
        ("change_column_type", "error")]
    assert lint(ops.AlterField("account", "company", models.CharField(max_length=300))) == []
    assert lint(ops.AlterField("account", "company", models.TextField())) == []


def test_it_warns_of_code_that_cannot_be_reversed() -> None:
    assert rules(lint(ops.RunPython(lambda apps, editor: None))) == [("irreversible", "warning")]
    assert lint(ops.RunPython(lambda apps, editor: None, ops.RunPython.noop)) == []


def test_it_leaves_alone_a_model_the_running_release_does_not_have() -> None:
    migration = Migration("9001_test", "accounts")
    migration.operations = [  # type: ignore[misc]
        ops.CreateModel("Badge", [("id", models.BigAutoField(primary_key=True))]),
        ops.AddField("badge", "label", models.CharField(max_length=10, default="x")),
    ]
    state = applied_state(MigrationExecutor(connection))

    assert compatibility_findings(migration, state, connection, running_models=set(state.models)) == []
    assert rules(compatibility_findings(migration, state, connection)) == [("not_null_without_db_default", "error")]


def test_it_keeps_an_accepted_finding_with_its_reason() -> None:
    (accepted,) = lint(ops.RemoveField("account", "phone"), accept={"drop_column": "unused since release 41"})
    assert (accepted.severity, accepted.detail) == ("accepted", "unused since release 41")


def test_it_reads_postgresql_sql_with_squawk() -> None:
    assert squawk_path() is not None, "squawk-cli is a dev dependency"
    statements = ['CREATE UNIQUE INDEX "u" ON "accounts_account" ((LOWER("company")))']

    found = squawk_findings(statements, atomic=True, label="accounts.9001_test")

    assert "require-concurrent-index-creation" in " ".join(finding.detail for finding in found)
    assert {finding.severity for finding in found} == {"warning"}
    assert found[0].operation.startswith("CREATE UNIQUE INDEX")


def test_it_has_complete_texts_for_every_rule() -> None:
    for name, text in messages.LINT_RULES.items():
        assert text.title and text.why and text.recipe, name
