"""Each case's and contact's customer key in the form ``lib.email_identity`` gives it now (domains in IDNA form).

A row with an account takes the account's key (accounts' 0004 has just re-keyed it); one without takes its email's
new key; a contact filed under its case's key follows its case. A row is left on its old key and written to
``accounts.EmailKeyCollision`` for a person when the new key would not name the account the old one did (two accounts
now share it, or the row would move from one to another), or when two open cases would end up with one key (the desk
keeps one open case per customer): never merged silently.
Cases of a payment nobody could be matched to (``unmatched:``) keep their keys.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import migrations

from backstop.lib.email_identity import email_key
from backstop.lib.email_key_change import AccountOwners

KEPT = "kept its old customer key: under the new one it could be another customer's than before, or two customers'"
KEPT_OPEN = "kept its old customer key: under the new one it would be a second open case of one customer"


def _report(collisions: Any, table: str, pk: int, email: str, old: str, new: str, accounts: list[int], what: str) -> None:
    collisions.objects.get_or_create(
        table=table, row_id=pk, new_key=new,
        defaults={"email": email, "old_key": old, "account_ids": accounts, "what_was_done": what},
    )


def fill_customer_key(apps: Any, schema_editor: Any) -> None:
    Account = apps.get_model("accounts", "Account")
    EmailKeyCollision = apps.get_model("accounts", "EmailKeyCollision")
    owners = AccountOwners(Account.objects.values_list("pk", "email"))
    account_key = dict(Account.objects.values_list("pk", "email_key"))

    def new_key_of(email: str, account_id: int | None) -> tuple[str, list[int]]:
        if account_id is not None:
            return account_key[account_id], []
        return email_key(email), owners.disputed_by(email)

    Case = apps.get_model("support", "Case")
    case_keys_before = dict(Case.objects.values_list("pk", "customer_key"))
    wanted: dict[str, list[tuple[Any, str]]] = defaultdict(list)
    open_keys = defaultdict(set)
    for case in Case.objects.exclude(customer_key__startswith="unmatched:").order_by("pk"):
        new, disputed_by = new_key_of(case.email, case.account_id)
        if disputed_by:
            _report(EmailKeyCollision, "support.Case", case.pk, case.email, case.customer_key, new, disputed_by, KEPT)
            new = case.customer_key
        wanted[new].append((case, case.customer_key))
        if case.state == "open":
            open_keys[case.customer_key].add(case.pk)
    for new, group in wanted.items():
        open_group = [case for case, _ in group if case.state == "open"]
        # An open case may move only where no other open case has, or wants, the key.
        holders = open_keys.get(new, set()) - {case.pk for case in open_group}
        for case, old in group:
            if old == new:
                continue
            if case.state == "open" and (len(open_group) > 1 or holders):
                accounts = sorted({c.account_id for c in open_group if c.account_id is not None})
                _report(EmailKeyCollision, "support.Case", case.pk, case.email, old, new, accounts, KEPT_OPEN)
                continue
            Case.objects.filter(pk=case.pk).update(customer_key=new)
            if case.state == "open":
                open_keys[old].discard(case.pk)
                open_keys[new].add(case.pk)

    Contact = apps.get_model("support", "Contact")
    case_keys_after = dict(Case.objects.values_list("pk", "customer_key"))
    by_key: dict[str, list[int]] = defaultdict(list)
    for pk, email, old, account_id, case_id in Contact.objects.values_list(
        "pk", "email", "customer_key", "account_id", "case_id"
    ):
        if case_id is not None and case_keys_before.get(case_id) == old:
            # Filed under its case's customer, it stays with its case wherever the case's key went (the desk lists a
            # case's contacts by its key): a case kept on its old key, for a person, keeps what its customer wrote.
            if case_keys_after[case_id] != old:
                by_key[case_keys_after[case_id]].append(pk)
            continue
        new, disputed_by = new_key_of(email, account_id)
        if disputed_by:
            _report(EmailKeyCollision, "support.Contact", pk, email, old, new, disputed_by, KEPT)
        elif new != old:
            by_key[new].append(pk)
    for key, pks in by_key.items():
        Contact.objects.filter(pk__in=pks).update(customer_key=key)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_fill_email_key"),
        ("support", "0005_attentionrecord_moved_to_attention"),
    ]

    operations = [
        migrations.RunPython(fill_customer_key, migrations.RunPython.noop, elidable=False),
    ]
