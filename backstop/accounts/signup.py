"""Signing up: the account, its setup queued, and the link that confirms its email address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from backstop.accounts.details import KeptDetail, hold_detail_changes
from backstop.accounts.dispatcher import wake_setup_dispatcher
from backstop.accounts.models import Account, AccountState, SetupStep, StepName
from backstop.accounts.setup import _welcome_key, retry_setup
from backstop.accounts.timeline import record_event
from backstop.accounts.validation import SignupData, clean_signup
from backstop.notify import services as notify
from backstop.ratelimits.services import Limit, check_rate_limit

SIGNUP_LIMIT = Limit(per_ip=30, per_email=10, window_seconds=3600)
VERIFY_EMAIL_SALT = "backstop.verify-email"
VERIFY_LINK_MAX_AGE = 7 * 24 * 3600


class EmailTaken(Exception):
    pass



@dataclass(frozen=True)
class SignupResult:
    account: Account
    outcome: Literal["created", "resumed"]
    # A resumed signup whose typed details differ from the account's: what was kept until the owner confirms.
    kept: tuple[KeptDetail, ...] = ()


def signup_account(
    *, name: str, email: str, phone: str, company: str, password: str, ip: str
) -> SignupResult:
    """Create the account and queue its setup; never makes a second account for one address."""
    data = clean_signup(name=name, email=email, phone=phone, company=company, password=password)
    check_rate_limit(action="signup", limit=SIGNUP_LIMIT, ip=ip, email_key=data.email_key)
    existing = Account.objects.by_email_key(data.email_key)
    if existing is not None:
        return _signup_again(existing, data)
    hashed = make_password(data.password)
    try:
        account = _create_account(data, hashed)
    except IntegrityError:  # a simultaneous signup for the same address won the unique constraint
        return _signup_again(Account.objects.get(email_key=data.email_key), data)
    return SignupResult(account=account, outcome="created")


@transaction.atomic
def _create_account(data: SignupData, hashed_password: str) -> Account:
    account = Account.objects.create(
        email=data.email, email_key=data.email_key, name=data.name, company=data.company, phone=data.phone,
        password=hashed_password, setup_batch="",
    )
    SetupStep.objects.bulk_create([SetupStep(account=account, name=name) for name in StepName.values])
    notify.create_email(
        account=account, kind="welcome", key=_welcome_key(account.pk), to=account.email,
        context={"account": account, "verify_url": email_verification_url(account)},
    )
    record_event(account, "signed_up", f"Signed up as {account.email} for {account.company}.")
    # The process's setup dispatcher starts it (its own workflow, or a batch in a burst) as soon as this commits.
    transaction.on_commit(wake_setup_dispatcher)
    return account


def signing_up_again_resumes(state: str) -> bool:
    """Whether signing up again with the account's own password signs its owner in and retries its setup: only while
    it is unfinished. In any other state the address is taken (409 ``email_taken``), whatever the password typed (the
    state matrix in docs/state_matrix.md renders this same decision)."""
    return state in (AccountState.SETTING_UP, AccountState.NEEDS_ATTENTION)


def _signup_again(account: Account, data: SignupData) -> SignupResult:
    same_password = check_password(data.password, account.password)
    if same_password and signing_up_again_resumes(account.state):
        record_event(account, "signed_up_again", "Signed up again with the same password; setup retried.")
        kept = hold_detail_changes(account=account, data=data)
        retry_setup(account=account)
        account.refresh_from_db()
        return SignupResult(account=account, outcome="resumed", kept=tuple(kept))
    if not same_password:
        _tell_owner_about_signup_attempt(account)
    raise EmailTaken


def _tell_owner_about_signup_attempt(account: Account) -> None:
    # At most one notice an hour, whatever the number of attempts.
    hour = timezone.now().strftime("%Y%m%d%H")
    context = {"account": account, "login_url": f"{settings.BASE_URL}/login",
               "recover_url": f"{settings.BASE_URL}/recover"}
    with transaction.atomic():
        messages = [notify.create_email(account=account, kind="signup_attempt", to=account.email, context=context,
                                        key=f"signup-attempt:{account.pk}:{hour}")]
        if account.phone:
            messages.append(notify.create_sms(account=account, kind="signup_attempt",
                                              key=f"signup-attempt-sms:{account.pk}:{hour}", to=account.phone,
                                              context=context))
        record_event(account, "signup_attempt", "Someone tried to sign up again with this email and another password.")
        for message in messages:
            notify.send_soon(message)


# --- Email verification and sign-in codes ---------------------------------------------------------

def email_verification_url(account: Account) -> str:
    token = signing.dumps({"a": account.pk, "e": account.email_key}, salt=VERIFY_EMAIL_SALT)
    return f"{settings.BASE_URL}/verify/email/{token}"


def verify_email_token(*, token: str) -> Account | None:
    try:
        data = signing.loads(token, salt=VERIFY_EMAIL_SALT, max_age=VERIFY_LINK_MAX_AGE)
    except signing.BadSignature:
        return None
    account = Account.objects.filter(pk=data.get("a"), email_key=data.get("e")).first()
    if account is not None and account.verify_email():
        record_event(account, "email_verified", "Email address confirmed by link.")
    return account
