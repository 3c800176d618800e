"""The desk's search entry per case, and the indexes that answer it (docs/decisions.md, "The desk, all day").

PostgreSQL: the body's words in a generated tsvector column with a GIN index, and the pg_trgm extension with a GIN trigram index on the identity
(fragments of addresses and names). Creating the extension needs a role allowed to; when refused, the migration
says so, goes on without the trigram index (fragments are then found by a scan of the entries) and `backstop check
--database default` warns (backstop.W201). SQLite: an FTS5 table with the trigram tokenizer, kept current by triggers.
"""

from __future__ import annotations

import sys
from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.db import DatabaseError, migrations, models, transaction

FTS = "support_casesearch_fts"
SQLITE_CREATE = [
    f"CREATE VIRTUAL TABLE {FTS} USING fts5(identity, body, content='support_casesearchentry', "
    "content_rowid='case_id', tokenize='trigram')",
    f"""CREATE TRIGGER support_casesearch_ai AFTER INSERT ON support_casesearchentry BEGIN
        INSERT INTO {FTS}(rowid, identity, body) VALUES (new.case_id, new.identity, new.body); END""",
    f"""CREATE TRIGGER support_casesearch_ad AFTER DELETE ON support_casesearchentry BEGIN
        INSERT INTO {FTS}({FTS}, rowid, identity, body) VALUES ('delete', old.case_id, old.identity, old.body); END""",
    f"""CREATE TRIGGER support_casesearch_au AFTER UPDATE ON support_casesearchentry BEGIN
        INSERT INTO {FTS}({FTS}, rowid, identity, body) VALUES ('delete', old.case_id, old.identity, old.body);
        INSERT INTO {FTS}(rowid, identity, body) VALUES (new.case_id, new.identity, new.body); END""",
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS support_casesearch_ai", "DROP TRIGGER IF EXISTS support_casesearch_ad",
               "DROP TRIGGER IF EXISTS support_casesearch_au", f"DROP TABLE IF EXISTS {FTS}"]
# The body's words stored beside it (a generated column the ORM never names): ranking thousands of matches reads
# them instead of parsing every body again. PostgreSQL only; SQLite has its FTS5 table.
PG_BODY_WORDS = ("ALTER TABLE support_casesearchentry ADD COLUMN body_words tsvector "
                 "GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED")
PG_BODY_INDEX = "CREATE INDEX support_casesearch_body_fts ON support_casesearchentry USING gin (body_words)"
PG_TRIGRAM_INDEX = ("CREATE INDEX support_casesearch_identity_trgm ON support_casesearchentry "
                    "USING gin (identity gin_trgm_ops)")


def create_search_indexes(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for statement in SQLITE_CREATE:
                cursor.execute(statement)
            return
        if connection.vendor != "postgresql":
            return
        cursor.execute(PG_BODY_WORDS)
        cursor.execute(PG_BODY_INDEX)
        try:
            with transaction.atomic(using=connection.alias):  # a savepoint: a refusal leaves the migration going
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                cursor.execute(PG_TRIGRAM_INDEX)
        except DatabaseError as error:
            print(f"\n  support search: no trigram index ({error}); partial addresses and names are found by a scan "
                  "of the search entries. Run CREATE EXTENSION pg_trgm as a superuser and migrate support to 0011 "
                  "and back to add it.", file=sys.stderr)


def drop_search_indexes(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for statement in SQLITE_DROP:
                cursor.execute(statement)
        elif connection.vendor == "postgresql":
            cursor.execute("DROP INDEX IF EXISTS support_casesearch_identity_trgm")
            cursor.execute("DROP INDEX IF EXISTS support_casesearch_body_fts")
            cursor.execute("ALTER TABLE support_casesearchentry DROP COLUMN IF EXISTS body_words")


class Migration(migrations.Migration):

    dependencies = [
        ("support", "0011_refused_actions_and_page_replies"),
    ]

    operations = [
        migrations.CreateModel(
            name="CaseSearchEntry",
            fields=[
                ("case", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True,
                                              related_name="search_entry", serialize=False, to="support.case")),
                ("identity", models.TextField(default="")),
                ("body", models.TextField(default="")),
                ("indexed_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.RunPython(create_search_indexes, drop_search_indexes),
    ]
