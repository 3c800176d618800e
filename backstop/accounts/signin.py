"""Signing in: with the password, or with a one-time code sent by SMS and email, or the one-time sign-in link sent
with it by email (both also recover the account)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backstop.accounts.devices import KnownDevice, hash_code_browser, read_device_token
from backstop.accounts.models import Account, AccountState, VerificationCode
from backstop.accounts.passwords import change_password
from backstop.accounts.timeline import record_event
from backstop.accounts.validation import clean_new_password, normalise_password
from backstop.lib.email_identity import email_key
from backstop.lib.errors import InvalidInput
from backstop.lib.http import rate_limit_address
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
# device spends its own budget. Wrong codes are bounded per account too, except in the browser that asked for the code,
# which has tries of its own at it (CODE_BROWSER_TRIES); and the sign-in link in the same email cannot be guessed, so
# no budget holds it. Strangers cannot spend the owner's way back in.
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
# Wrong codes: per address, and per account for browsers that never signed in to it. 10 an hour per account, each
# compared with at most LIVE_CODES_CHECKED codes: one chance in 20,000 an hour of guessing a 6-digit code. A stranger
# can spend the account's budget; the owner then signs in with the link in any code email (never counted), or from a
# known device.
VERIFY_LIMIT = Limit(per_ip=30, per_email=10, window_seconds=3600)
STAFF_VERIFY_LIMIT = Limit(per_ip=30, per_email=10, window_seconds=3600)
# The window of the per-address tries at one code: longer than any code lives, so one code has one count.
CODE_TRIES_WINDOW_SECONDS = 24 * 3600
# Wrong codes typed in the browser that asked for them, per account and code lifetime (an aligned 10-minute window):
# room for typos, and no more. A stranger gets such tries only at codes they asked for (sent to the owner, not to
# them), so at most RECOVER_LIMIT's requests an hour, each with these tries: about 1 in 7,000 an hour of guessing
# a 6-digit code, beside the account budget's 1 in 20,000 (docs/decisions.md).
CODE_BROWSER_TRIES = 5


@functools.cache
def _timing_decoy() -> str:
    """A real Argon2 hash to check against when the email is unknown, so both answers take as long. Made at first use,
    not at import: at production's cost (100 MiB) it took 0.4 s of every process's start, `backstop` commands too."""
    return make_password(secrets.token_urlsafe(16))


class InvalidCredentials(Exception):
    pass


class AccountDisabled(Exception):
    pass


class CodeRejected(Exception):
    pass


class LinkRejected(Exception):
    """The sign-in link is unknown, used already or expired."""


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
        check_password(password, _timing_decoy())
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


def _code_name(record: VerificationCode) -> str:
    """The code's name in the keys of its messages and of its tries: its id and part of its link's random hash, since an
    id alone can come round again (a table that a migration rebuilt after its newest rows were deleted restarts its
    ids), and a reused key would send nothing (the message "already sent") or inherit another code's tries."""
    return f"{record.pk}-{record.link_hash[:12]}"


def _hash_link_token(token: str) -> str:
    # A plain hash is enough: the token has 256 random bits, so the stored hash gives nothing to guess from.
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in_link_url(token: str) -> str:
    return f"{settings.BASE_URL}/signin/{token}"


def count_code_request(*, email_key: str, ip: str, device: str = "") -> None:
    """Count one request for a code (each sends messages), before anything is sent: per address always; per account
    (staff under their own budget) unless it comes from a known device of the account, which strangers' requests
    cannot have spent. RateLimited past a limit."""
    account = Account.objects.by_email_key(email_key) if email_key else None
    check_rate_limit(action="recover", limit=RECOVER_LIMIT, ip=ip, email_key=None)
    if _known_device(device, account) is None:
        staff = account is not None and account.is_staff
        try:
            check_rate_limit(action="staff-recover" if staff else "recover",
                             limit=STAFF_RECOVER_LIMIT if staff else RECOVER_LIMIT, ip="", email_key=email_key)
        except RateLimited:
            # Past the account's budget, one request per code lifetime (an aligned 10-minute window) still goes
            # through: so at any moment either a code email sent in the last 10 minutes (its link works whatever
            # the budgets) is in the owner's inbox, or the owner's own request sends one. Strangers cannot keep the
            # owner from a live link; the cost is at most six more messages an hour.
            digest = hashlib.sha256(email_key.encode()).hexdigest()
            if not claim_attempt(key=f"recover-beyond:{digest}", limit=1,
                                 window_seconds=settings.VERIFICATION_CODE_TTL_SECONDS):
                raise


def send_sign_in_code(*, email: str, ip: str, device: str = "", browser: str = "") -> None:
    """Send a one-time code by SMS and email, now: for the signed-in owner and staff. A code asked for by a typed
    address goes through ``accounts.recovery.ask_for_sign_in_code``, whose timing says nothing about the address.
    ``browser``: the asking browser's token (``devices.code_browser_token``)."""
    key = email_key(email)
    count_code_request(email_key=key, ip=ip, device=device)
    send_code_to_owner(email_key=key, browser_hash=hash_code_browser(browser))


def send_code_to_owner(*, email_key: str, browser_hash: str = "") -> None:
    """The code, to the account's phone and email, when the address has a usable account. ``browser_hash``: of the
    browser that asked for it, where it has tries of its own."""
    account = Account.objects.by_email_key(email_key) if email_key else None
    if account is None or account.state == AccountState.DISABLED:
        return
    code = f"{secrets.randbelow(10**6):06d}"
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        record = VerificationCode.objects.create(
            account=account, code_hash=_hash_code(account.pk, code), link_hash=_hash_link_token(token),
            browser_hash=browser_hash,
            expires_at=timezone.now() + dt.timedelta(seconds=settings.VERIFICATION_CODE_TTL_SECONDS),
        )
        context: dict[str, Any] = {"account": account, "code": code, "verify_url": f"{settings.BASE_URL}/verify",
                                   "sign_in_url": sign_in_link_url(token)}
        # The email carries the link as well as the code; both are masked in our copy once it is sent.
        messages = [notify.create_email(account=account, kind="sign_in_code", key=f"code:{_code_name(record)}:email",
                                        to=account.email, context=context, secret=f"{code} {token}")]
        # The SMS keeps to the code: a link in a text message is what phishing looks like, and the email has one.
        if account.phone:
            messages.append(notify.create_sms(account=account, kind="sign_in_code",
                                              key=f"code:{_code_name(record)}:sms", to=account.phone,
                                              context=context, secret=code))
        record_event(account, "code_sent", "A sign-in code was sent by SMS and email.")
        for message in messages:
            notify.send_soon(message)


def redeem_sign_in_code(*, email: str, code: str, ip: str, new_password: str = "", device: str = "",
                        browser: str = "") -> Account:
    """Check a code (10 minutes, once). A correct code proves the person: email verified.

    Typed in the browser that asked for it (``browser``, its token), a code has CODE_BROWSER_TRIES of its own there,
    whatever strangers did: a code the owner holds is usable within its lifetime. Elsewhere, wrong codes slow the
    address they come from and, for browsers that never signed in to the account, the account (VERIFY_LIMIT: brute
    force stays hopeless); one address has VERIFICATION_CODE_MAX_TRIES at one code. A known device spends only its own
    budget. The sign-in link sent with every code (``redeem_sign_in_link``) is held to no budget at all.
    """
    key = email_key(email)
    account = Account.objects.by_email_key(key) if key else None
    asked_here = _codes_asked_for_here(account, browser)
    if asked_here:
        return _redeem(account=account, email=email, code=code, ip=ip, new_password=new_password,
                       asked_here=asked_here)
    known = _known_device(device, account)
    action, limit = _verify_budget(account)
    if known is None:
        refuse_spent_budget(action="verify", limit=VERIFY_LIMIT, ip=ip)
        refuse_spent_budget(action=action, limit=limit, email_key=key)
    try:
        return _redeem(account=account, email=email, code=code, ip=ip, new_password=new_password)
    except CodeRejected:
        if known is not None:
            count_failure(action="device", limit=DEVICE_LIMIT, email_key=known.device_id)
        else:
            count_failure(action="verify", limit=VERIFY_LIMIT, ip=ip)
            count_failure(action=action, limit=limit, email_key=key)
        raise


def _codes_asked_for_here(account: Account | None, browser: str) -> list[VerificationCode]:
    """The account's live codes this browser asked for, while it has tries left at them in this code lifetime (the
    try is taken here: a guess that follows counts, right or wrong). Empty otherwise: the guess then goes under the
    address's and the account's budgets like any other."""
    browser_hash = hash_code_browser(browser)
    if account is None or not browser_hash:
        return []
    asked = list(VerificationCode.objects.filter(account=account, browser_hash=browser_hash, used_at__isnull=True,
                                                 expires_at__gt=timezone.now())
                 .order_by("-created_at")[:LIVE_CODES_CHECKED])
    if not asked or not claim_attempt(key=f"code-browser:{account.pk}:{browser_hash}", limit=CODE_BROWSER_TRIES,
                                      window_seconds=settings.VERIFICATION_CODE_TTL_SECONDS):
        return []
    return asked


def _verify_budget(account: Account | None) -> tuple[str, Limit]:
    staff = account is not None and account.is_staff
    return ("staff-verify", STAFF_VERIFY_LIMIT) if staff else ("verify", VERIFY_LIMIT)


def sign_in_link_is_live(*, token: str) -> bool:
    """Whether ``token`` names a sign-in link that can still be used (the confirm page's GET: it uses nothing)."""
    return bool(token) and VerificationCode.objects.filter(
        link_hash=_hash_link_token(token), used_at__isnull=True, expires_at__gt=timezone.now(),
    ).exclude(account__state=AccountState.DISABLED).exists()


def redeem_sign_in_link(*, token: str, new_password: str = "") -> Account:
    """Sign in with the link sent with a code (10 minutes, once; using it uses the code, and the code it). The token
    cannot be guessed, so no budget holds it: strangers who spent every guess at the account's codes never stop it.
    LinkRejected when it is unknown, used or expired; InvalidInput for an unusable new password."""
    new_password = normalise_password(new_password)
    record = VerificationCode.objects.filter(link_hash=_hash_link_token(token)).select_related("account").first() \
        if token else None
    if record is None:
        raise LinkRejected
    account = record.account
    if new_password:
        errors: dict[str, str] = {}
        clean_new_password(new_password, errors, email=account.email)
        if errors:
            raise InvalidInput({"new_password": errors["password"]})
    now = timezone.now()
    if account.state == AccountState.DISABLED or not VerificationCode.objects.filter(
        pk=record.pk, used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now):
        raise LinkRejected
    return _signed_in_with_code(account=account, new_password=new_password, now=now, how="link")


def _claim_guess(*, record: VerificationCode, ip: str) -> bool:
    """Take one of the address's tries at ``record`` (the newest live code): a conditional update, so parallel guesses
    never exceed them. The tries in all are counted for the record, not bounded: the account's budget bounds them."""
    per_address = claim_attempt(key=f"code:{_code_name(record)}:ip:{rate_limit_address(ip)}",
                                limit=settings.VERIFICATION_CODE_MAX_TRIES, window_seconds=CODE_TRIES_WINDOW_SECONDS)
    if per_address:
        VerificationCode.objects.filter(pk=record.pk).update(tries=F("tries") + 1)
    return per_address


def _redeem(*, account: Account | None, email: str, code: str, ip: str, new_password: str,
            asked_here: list[VerificationCode] | None = None) -> Account:
    """``asked_here``: the codes the browser asked for, its try at them taken (``_codes_asked_for_here``); otherwise
    the guess takes one of the address's tries at the newest live code."""
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
    live = asked_here or list(VerificationCode.objects.filter(account=account, used_at__isnull=True,
                                                              expires_at__gt=now)
                              .order_by("-created_at")[:LIVE_CODES_CHECKED])
    if not live or (not asked_here and not _claim_guess(record=live[0], ip=ip)):
        raise CodeRejected
    hashed = _hash_code(account.pk, code.strip())
    match = next((record for record in live if hmac.compare_digest(record.code_hash, hashed)), None)
    # Conditional UPDATE: a code signs in once, even if submitted twice at the same moment.
    if match is None or not VerificationCode.objects.filter(pk=match.pk, used_at__isnull=True).update(used_at=now):
        raise CodeRejected
    return _signed_in_with_code(account=account, new_password=new_password, now=now, how="code")


def _signed_in_with_code(*, account: Account, new_password: str, now: dt.datetime, how: str) -> Account:
    # Signed in: the other codes (and their links) still in the person's inbox and phone are spent too.
    VerificationCode.objects.filter(account=account, used_at__isnull=True).update(used_at=now)
    what = "a one-time code" if how == "code" else "a one-time sign-in link"
    with transaction.atomic():
        if account.verify_email():
            record_event(account, "email_verified", f"Identity confirmed with {what}.")
        if new_password:
            change_password(account=account, new_password=new_password, how="code")
        record_event(account, "signed_in", f"Signed in with {what}.")
    account.refresh_from_db()
    return account
