"""Every account the email key's change left on a key no typed address gives any more, or beside another account that
now has its key, becomes an attention record (locked out) for the desk: its owner may be unable to sign in, and the
collision report alone (`backstop email_key_collisions`) is a command nobody on the desk runs.

The support cycle joins each record to the customer's case, like any record raised without a signal.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

LOCKED_OUT = 20  # attention.Harm.LOCKED_OUT, as a number: a migration must not import the app's current code


def raise_shared_key_records(apps: Any, schema_editor: Any) -> None:
    collision_model = apps.get_model("accounts", "EmailKeyCollision")
    account_model = apps.get_model("accounts", "Account")
    record_model = apps.get_model("attention", "AttentionRecord")
    for collision in collision_model.objects.filter(table="accounts.Account", resolved_at__isnull=True):
        for account in account_model.objects.filter(pk__in=[collision.row_id, *collision.account_ids]):
            if record_model.objects.filter(kind="email_key_shared", account=account, resolved_at__isnull=True).exists():
                continue
            others = sorted((set(collision.account_ids) | {collision.row_id}) - {account.pk})
            record_model.objects.create(
                kind="email_key_shared", harm=LOCKED_OUT, cause="", account=account,
                summary=_summary(account, others, collision.new_key),
                detail={"email": account.email, "email_key": account.email_key, "new_key": collision.new_key,
                        "other_accounts": others, "report": collision.pk},
            )


def _summary(account: Any, others: list[int], new_key: str) -> str:
    # What the desk shows: which way sign-in now goes, and that no tool here moves an address (the report's command
    # lists the rows). Written out in the migration: it must not import the app's current message catalogue.
    accounts = ", ".join(f"account {pk}" for pk in others)
    if account.email_key == new_key:
        return (f"Signing in as {account.email} reaches this account; {accounts}, signed up with another form of the "
                f"same address, can no longer be reached by signing in. Ask the owner which account is theirs.")
    return (f"Signing in as {account.email} now reaches {accounts} ({new_key}), not this one: both are one address "
            "since the email identity changed. Ask the owner which account is theirs.")


class Migration(migrations.Migration):
    dependencies = [
        ("attention", "0005_kind_email_key_shared"),
        ("accounts", "0004_fill_email_key"),
    ]

    operations = [
        migrations.RunPython(raise_shared_key_records, migrations.RunPython.noop, elidable=False),
    ]
