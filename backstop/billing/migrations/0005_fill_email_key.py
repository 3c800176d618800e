"""Step 2 of 3: each billing row's email key, from its email (``lib.email_identity``).

A row is linked to its customer by the key. It is left unlinked (an empty key: found by its account alone) and written
to ``accounts.EmailKeyCollision`` for a person when the new key would not name the account the old one did: two
accounts now share the key (accounts' 0004 left both on their old keys), or the row would move from one account to
another. Nothing is merged silently; every other row gets its key.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import migrations

from backstop.lib.email_identity import email_key
from backstop.lib.email_key_change import AccountOwners, email_key_before_idna

BATCH = 1000
LEFT = "left without an email key: by its address it could be another customer's than before, or two customers'"


def fill_email_key(apps: Any, schema_editor: Any) -> None:
    Account = apps.get_model("accounts", "Account")
    EmailKeyCollision = apps.get_model("accounts", "EmailKeyCollision")
    owners = AccountOwners(Account.objects.values_list("pk", "email"))
    for label in ("PurchaseAttempt", "Order", "Entitlement"):
        model = apps.get_model("billing", label)
        last = 0
        while rows := list(model.objects.filter(pk__gt=last).order_by("pk").values_list("pk", "email")[:BATCH]):
            last = rows[-1][0]
            by_key: dict[str, list[int]] = defaultdict(list)
            for pk, email in rows:
                new_key = email_key(email)
                disputed_by = owners.disputed_by(email)
                if disputed_by:
                    EmailKeyCollision.objects.get_or_create(
                        table=f"billing.{label}", row_id=pk, new_key=new_key,
                        defaults={"email": email, "old_key": email_key_before_idna(email),
                                  "account_ids": disputed_by, "what_was_done": LEFT},
                    )
                    new_key = ""
                by_key[new_key].append(pk)
            for key, pks in by_key.items():
                model.objects.filter(pk__in=pks).update(email_key=key)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_fill_email_key"),
        ("billing", "0004_buyer_email_key"),
    ]

    operations = [
        migrations.RunPython(fill_email_key, migrations.RunPython.noop, elidable=False),
    ]
