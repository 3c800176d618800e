"""Signing in: with the password, or with a one-time code sent by SMS and email (which also recovers the account)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backstop.accounts.models import Account, AccountState, VerificationCode
from backstop.accounts.timeline import record_event
from backstop.accounts.validation import clean_new_password, normalise_password
from backstop.lib.email_identity import email_key
from backstop.lib.errors import InvalidInput
from backstop.notify import services as notify
from backstop.ratelimits.services import Limit, check_rate_limit

LOGIN_LIMIT = Limit(per_ip=60, per_email=10, window_seconds=900)
RECOVER_LIMIT = Limit(per_ip=20, per_email=5, window_seconds=3600)
# The newest codes a guess is compared with: as many as recovery's limit lets one address ask for in an hour.
LIVE_CODES_CHECKED = 5
VERIFY_LIMIT = Limit(per_ip=30, per_email=10, window_seconds=3600)
# A real Argon2 hash to check against when the email is unknown, so both answers take as long.
_TIMING_DECOY = make_password(secrets.token_urlsafe(16))


class InvalidCredentials(Exception):
    pass


class AccountDisabled(Exception):
    pass


class CodeRejected(Exception):
    pass



def authenticate_account(*, email: str, password: str, ip: str) -> Account:
    key = email_key(email)
    check_rate_limit(action="login", limit=LOGIN_LIMIT, ip=ip, email_key=key)
    password = normalise_password(password)
    account = Account.objects.by_email_key(key) if key else None
    if account is None:
        check_password(password, _TIMING_DECOY)
        raise InvalidCredentials
    if not account.check_password(password):
        raise InvalidCredentials
    if account.state == AccountState.DISABLED:
        raise AccountDisabled
    record_event(account, "signed_in", "Signed in with password.")
    return account


def _hash_code(account_id: int, code: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"{account_id}:{code}".encode(), hashlib.sha256).hexdigest()


def send_sign_in_code(*, email: str, ip: str) -> None:
    """Send a one-time code by SMS and email, now: for the signed-in owner and staff. A code asked for by a typed
    address goes through ``accounts.recovery.ask_for_sign_in_code``, whose timing says nothing about the address."""
    key = email_key(email)
    check_rate_limit(action="recover", limit=RECOVER_LIMIT, ip=ip, email_key=key)
    send_code_to_owner(email_key=key)


def send_code_to_owner(*, email_key: str) -> None:
    """The code, to the account's phone and email, when the address has a usable account."""
    account = Account.objects.by_email_key(email_key) if email_key else None
    if account is None or account.state == AccountState.DISABLED:
        return
    code = f"{secrets.randbelow(10**6):06d}"
    with transaction.atomic():
        record = VerificationCode.objects.create(
            account=account, code_hash=_hash_code(account.pk, code),
            expires_at=timezone.now() + dt.timedelta(seconds=settings.VERIFICATION_CODE_TTL_SECONDS),
        )
        context: dict[str, Any] = {"account": account, "code": code, "verify_url": f"{settings.BASE_URL}/verify"}
        messages = [notify.create_email(account=account, kind="sign_in_code", key=f"code:{record.pk}:email",
                                        to=account.email, context=context, secret=code)]
        if account.phone:
            messages.append(notify.create_sms(account=account, kind="sign_in_code", key=f"code:{record.pk}:sms",
                                              to=account.phone, context=context, secret=code))
        record_event(account, "code_sent", "A sign-in code was sent by SMS and email.")
        for message in messages:
            notify.send_soon(message)


def redeem_sign_in_code(*, email: str, code: str, ip: str, new_password: str = "") -> Account:
    """Check a code (5 tries, 10 minutes, once). A correct code proves the person: email verified."""
    key = email_key(email)
    check_rate_limit(action="verify", limit=VERIFY_LIMIT, ip=ip, email_key=key)
    new_password = normalise_password(new_password)
    if new_password:
        errors: dict[str, str] = {}
        clean_new_password(new_password, errors, email=email)
        if errors:
            raise InvalidInput({"new_password": errors["password"]})
    account = Account.objects.by_email_key(key) if key else None
    if account is None or account.state == AccountState.DISABLED:
        raise CodeRejected
    now = timezone.now()
    # Every code sent in the last 10 minutes works, not only the newest: an SMS that arrives late, after the person
    # asked again, must not send them round in a circle. The tries are counted on the newest code, so asking again
    # gives five new tries, never five per code still live.
    live = list(VerificationCode.objects.filter(account=account, used_at__isnull=True, expires_at__gt=now)
                .order_by("-created_at")[:LIVE_CODES_CHECKED])
    if not live:
        raise CodeRejected
    # Conditional UPDATE: each guess claims one of the newest code's tries, so parallel guesses cannot exceed them.
    claimed = VerificationCode.objects.filter(
        pk=live[0].pk, tries__lt=settings.VERIFICATION_CODE_MAX_TRIES
    ).update(tries=F("tries") + 1)
    if not claimed:
        raise CodeRejected
    hashed = _hash_code(account.pk, code.strip())
    match = next((record for record in live if hmac.compare_digest(record.code_hash, hashed)), None)
    # Conditional UPDATE: a code signs in once, even if submitted twice at the same moment.
    if match is None or not VerificationCode.objects.filter(pk=match.pk, used_at__isnull=True).update(used_at=now):
        raise CodeRejected
    # Signed in: the other codes still in the person's inbox and phone are spent too.
    VerificationCode.objects.filter(account=account, used_at__isnull=True).update(used_at=now)
    with transaction.atomic():
        if account.verify_email():
            record_event(account, "email_verified", "Identity confirmed with a one-time code.")
        if new_password:
            account.set_password(new_password)
            account.save(update_fields=["password"])
            record_event(account, "password_reset", "Password changed after signing in with a code.")
        record_event(account, "signed_in", "Signed in with a one-time code.")
    account.refresh_from_db()
    return account

