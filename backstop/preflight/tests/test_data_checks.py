"""Each data check, asked about a migration against real rows (read-only: the test's own transaction holds them)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, models
from django.db.migrations import operations as ops
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.models import Q
from django.db.models.functions import Lower

from backstop.accounts.models import Account, AccountState, EmailKeyCollision
from backstop.preflight import messages
from backstop.preflight.checks import Finding, check_migration
from backstop.preflight.runner import applied_state

pytestmark = pytest.mark.django_db


def account(email: str, company: str = "Acme", **fields: Any) -> Account:
    return Account.objects.create(email=email, email_key=email, name="Ann", company=company, **fields)


def findings_for(*operations: ops.base.Operation, preconditions: list[tuple[str, str]] | None = None) -> list[Finding]:
    migration = Migration("9001_test", "accounts")
    migration.operations = list(operations)  # type: ignore[misc]
    if preconditions is not None:
        migration.preconditions = preconditions  # type: ignore[attr-defined]
    state = applied_state(MigrationExecutor(connection))
    return check_migration(migration, state, alias="default")


def test_it_finds_case_only_duplicates_before_a_case_folded_unique_constraint() -> None:
    acme, shouting = account("a@example.com", "Acme"), account("b@example.com", "ACME")
    other = account("c@example.com", "Zed")

    (found,) = findings_for(ops.AddConstraint("account", models.UniqueConstraint(Lower("company"), name="u")))

    assert (found.check, found.table, found.count) == ("duplicates", "accounts_account", 1)
    assert [(row["pk"], row["values"], row["key"]) for row in found.rows] == [
        (acme.pk, {"company": "Acme"}, ["acme"]), (shouting.pk, {"company": "ACME"}, ["acme"])]
    assert other.pk not in [row["pk"] for row in found.rows]
    assert "1 values of" in found.message


def test_it_compares_plain_field_constraints_exactly_and_honours_their_condition() -> None:
    account("a@example.com", "Acme")
    account("b@example.com", "ACME")  # differs in case: a plain unique constraint lets it be
    first = account("c@example.com", "Globex", state=AccountState.ACTIVE)
    second = account("d@example.com", "Globex", state=AccountState.ACTIVE)
    account("e@example.com", "Globex", state=AccountState.DISABLED)  # outside the condition

    (exact,) = findings_for(ops.AddConstraint("account", models.UniqueConstraint(fields=["company"], name="u1")))
    assert (exact.count, len(exact.rows)) == (1, 3)  # one group, Globex three times; Acme and ACME differ
    (found,) = findings_for(ops.AddConstraint("account", models.UniqueConstraint(
        fields=["company"], condition=Q(state=AccountState.ACTIVE), name="u2")))
    assert [row["pk"] for row in found.rows] == [first.pk, second.pk]


def test_it_finds_duplicates_before_unique_true_and_unique_together() -> None:
    account("a@example.com", "Acme", phone="+15550100")
    account("b@example.com", "Acme", phone="+15550100")

    (by_field,) = findings_for(ops.AlterField("account", "phone", models.CharField(max_length=20, unique=True)))
    (together,) = findings_for(ops.AlterUniqueTogether("account", {("company", "phone")}))

    assert by_field.check == together.check == "duplicates"
    assert len(by_field.rows) == len(together.rows) == 2


def test_it_finds_nulls_before_not_null_unless_a_default_fills_them() -> None:
    unverified = account("a@example.com")
    from django.utils import timezone

    account("b@example.com", email_verified_at=timezone.now())

    (found,) = findings_for(ops.AlterField("account", "email_verified_at", models.DateTimeField()))
    assert (found.check, found.count, [row["pk"] for row in found.rows]) == ("nulls", 1, [unverified.pk])
    assert findings_for(ops.AlterField("account", "email_verified_at",
                                       models.DateTimeField(default=timezone.now))) == []


def test_it_finds_orphans_before_a_foreign_key() -> None:
    ann = account("a@example.com")
    missing_id = ann.pk + 1000
    kept = EmailKeyCollision.objects.create(table="accounts_account", row_id=ann.pk, email="a", old_key="a",
                                            new_key="a", what_was_done="-")
    orphan = EmailKeyCollision.objects.create(table="accounts_account", row_id=missing_id, email="b", old_key="b",
                                              new_key="b", what_was_done="-")

    (found,) = findings_for(ops.AlterField("emailkeycollision", "row_id", models.ForeignKey(
        "accounts.account", on_delete=models.CASCADE, db_column="row_id")))

    assert (found.check, found.count) == ("orphans", 1)
    assert found.rows == [{"pk": orphan.pk, "values": {"row_id": missing_id}}]
    assert kept.pk not in [row["pk"] for row in found.rows]


def test_it_finds_values_longer_than_a_new_max_length() -> None:
    account("a@example.com", "Acme")
    long_one = account("b@example.com", "Ünïcödé Company Limited")  # 23 characters, more bytes

    (found,) = findings_for(ops.AlterField("account", "company", models.CharField(max_length=22)))

    assert (found.check, found.count, found.rows[0]["pk"]) == ("too_long", 1, long_one.pk)
    assert findings_for(ops.AlterField("account", "company", models.CharField(max_length=23))) == []


def test_it_finds_values_outside_new_choices() -> None:
    account("a@example.com", state=AccountState.ACTIVE)
    disabled = account("b@example.com", state=AccountState.DISABLED)

    (found,) = findings_for(ops.AlterField("account", "state", models.CharField(
        max_length=20, choices=[(state, state) for state in AccountState.values if state != AccountState.DISABLED],
        default=AccountState.SETTING_UP)))

    assert (found.check, [row["pk"] for row in found.rows]) == ("outside_choices", [disabled.pk])


def test_it_runs_declared_preconditions_and_reports_the_rows_they_return() -> None:
    nameless = account("a@example.com", "")
    account("b@example.com", "Acme")
    sql = "SELECT id, email FROM accounts_account WHERE company = '' ORDER BY id"

    (found,) = findings_for(preconditions=[("every account names its company", sql)])
    assert (found.check, found.what) == ("precondition", "every account names its company")
    assert found.rows == [{"pk": nameless.pk, "values": {"id": nameless.pk, "email": "a@example.com"}}]
    Account.objects.filter(pk=nameless.pk).update(company="Filled")
    assert findings_for(preconditions=[("every account names its company", sql)]) == []


def test_it_reports_a_check_that_cannot_run_instead_of_passing() -> None:
    account("a@example.com")

    (found,) = findings_for(ops.AddConstraint("account", models.UniqueConstraint(Lower("no_such_field"), name="u")))
    assert found.check == "check_failed" and found.error

    (broken,) = findings_for(preconditions=[("reads a table that is not there", "SELECT id FROM no_such_table")])
    assert (broken.check, broken.what) == ("check_failed", "reads a table that is not there")
    assert Account.objects.count() == 1  # the failed query left the connection usable


def test_it_finds_a_new_unique_column_that_one_default_would_fill() -> None:
    first, second = account("a@example.com"), account("b@example.com")

    (found,) = findings_for(ops.AddField("account", "slug", models.CharField(max_length=20, default="", unique=True)))
    assert (found.check, [row["pk"] for row in found.rows]) == ("duplicates", [first.pk, second.pk])
    assert findings_for(ops.AddField("account", "slug", models.CharField(max_length=20, null=True, unique=True))) == []


def test_it_has_complete_texts_for_every_check() -> None:
    for name, text in messages.DATA_CHECKS.items():
        assert text.title and text.fix, name
        assert text.found.format(count=2, table="t", what="w"), name
