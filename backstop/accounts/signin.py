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

from backstop.accounts.devices import KnownDevice, read_device_token
from backstop.accounts.models import Account, AccountState, VerificationCode
from backstop.accounts.passwords import change_password
from backstop.accounts.timeline import record_event
from backstop.accounts.validation import clean_new_password, normalise_password
from backstop.lib.email_identity import email_key
from backstop.lib.errors import InvalidInput
from backstop.notify import services as notify
from backstop.ratelimits.services import (
    Limit,
    RateLimited,
    check_rate_limit,
    claim_attempt,
    count_failure,
    refuse_spent_budget,
)

# The rate-limit model (docs/decisions.md, "Rate limits that protect owners"): only failures spend a budget; an
# address's failures slow that address; an account's failures slow only browsers that never signed in to it; a known
# device spends its own budget; guesses at a code are bounded per code, not per account.
# Failed passwords: per address (all accounts alike, so a 429 never tells staff from customers) and per account.
LOGIN_LIMIT = Limit(per_ip=60, per_email=10, window_seconds=900)
# Staff accounts keep their own per-account budget, under their own name: customers' traffic never spends it.
STAFF_LOGIN_LIMIT = Limit(per_ip=60, per_email=10, window_seconds=900)
# Failures (of a password or a code) from one known device before it is treated as unknown for the window.
DEVICE_LIMIT = Limit(per_ip=0, per_email=10, window_seconds=900)
# Codes asked for: every request counts (each sends an SMS and an email), per address and per account.
RECOVER_LIMIT = Limit(per_ip=20, per_email=5, window_seconds=3600)
STAFF_RECOVER_LIMIT = Limit(per_ip=20, per_email=5, window_seconds=3600)
# The newest codes a guess is compared with: as many as recovery's limit lets one address ask for in an hour.
LIVE_CODES_CHECKED = 5
# Wrong codes per address. There is no per-account budget for codes: a stranger's wrong codes would lock the owner
# out of the very route that lets them back in. Guessing is bounded per code instead (settings: the tries per address
# per code, and in all per code).
VERIFY_LIMIT = Limit(per_ip=30, per_email=0, window_seconds=3600)
# The window of the per-address tries at one code: longer than any code lives, so one code has one count.
CODE_TRIES_WINDOW_SECONDS = 24 * 3600
# A real Argon2 hash to check against when the email is unknown, so both answers take as long.
_TIMING_DECOY = make_password(secrets.token_urlsafe(16))


class InvalidCredentials(Exception):
    pass


class AccountDisabled(Exception):
    pass


class CodeRejected(Exception):
    pass



def _known_device(token: str, account: Account | None) -> KnownDevice | None:
    """The browser's device cookie, when it names this account and has failures left in its own budget."""
    device = read_device_token(token=token, account_id=account.pk if account else None)
    if device is None:
        return None
    try:
        refuse_spent_budget(action="device", limit=DEVICE_LIMIT, email_key=device.device_id)
    except RateLimited:
        return None  # it failed too often: from now on it is any browser, under the address and account budgets
    return device


def _login_budget(account: Account | None) -> tuple[str, Limit]:
    return ("staff-login", STAFF_LOGIN_LIMIT) if account is not None and account.is_staff else ("login", LOGIN_LIMIT)


def authenticate_account(*, email: str, password: str, ip: str, device: str = "") -> Account:
    """Check the password. ``device`` is the browser's device cookie: a known device of this account is not slowed by
    failures from elsewhere. Only a failure is counted, never a correct sign-in."""
    key = email_key(email)
    account = Account.objects.by_email_key(key) if key else None
    known = _known_device(device, account)
    action, limit = _login_budget(account)
    if known is None:
        refuse_spent_budget(action="login", limit=LOGIN_LIMIT, ip=ip)
        refuse_spent_budget(action=action, limit=limit, email_key=key)
    password = normalise_password(password)
    if account is None:
        check_password(password, _TIMING_DECOY)
    if account is None or not account.check_password(password):
        if known is not None:
            count_failure(action="device", limit=DEVICE_LIMIT, email_key=known.device_id)
        else:
            count_failure(action="login", limit=LOGIN_LIMIT, ip=ip)
            count_failure(action=action, limit=limit, email_key=key)
        raise InvalidCredentials
    if account.state == AccountState.DISABLED:
        raise AccountDisabled
    record_event(account, "signed_in", "Signed in with password.")
    return account


def _hash_code(account_id: int, code: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"{account_id}:{code}".encode(), hashlib.sha256).hexdigest()


def count_code_request(*, email_key: str, ip: str, device: str = "") -> None:
    """Count one request for a code (each sends messages), before anything is sent: per address always; per account
    (staff under their own budget) unless it comes from a known device of the account, which strangers' requests
    cannot have spent. RateLimited past a limit."""
    account = Account.objects.by_email_key(email_key) if email_key else None
    check_rate_limit(action="recover", limit=RECOVER_LIMIT, ip=ip, email_key=None)
    if _known_device(device, account) is None:
        staff = account is not None and account.is_staff
        check_rate_limit(action="staff-recover" if staff else "recover",
                         limit=STAFF_RECOVER_LIMIT if staff else RECOVER_LIMIT, ip="", email_key=email_key)


def send_sign_in_code(*, email: str, ip: str, device: str = "") -> None:
    """Send a one-time code by SMS and email, now: for the signed-in owner and staff. A code asked for by a typed
    address goes through ``accounts.recovery.ask_for_sign_in_code``, whose timing says nothing about the address."""
    key = email_key(email)
    count_code_request(email_key=key, ip=ip, device=device)
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


def redeem_sign_in_code(*, email: str, code: str, ip: str, new_password: str = "", device: str = "") -> Account:
    """Check a code (10 minutes, once). A correct code proves the person: email verified.

    Wrong codes slow the address they come from; they never close the route for the owner. The guesses at one code
    are bounded per address (VERIFICATION_CODE_MAX_TRIES) and in all (VERIFICATION_CODE_MAX_TOTAL_TRIES, which a known
    device of the account is not held to), so brute force stays hopeless while a code the owner holds keeps working.
    """
    key = email_key(email)
    account = Account.objects.by_email_key(key) if key else None
    known = _known_device(device, account)
    if known is None:
        refuse_spent_budget(action="verify", limit=VERIFY_LIMIT, ip=ip)
    try:
        return _redeem(account=account, email=email, code=code, ip=ip, new_password=new_password, known=known)
    except CodeRejected:
        if known is not None:
            count_failure(action="device", limit=DEVICE_LIMIT, email_key=known.device_id)
        else:
            count_failure(action="verify", limit=VERIFY_LIMIT, ip=ip)
        raise


def _claim_guess(*, record: VerificationCode, ip: str, known: KnownDevice | None) -> bool:
    """Take one guess at ``record`` (the newest live code): one of the address's tries at it, then, unless from a
    known device, one of its tries in all. Both are conditional updates: parallel guesses never exceed them."""
    per_address = claim_attempt(key=f"code:{record.pk}:ip:{ip}", limit=settings.VERIFICATION_CODE_MAX_TRIES,
                                window_seconds=CODE_TRIES_WINDOW_SECONDS)
    if not per_address:
        return False
    if known is not None:
        VerificationCode.objects.filter(pk=record.pk).update(tries=F("tries") + 1)
        return True
    return bool(VerificationCode.objects.filter(
        pk=record.pk, tries__lt=settings.VERIFICATION_CODE_MAX_TOTAL_TRIES
    ).update(tries=F("tries") + 1))


def _redeem(*, account: Account | None, email: str, code: str, ip: str, new_password: str,
            known: KnownDevice | None) -> Account:
    new_password = normalise_password(new_password)
    if new_password:
        errors: dict[str, str] = {}
        clean_new_password(new_password, errors, email=email)
        if errors:
            raise InvalidInput({"new_password": errors["password"]})
    if account is None or account.state == AccountState.DISABLED:
        raise CodeRejected
    now = timezone.now()
    # Every code sent in the last 10 minutes works, not only the newest: an SMS that arrives late, after the person
    # asked again, must not send them round in a circle. The tries are counted on the newest code, so asking again
    # gives new tries, never tries per code still live.
    live = list(VerificationCode.objects.filter(account=account, used_at__isnull=True, expires_at__gt=now)
                .order_by("-created_at")[:LIVE_CODES_CHECKED])
    if not live or not _claim_guess(record=live[0], ip=ip, known=known):
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
            change_password(account=account, new_password=new_password, how="code")
        record_event(account, "signed_in", "Signed in with a one-time code.")
    account.refresh_from_db()
    return account
