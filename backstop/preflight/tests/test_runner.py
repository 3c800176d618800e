"""The plan on the copy: checks see the data each migration meets, the first failure stops the plan, verdicts saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from backstop.accounts.models import Account
from backstop.preflight.models import PreflightRun
from backstop.preflight.plan import pending_plan
from backstop.preflight.runner import run_preflight, tables_the_plan_touches
from backstop.preflight.tests.pending_migrations import make_pending

pytestmark = pytest.mark.django_db(transaction=True)

FILL_CASE_DUPLICATES = """
    def rename_case_duplicates(apps, schema_editor):
        Account = apps.get_model("accounts", "Account")
        seen = set()
        for account in Account.objects.order_by("pk"):
            folded = account.company.lower()
            if folded in seen:
                account.company = f"{account.company} ({account.pk})"
                account.save(update_fields=["company"])
            seen.add(account.company.lower())
        # Data migrations reach for the default connection too; on the copy, that must be the copy.
        from django.db import connection
        with connection.cursor() as cursor:
            cursor.execute("UPDATE accounts_account SET name = 'Renamed by the migration'")

    operations = [migrations.RunPython(rename_case_duplicates, migrations.RunPython.noop)]
"""
CASEFOLD_UNIQUE = """    operations = [
        migrations.AddConstraint(
            model_name="account",
            constraint=models.UniqueConstraint(Lower("company"), name="one_account_per_company_casefolded"),
        ),
    ]
"""
SHORTER_COMPANY = """    operations = [
        migrations.AlterField(model_name="account", name="company", field=models.CharField(max_length=4)),
    ]
"""
RAW_CASEFOLD_INDEX = """    operations = [migrations.RunSQL(
        'CREATE UNIQUE INDEX raw_company_casefolded ON accounts_account (lower(company))',
        'DROP INDEX raw_company_casefolded',
    )]
"""
DROP_PHONE = """    preflight_accept = {"drop_column": "the phone moved to DetailsChange in release 12"}
    operations = [migrations.RemoveField(model_name="account", name="phone")]
"""


def account(email: str, company: str) -> Account:
    return Account.objects.create(email=email, email_key=email, name="Ann", company=company)


def test_it_checks_each_migration_on_the_data_the_earlier_ones_left(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # schema -> fill -> alter: the fill renames the case-only duplicate, so the constraint after it meets none.
    make_pending(tmp_path, settings, monkeypatch, ("9001_fill_company_casefolded", FILL_CASE_DUPLICATES),
                 ("9002_company_casefold_unique", CASEFOLD_UNIQUE))
    account("a@example.com", "Acme")
    account("b@example.com", "ACME")

    run = run_preflight()

    assert run.passed, [(entry["error"], entry["checks"]) for entry in run.report["migrations"]]
    assert [(entry["migration"], entry["status"], entry["checks"]) for entry in run.report["migrations"]] == [
        ("accounts.9001_fill_company_casefolded", "applied", []),
        ("accounts.9002_company_casefold_unique", "applied", []),
    ]
    assert all(entry["seconds"] >= 0 for entry in run.report["migrations"])
    if connection.vendor == "postgresql":  # a RunPython may read any table: every table's rows were copied
        assert "workspaces_workspace" in run.report["copy"]["tables_with_rows"]
    assert PreflightRun.objects.get(pk=run.pk).passed
    # Production untouched, by the ORM (Model.objects) and by raw SQL on django.db.connection alike.
    assert sorted(Account.objects.values_list("company", "name")) == [("ACME", "Ann"), ("Acme", "Ann")]


def test_it_stops_the_plan_at_the_first_failure(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_pending(tmp_path, settings, monkeypatch, ("9001_company_casefold_unique", CASEFOLD_UNIQUE),
                 ("9002_shorter_company", SHORTER_COMPANY))
    account("a@example.com", "Acme")
    account("b@example.com", "ACME")

    run = run_preflight()

    first, second = run.report["migrations"]
    assert (first["status"], second["status"]) == ("failed", "not_run")
    assert second["checks"] == [] and "earlier migration" in second["error"]
    assert not run.passed


def test_it_fails_on_data_a_migration_would_accept_on_sqlite_but_not_trust(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite does not enforce max_length, so the alter applies there; the too-long rows still fail the preflight.
    make_pending(tmp_path, settings, monkeypatch, ("9001_shorter_company", SHORTER_COMPANY))
    long_one = account("a@example.com", "Globex")

    run = run_preflight()

    (entry,) = run.report["migrations"]
    assert entry["status"] == ("applied" if connection.vendor == "sqlite" else "failed")
    assert [row["pk"] for row in entry["checks"][0]["rows"]] == [long_one.pk]
    assert not run.passed


def test_it_reports_accepted_lint_without_failing(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_pending(tmp_path, settings, monkeypatch, ("9001_drop_phone", DROP_PHONE))

    run = run_preflight()

    (entry,) = run.report["migrations"]
    drop = next(finding for finding in entry["lint"] if finding["rule"] == "drop_column")
    assert (drop["severity"], drop["detail"]) == ("accepted", "the phone moved to DetailsChange in release 12")
    assert run.passed, [(entry["error"], entry["checks"]) for entry in run.report["migrations"]]
    if connection.vendor == "postgresql":
        assert any(finding["rule"] == "squawk" for finding in entry["lint"])
    else:
        assert any("squawk" in note for note in run.report["notes"])


def test_it_refuses_a_source_that_does_not_stand_where_production_stands(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A snapshot taken before production applied its last migration has another pending plan.
    if connection.vendor == "postgresql":
        pytest.skip("the stale snapshot is made with SQLite's backup; the check itself is vendor-free")
    import sqlite3

    stale = tmp_path / "stale.sqlite3"
    with sqlite3.connect(connection.settings_dict["NAME"]) as production, sqlite3.connect(stale) as copy_to:
        production.backup(copy_to)
    with sqlite3.connect(stale) as copy_to:
        copy_to.execute("DELETE FROM django_migrations WHERE id = (SELECT max(id) FROM django_migrations)")
    make_pending(tmp_path, settings, monkeypatch, ("9001_company_casefold_unique", CASEFOLD_UNIQUE))

    run = run_preflight(source=str(stale))

    assert not run.passed
    assert "does not stand where production stands" in run.report["error"]


def test_it_saves_a_failed_verdict_when_the_copy_cannot_be_made(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_pending(tmp_path, settings, monkeypatch, ("9001_company_casefold_unique", CASEFOLD_UNIQUE))
    unreadable = tmp_path / "not-a-database.sqlite3"
    unreadable.write_text("this is not SQLite")

    run = run_preflight(source=str(unreadable))

    assert not run.passed and run.report["error"]
    assert PreflightRun.objects.filter(pk=run.pk, passed=False).exists()


def test_it_names_the_tables_a_plan_touches(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_pending(tmp_path, settings, monkeypatch, ("9001_company_casefold_unique", CASEFOLD_UNIQUE))
    assert tables_the_plan_touches(pending_plan(), using="default") == {"accounts_account"}


def test_it_passes_an_empty_plan_without_copying() -> None:
    run = run_preflight()

    assert run.passed and run.plan == [] and run.report["migrations"] == []
    assert run.report["copy"] == {}
    assert "nothing to try" in run.report["notes"][0]


def test_it_names_the_rows_of_a_failure_no_check_foresaw(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the rows are read back from PostgreSQL's error detail; SQLite's errors name no key")
    make_pending(tmp_path, settings, monkeypatch, ("9001_raw_casefold_index", RAW_CASEFOLD_INDEX))
    acme = account("a@example.com", "Acme")
    shouting = account("b@example.com", "ACME")
    account("c@example.com", "Globex")

    run = run_preflight()

    (entry,) = run.report["migrations"]
    assert (entry["status"], entry["checks"]) == ("failed", [])
    (named,) = entry["offending_rows"]
    assert named["table"] == "accounts_account" and "is duplicated" in named["what"]
    assert [row["pk"] for row in named["rows"]] == [acme.pk, shouting.pk]


# One migration that first merges the case-only duplicates, then adds the constraint that forbids them.
DEDUPLICATE_THEN_CONSTRAIN = """    operations = [
        migrations.RunSQL(
            "UPDATE accounts_account SET company = company || ' #' || CAST(id AS varchar(20)) "
            "WHERE company <> lower(company)", migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name="account",
            constraint=models.UniqueConstraint(Lower("company"), name="one_account_per_company_casefolded"),
        ),
    ]
"""


def test_it_judges_operations_after_a_data_change_by_the_run_not_the_data_before_it(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    Account.objects.create(email="ann@example.com", email_key="ann@example.com", name="Ann", company="acme corp")
    Account.objects.create(email="cy@example.com", email_key="cy@example.com", name="Cy", company="ACME CORP")
    make_pending(tmp_path, settings, monkeypatch, ("9001_deduplicate_then_constrain", DEDUPLICATE_THEN_CONSTRAIN))

    run = run_preflight()

    (entry,) = run.report["migrations"]
    assert entry["status"] == "applied" and entry["checks"] == []
    assert run.passed
    assert sorted(Account.objects.values_list("company", flat=True)) == ["ACME CORP", "acme corp"]  # production


def test_it_names_the_rows_when_a_data_change_did_not_fix_them(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    Account.objects.create(email="ann@example.com", email_key="ann@example.com", name="Ann", company="acme corp")
    shouting = Account.objects.create(email="cy@example.com", email_key="cy@example.com", name="Cy",
                                      company="ACME CORP")
    make_pending(tmp_path, settings, monkeypatch, ("9001_deduplicate_then_constrain",
                                                   DEDUPLICATE_THEN_CONSTRAIN.replace("<> lower(company)", "= ''")))

    run = run_preflight()

    (entry,) = run.report["migrations"]
    assert entry["status"] == "failed" and not run.passed
    if connection.vendor == "postgresql":  # PostgreSQL's error names the key; SQLite's names only the index
        assert shouting.pk in [row["pk"] for found in entry["offending_rows"] for row in found["rows"]]
