"""Step 2 of 3: each billing row's email key, from its email (``lib.email_identity``).

A row is linked to its customer by the key. It is left unlinked (an empty key: found by its account alone) and written
to ``accounts.EmailKeyCollision`` for a person when the new key would not name the account the old one did: two
accounts now share the key (accounts' 0004 left both on their old keys), or the row would move from one account to
another. Nothing is merged silently; every other row gets its key.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

from backstop.lib.email_key_change import AccountOwners, rekey_rows

BATCH = 1000
LEFT = "left without an email key: by its address it could be another customer's than before, or two customers'"


def fill_email_key(apps: Any, schema_editor: Any) -> None:
    owners = AccountOwners(apps.get_model("accounts", "Account").objects.values_list("pk", "email"))
    for label in ("PurchaseAttempt", "Order", "Entitlement"):
        rekey_rows(apps.get_model("billing", label), table=f"billing.{label}", address_field="email",
                   key_field="email_key", owners=owners, report=apps.get_model("accounts", "EmailKeyCollision"),
                   left=LEFT, batch=BATCH)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_fill_email_key"),
        ("billing", "0004_buyer_email_key"),
    ]

    operations = [
        migrations.RunPython(fill_email_key, migrations.RunPython.noop, elidable=False),
    ]
