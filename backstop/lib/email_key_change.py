"""What the change of the email key (its domain now in IDNA ASCII form) does to rows keyed by the rule before it.

The data migrations that re-key stored rows ask this module which rows they may re-key without a person: never one
that would be handed to another customer than before, or that two customers would now share.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable

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
