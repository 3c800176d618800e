"""Changing a password: every change is told to the owner on every channel, with a way back in that does not need
the password that was just changed."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.accounts.timeline import record_event
from backstop.notify import services as notify

# How the password was changed, in the owner's timeline.
CHANGE_EVENTS = {
    "code": "Password changed after signing in with a one-time code.",
}


def change_password(*, account: Account, new_password: str, how: str) -> None:
    """Set the password (which ends the account's other sessions: their session hash no longer matches) and tell
    the owner by email, and by SMS when a phone is on file, once the change commits."""
    changed_at = timezone.now()
    with transaction.atomic():
        account.set_password(new_password)
        account.save(update_fields=["password"])
        record_event(account, "password_reset", CHANGE_EVENTS[how])
        _tell_owner_about_password_change(account, changed_at=changed_at)


def _tell_owner_about_password_change(account: Account, *, changed_at: Any) -> None:
    # The way back in is a sign-in code (sent to this email and phone), never the password someone else may now hold.
    context = {"account": account, "changed_at": f"{changed_at:%d %b %Y at %H:%M} UTC",
               "recover_url": f"{settings.BASE_URL}/recover",
               "contact_url": f"{settings.BASE_URL}/support/contact"}
    change = f"{account.pk}:{changed_at.timestamp():.6f}:{secrets.token_hex(4)}"
    messages = [notify.create_email(account=account, kind="password_changed", key=f"password-changed:{change}",
                                    to=account.email, context=context)]
    if account.phone:
        messages.append(notify.create_sms(account=account, kind="password_changed",
                                          key=f"password-changed-sms:{change}", to=account.phone, context=context))
    for message in messages:
        notify.send_soon(message)
