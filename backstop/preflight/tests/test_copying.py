"""The copy: a snapshot of production that production's writers never wait for, dropped afterwards."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import psycopg
import pytest
from django.db import connection, connections

from backstop.accounts.models import Account, AccountEvent
from backstop.preflight.copying import copy_database, source_settings

pytestmark = pytest.mark.django_db(transaction=True)

WRITER_WAIT_LIMIT_SECONDS = 0.05  # the bound for a production write during the preflight


def account(email: str, company: str = "Acme") -> Account:
    return Account.objects.create(email=email, email_key=email, name="Ann", company=company)


def write_from_another_connection(email: str) -> float:
    """Insert an account as a production writer would, refusing to wait longer than the bound; return its wait."""
    settings_dict = connection.settings_dict
    started = time.monotonic()
    if connection.vendor == "postgresql":
        with psycopg.connect(dbname=settings_dict["NAME"], host=settings_dict["HOST"] or None,
                             port=settings_dict["PORT"] or None, user=settings_dict["USER"] or None,
                             autocommit=True) as writer:
            writer.execute("SET lock_timeout = '50ms'")
            writer.execute("INSERT INTO accounts_account (password, email, email_key, name, company, phone, state, "
                           "setup_run, setup_batch, is_staff, is_superuser, created_at) VALUES ('', %s, %s, 'W', "
                           "'Writer', '', 'active', 1, '', false, false, now())", (email, email))
    else:
        lite = sqlite3.connect(settings_dict["NAME"], timeout=WRITER_WAIT_LIMIT_SECONDS, isolation_level=None)
        try:
            lite.execute("INSERT INTO accounts_account (password, email, email_key, name, company, phone, state, "
                           "setup_run, setup_batch, is_staff, is_superuser, created_at) VALUES ('', ?, ?, 'W', "
                           "'Writer', '', 'active', 1, '', 0, 0, datetime('now'))", (email, email))
        finally:
            lite.close()
    return time.monotonic() - started


def test_it_copies_a_snapshot_while_production_keeps_writing() -> None:
    ann = account("ann@example.com")
    waits: list[float] = []
    stages: list[tuple[str, int, int]] = []

    def progress(stage: str, done: int, total: int) -> None:
        # Called in the middle of the copy, while its snapshot is open: production writes meanwhile.
        stages.append((stage, done, total))
        if not waits:
            waits.append(write_from_another_connection("written-during-copy@example.com"))

    with copy_database(using="default", source=None, tables={"accounts_account"}, progress=progress) as copy:
        copied = list(Account.objects.using(copy.alias).values_list("email", flat=True))
        # The copy is writable and not production: a row written there stays there.
        Account.objects.using(copy.alias).filter(pk=ann.pk).update(company="Changed on the copy")
        new_on_copy = Account.objects.using(copy.alias).create(email="new@x.com", email_key="new@x.com", name="N",
                                                              company="N")
        alias = copy.alias

    assert waits and waits[0] < WRITER_WAIT_LIMIT_SECONDS
    assert copied == ["ann@example.com"]  # the snapshot: the row written during the copy is not in it
    assert Account.objects.filter(email="written-during-copy@example.com").exists()
    assert Account.objects.get(pk=ann.pk).company == "Acme"
    assert not Account.objects.filter(pk=new_on_copy.pk, email="new@x.com").exists()
    assert stages and stages[-1][1] == stages[-1][2]  # the bar ends full
    assert alias not in [wrapper.alias for wrapper in connections.all(initialized_only=True)]
    with pytest.raises(Exception):  # noqa: B017 (the alias is gone, whichever way the handler says so)
        connections[alias].ensure_connection()


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_it_copies_only_the_touched_tables_and_their_neighbours_then_drops_the_copy() -> None:
    ann = account("ann@example.com")
    AccountEvent.objects.create(account=ann, kind="signup", text="Signed up")
    from backstop.workspaces.models import Workspace

    with copy_database(using="default", source=None, tables={"accounts_accountevent"}) as copy:
        scratch = connections[copy.alias].settings_dict["NAME"]
        chosen = copy.tables_with_rows or []
        events = AccountEvent.objects.using(copy.alias).count()
        accounts = Account.objects.using(copy.alias).count()
        workspaces_exist = Workspace.objects.using(copy.alias).count() == 0  # the table is there, empty
        next_id = Account.objects.using(copy.alias).create(email="n@x.com", email_key="n@x.com", name="N",
                                                           company="N").pk

    assert "accounts_accountevent" in chosen and "accounts_account" in chosen  # the FK's parent comes along
    assert "django_migrations" in chosen
    assert "workspaces_workspace" not in chosen
    assert (events, accounts, workspaces_exist) == (1, 1, True)
    assert next_id > ann.pk  # sequences continue production's
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [scratch])
        assert cursor.fetchone()[0] == 0


def test_it_names_a_source_it_cannot_copy() -> None:
    with pytest.raises(ValueError, match="no SQLite file"):
        source_settings(using="default", source="/nonexistent/backstop.sqlite3")
    with pytest.raises(ValueError, match="mysql"):
        source_settings(using="default", source="mysql://u@127.0.0.1/db")


def test_it_copies_a_given_source_instead_of_the_database(tmp_path: Any) -> None:
    account("ann@example.com")
    snapshot = tmp_path / "snapshot.sqlite3"
    if connection.vendor == "postgresql":  # a URL, as a sanitized snapshot database would be given
        source: str = (f"postgres://{connection.settings_dict['USER']}@{connection.settings_dict['HOST']}:"
                       f"{connection.settings_dict['PORT']}/{connection.settings_dict['NAME']}")
    else:
        with sqlite3.connect(connection.settings_dict["NAME"]) as production, sqlite3.connect(snapshot) as copy_to:
            production.backup(copy_to)
        Account.objects.filter(email="ann@example.com").update(company="Changed after the snapshot")
        source = str(snapshot)

    with copy_database(using="default", source=source, tables={"accounts_account"}) as copy:
        companies = list(Account.objects.using(copy.alias).values_list("company", flat=True))

    assert companies == ["Acme"]  # SQLite: the snapshot file's rows, not the database's


PERSISTENCE_SQL = """
SELECT c.relname, c.relpersistence FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'i', 'S') AND n.nspname = current_schema()
"""


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_it_makes_the_scratch_copys_tables_unlogged_and_leaves_productions_alone() -> None:
    ann = account("ann@example.com")
    AccountEvent.objects.create(account=ann, kind="signup", text="Signed up")

    with copy_database(using="default", source=None, tables={"accounts_accountevent"}) as copy:
        with connections[copy.alias].cursor() as cursor:
            cursor.execute(PERSISTENCE_SQL)
            on_copy = dict(cursor.fetchall())
        # A table the plan creates, pointing at a copied one: a logged table could not (PostgreSQL refuses a
        # foreign key from a permanent table to an unlogged one), so the copy creates it unlogged too.
        with connections[copy.alias].schema_editor() as editor:
            editor.execute("CREATE TABLE preflight_new_child (id serial PRIMARY KEY, "
                           "account_id bigint REFERENCES accounts_account (id))")
        with connections[copy.alias].schema_editor(collect_sql=True) as collector:
            collector.execute("CREATE TABLE preflight_other (id int)")
            collected_sql = collector.collected_sql
        with connections[copy.alias].cursor() as cursor:
            cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = 'preflight_new_child'")
            new_child = cursor.fetchone()[0]
        copied_rows = AccountEvent.objects.using(copy.alias).count()

    tables = {"accounts_account", "accounts_accountevent", "django_migrations", "workspaces_workspace"}
    assert {on_copy[name] for name in tables} == {"u"}, on_copy
    assert set(on_copy.values()) == {"u"}, "every table, index and sequence of the copy is unlogged"
    assert new_child == "u" and copied_rows == 1
    assert collected_sql == ["CREATE TABLE preflight_other (id int);"]  # what squawk reads stays production's SQL
    with connection.cursor() as cursor:
        cursor.execute(PERSISTENCE_SQL)
        assert set(dict(cursor.fetchall()).values()) == {"p"}, "production's tables stay logged"


def test_it_rewrites_only_create_table_statements_and_not_partitioned_ones() -> None:
    from backstop.preflight.copying import unlogged_tables

    dump = ("SET x = 1;\nCREATE TABLE public.a (\n    id bigint NOT NULL\n);\n\n"
            "CREATE TABLE public.p (\n    id int\n)\nPARTITION BY RANGE (id);\n"
            "CREATE TABLE public.p1 PARTITION OF public.p FOR VALUES FROM (1) TO (2);\n"
            "COMMENT ON TABLE public.a IS 'made by CREATE TABLE';\ncreate   table b (id int)")
    assert unlogged_tables(dump) == (
        "SET x = 1;\nCREATE UNLOGGED TABLE public.a (\n    id bigint NOT NULL\n);\n\n"
        "CREATE TABLE public.p (\n    id int\n)\nPARTITION BY RANGE (id);\n"
        "CREATE UNLOGGED TABLE public.p1 PARTITION OF public.p FOR VALUES FROM (1) TO (2);\n"
        "COMMENT ON TABLE public.a IS 'made by CREATE TABLE';\nCREATE   UNLOGGED TABLE b (id int)")
