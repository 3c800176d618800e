"""Every account's email key in the form ``lib.email_identity`` gives it now (the domain in its IDNA ASCII form).

Most keys do not change: only a domain typed with letters beyond ASCII (or with ß, which case-folding used to turn
into "ss") gets a new key. Two accounts whose new keys would be one (``x@bücher.example`` and
``x@xn--bcher-kva.example``, say) are two sign-ups of what is now one customer: neither is moved, both are written to
``EmailKeyCollision`` for a person, and the database never holds two accounts with one key.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import migrations

from backstop.lib.email_identity import email_key

KEPT = "kept its old key: under the new one it would be the same customer as another account"


def fill_email_key(apps: Any, schema_editor: Any) -> None:
    Account = apps.get_model("accounts", "Account")
    EmailKeyCollision = apps.get_model("accounts", "EmailKeyCollision")
    rows = list(Account.objects.order_by("pk").values_list("pk", "email", "email_key"))
    holder = {key: pk for pk, _, key in rows}
    wanting: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for pk, email, key in rows:
        wanting[email_key(email)].append((pk, email, key))
    for new_key, group in wanting.items():
        for pk, email, key in group:
            taken_by = holder.get(new_key)
            if len(group) == 1 and taken_by in (None, pk):
                if key != new_key:
                    Account.objects.filter(pk=pk).update(email_key=new_key)
                    holder.pop(key, None)
                    holder[new_key] = pk
                continue
            # Another account has, or wants, this key: moving either would make them one customer. A person decides.
            others = {other for other, _, _ in group} | ({taken_by} if taken_by is not None else set())
            EmailKeyCollision.objects.get_or_create(
                table="accounts.Account", row_id=pk, new_key=new_key,
                defaults={"email": email, "old_key": key, "account_ids": sorted(others), "what_was_done": KEPT},
            )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_email_key_collision"),
    ]

    operations = [
        migrations.RunPython(fill_email_key, migrations.RunPython.noop, elidable=False),
    ]
