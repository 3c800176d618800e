"""What the change of the email key (its domain now in IDNA ASCII form) does to rows keyed by the rule before it.

The data migrations that re-key stored rows ask this module which rows they may re-key without a person: never one
that would be handed to another customer than before, or that two customers would now share.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from backstop.lib.email_identity import email_key


def email_key_before_idna(value: str) -> str:
    """The key as it was until the IDNA rule: NFKC, domain lower-cased, the whole address case-folded (so a domain's
    "ß" became "ss", and ``bücher.example`` was not ``xn--bcher-kva.example``)."""
    text = unicodedata.normalize("NFKC", value).strip()
    local, at, domain = text.rpartition("@")
    return f"{local}{at}{domain.lower()}".casefold() if at else text.casefold()


class AccountOwners:
    """Which account an address belonged to under the old key, and which accounts it names under the new one."""

    def __init__(self, accounts: Iterable[tuple[int, str]]) -> None:
        self.before: dict[str, int] = {}
        self.now: dict[str, set[int]] = defaultdict(set)
        for pk, email in accounts:
            self.before[email_key_before_idna(email)] = pk
            self.now[email_key(email)].add(pk)

    def disputed_by(self, email: str) -> list[int]:
        """The accounts that could own a row with this address, when the new key would not name exactly the account
        the old one did (two accounts now share the key, or the key moves the row from one account to another);
        empty when the row can take its new key without a person."""
        before = self.before.get(email_key_before_idna(email))
        now = self.now.get(email_key(email), set())
        if len(now) > 1 or (before is not None and now and before not in now):
            return sorted(now | ({before} if before is not None else set()))
        return []


def rekey_rows(model: Any, *, table: str, address_field: str, key_field: str, owners: AccountOwners | None,
               report: Any, left: str, batch: int = 1000) -> None:
    """Give every row of ``model`` (a migration's historical model) the new key of its address, in batches of
    ``batch``. A row whose address ``owners`` says is disputed is left unlinked (an empty key) and written to
    ``report`` (the historical ``accounts.EmailKeyCollision``) as ``table``/its pk, with ``left`` as what was done.
    ``owners`` None: no row can be disputed (rows that are nobody's history, such as the demo's mailbox)."""
    last = 0
    while rows := list(model.objects.filter(pk__gt=last).order_by("pk").values_list("pk", address_field)[:batch]):
        last = rows[-1][0]
        by_key: dict[str, list[int]] = defaultdict(list)
        for pk, address in rows:
            new_key = email_key(address)
            if disputed_by := owners.disputed_by(address) if owners is not None else []:
                report.objects.get_or_create(
                    table=table, row_id=pk, new_key=new_key,
                    defaults={"email": address, "old_key": email_key_before_idna(address), "account_ids": disputed_by,
                              "what_was_done": left},
                )
                new_key = ""
            by_key[new_key].append(pk)
        for key, pks in by_key.items():
            model.objects.filter(pk__in=pks).update(**{key_field: key})
