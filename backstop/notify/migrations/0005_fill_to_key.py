"""Step 2 of 3: each message's recipient key, from its ``to``.

Support finds a customer's messages by this key when the customer has no account. A message whose key would name
another account than before, or two accounts (accounts' 0004 left both on their old keys), is left unlinked (an empty
key: found by its account alone) and written to ``accounts.EmailKeyCollision`` for a person. The local mailbox of the
demo's fake providers holds no customer's history: every item simply gets its key.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

from backstop.lib.email_key_change import AccountOwners, rekey_rows

BATCH = 1000
LEFT = "left without a recipient key: by its address it could be another customer's than before, or two customers'"


def fill_to_key(apps: Any, schema_editor: Any) -> None:
    owners = AccountOwners(apps.get_model("accounts", "Account").objects.values_list("pk", "email"))
    for label, disputes_matter in (("Message", True), ("LocalMailboxItem", False)):
        rekey_rows(apps.get_model("notify", label), table=f"notify.{label}", address_field="to", key_field="to_key",
                   owners=owners if disputes_matter else None,
                   report=apps.get_model("accounts", "EmailKeyCollision"), left=LEFT, batch=BATCH)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_fill_email_key"),
        ("notify", "0004_recipient_key"),
    ]

    operations = [
        migrations.RunPython(fill_to_key, migrations.RunPython.noop, elidable=False),
    ]
