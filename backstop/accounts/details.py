"""Details typed at a same-password signup that differ from the account's (a corrected phone, name or company).

The password proves the owner, but a phone is where sign-in codes go: a new one replaces nothing until the code sent
to it comes back, so a mistyped number is never taken (and one taken from a stolen password would need that phone).
Name and company wait for the same confirmation, so one answer covers all three: what we kept, what they typed, and
how to switch. The confirmed change is told to the address on file. See docs/decisions.md, "A same-password signup
keeps the details on file until the owner confirms the new ones".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backstop.accounts import messages
from backstop.accounts.models import Account, DetailsChange
from backstop.accounts.timeline import record_event
from backstop.accounts.validation import SignupData
from backstop.notify import services as notify

FIELDS = ("name", "company", "phone")
# How long typed details wait for the owner's confirmation (and the code sent to a new phone works).
CHANGE_TTL = dt.timedelta(hours=1)
MAX_TRIES = 5


class ChangeRejected(Exception):
    pass


@dataclass(frozen=True)
class KeptDetail:
    field: str
    kept: str
    typed: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "kept": self.kept, "typed": self.typed}


def _hash(account_id: int, code: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"phone-check:{account_id}:{code}".encode(),
                    hashlib.sha256).hexdigest()


def kept_details(account: Account, data: SignupData) -> list[KeptDetail]:
    return [KeptDetail(field, str(getattr(account, field)), str(getattr(data, field)))
            for field in FIELDS if str(getattr(data, field)) != str(getattr(account, field))]


def hold_detail_changes(*, account: Account, data: SignupData) -> list[KeptDetail]:
    """Keep what is on file; write the typed details down until the owner confirms them (a new phone with the code
    sent to it). Returns what was kept, empty when nothing differs."""
    kept = kept_details(account, data)
    if not kept:
        return []
    new_phone = next((k.typed for k in kept if k.field == "phone"), "")
    code = f"{secrets.randbelow(10**6):06d}" if new_phone else ""
    with transaction.atomic():
        # The latest typing is the one to confirm: an earlier pending change (and its code) is void.
        DetailsChange.objects.filter(account=account, applied_at__isnull=True).delete()
        change = DetailsChange.objects.create(
            account=account, name=data.name, company=data.company, phone=data.phone,
            code_hash=_hash(account.pk, code) if code else "", expires_at=timezone.now() + CHANGE_TTL)
        record_event(account, "details_kept", "Signed up again with other details ("
                     + ", ".join(messages.DETAIL_LABELS[k.field] for k in kept) + "); kept those on file until "
                     "the owner confirms.")
        if code:
            sms = notify.create_sms(account=account, kind="phone_check", key=f"phone-check:{change.pk}",
                                    to=new_phone, context={"code": code}, secret=code)
            notify.send_soon(sms)
    return kept


def kept_details_of(account: Account, change: DetailsChange) -> list[KeptDetail]:
    return [KeptDetail(field, str(getattr(account, field)), str(getattr(change, field))) for field in FIELDS
            if str(getattr(change, field)) != str(getattr(account, field))]


def pending_change(account: Account) -> DetailsChange | None:
    return (DetailsChange.objects.filter(account=account, applied_at__isnull=True, expires_at__gt=timezone.now())
            .order_by("-created_at").first())


def kept_text(kept: list[KeptDetail]) -> str:
    """The sentence the re-signup answer adds: what we kept, what they typed, how to switch."""
    if not kept:
        return ""
    changes = "; ".join(messages.DETAIL_KEPT.format(label=messages.DETAIL_LABELS[k.field], kept=k.kept, typed=k.typed)
                        for k in kept)
    how = (messages.DETAILS_HOW_PHONE.format(phone=next(k.typed for k in kept if k.field == "phone"),
                                             url=f"{settings.BASE_URL}/account/details")
           if any(k.field == "phone" for k in kept)
           else messages.DETAILS_HOW.format(url=f"{settings.BASE_URL}/account/details"))
    return messages.DETAILS_KEPT.format(changes=changes, how=how)


def changed_text(changed: list[KeptDetail]) -> str:
    return "; ".join(messages.DETAIL_CHANGED.format(label=messages.DETAIL_LABELS[k.field], old=k.kept, new=k.typed)
                     for k in changed)


def confirm_detail_change(*, account: Account, code: str = "") -> list[KeptDetail]:
    """Apply the pending change: with the code sent to its new phone when it has one (five tries). Returns what
    changed; raises ChangeRejected when there is nothing to confirm or the code is wrong."""
    change = pending_change(account)
    if change is None:
        raise ChangeRejected
    if change.code_hash:
        if not DetailsChange.objects.filter(pk=change.pk, tries__lt=MAX_TRIES).update(tries=F("tries") + 1):
            raise ChangeRejected
        if not hmac.compare_digest(change.code_hash, _hash(account.pk, code.strip())):
            raise ChangeRejected
    account.refresh_from_db()
    changed = kept_details_of(account, change)
    with transaction.atomic():
        if not DetailsChange.objects.filter(pk=change.pk, applied_at__isnull=True).update(applied_at=timezone.now()):
            raise ChangeRejected  # confirmed by another request at the same moment
        Account.objects.filter(pk=account.pk).update(name=change.name, company=change.company, phone=change.phone)
        account.refresh_from_db()
        summary = changed_text(changed)
        record_event(account, "details_changed", f"Details changed by the owner: {summary}.")
        # The address on file hears of it: a phone is where codes go.
        email = notify.create_email(account=account, kind="details_changed", key=f"details-changed:{change.pk}",
                                    to=account.email, context={"account": account, "changes": summary,
                                                               "contact_url": f"{settings.BASE_URL}/support/contact"})
        notify.send_soon(email)
    return changed
