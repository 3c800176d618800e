"""Step 2 of 3: each message's recipient key, from its ``to``.

Support finds a customer's messages by this key when the customer has no account. A message whose key would name
another account than before, or two accounts (accounts' 0004 left both on their old keys), is left unlinked (an empty
key: found by its account alone) and written to ``accounts.EmailKeyCollision`` for a person. The local mailbox of the
demo's fake providers holds no customer's history: every item simply gets its key.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import migrations

from backstop.lib.email_identity import email_key
from backstop.lib.email_key_change import AccountOwners, email_key_before_idna

BATCH = 1000
LEFT = "left without a recipient key: by its address it could be another customer's than before, or two customers'"


def fill_to_key(apps: Any, schema_editor: Any) -> None:
    Account = apps.get_model("accounts", "Account")
    EmailKeyCollision = apps.get_model("accounts", "EmailKeyCollision")
    owners = AccountOwners(Account.objects.values_list("pk", "email"))
    for label, disputes_matter in (("Message", True), ("LocalMailboxItem", False)):
        model = apps.get_model("notify", label)
        last = 0
        while rows := list(model.objects.filter(pk__gt=last).order_by("pk").values_list("pk", "to")[:BATCH]):
            last = rows[-1][0]
            by_key: dict[str, list[int]] = defaultdict(list)
            for pk, to in rows:
                new_key = email_key(to)
                disputed_by = owners.disputed_by(to) if disputes_matter else []
                if disputed_by:
                    EmailKeyCollision.objects.get_or_create(
                        table=f"notify.{label}", row_id=pk, new_key=new_key,
                        defaults={"email": to, "old_key": email_key_before_idna(to), "account_ids": disputed_by,
                                  "what_was_done": LEFT},
                    )
                    new_key = ""
                by_key[new_key].append(pk)
            for key, pks in by_key.items():
                model.objects.filter(pk__in=pks).update(to_key=key)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_fill_email_key"),
        ("notify", "0004_recipient_key"),
    ]

    operations = [
        migrations.RunPython(fill_to_key, migrations.RunPython.noop, elidable=False),
    ]
