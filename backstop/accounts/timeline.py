"""The account's timeline: what happened to it, in words a person reads on the support desk."""

from __future__ import annotations

from backstop.accounts.models import Account, AccountEvent


def timeline_entry(account: Account | int, kind: str, text: str) -> AccountEvent:
    """An unsaved entry for the account's timeline (``record_event`` saves one; a step's result saves several)."""
    account_id = account if isinstance(account, int) else account.pk
    return AccountEvent(account_id=account_id, kind=kind, text=text[:500])


def record_event(account: Account | int, kind: str, text: str) -> None:
    timeline_entry(account, kind, text).save()
