from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from ninja import Router, Schema, Status
from ninja.security import SessionAuth

from backstop.accounts import messages
from backstop.accounts.details import ChangeRejected, changed_text, confirm_detail_change, kept_text, pending_change
from backstop.accounts.devices import (
    CODE_BROWSER_COOKIE,
    DEVICE_COOKIE,
    code_browser_token,
    remember_code_browser,
    remember_device,
)
from backstop.accounts.models import Account
from backstop.accounts.progress import retry_answer, setup_progress
from backstop.accounts.recovery import ask_for_sign_in_code
from backstop.accounts.setup import retry_setup
from backstop.accounts.signin import (
    AccountDisabled,
    CodeRejected,
    InvalidCredentials,
    authenticate_account,
    redeem_sign_in_code,
)
from backstop.accounts.signup import EmailTaken, signup_account
from backstop.lib.http import client_ip
from backstop.ratelimits.services import RateLimited

router = Router(tags=["accounts"])


class SignedInSession(SessionAuth):
    """The session, then CSRF: a caller who isn't signed in hears "not signed in", not a token error."""

    def __call__(self, request: HttpRequest) -> Any:
        if not request.user.is_authenticated:
            return None
        return super().__call__(request)


signed_in = SignedInSession()


class SignupIn(Schema):
    name: str
    email: str
    phone: str
    company: str
    password: str


class LoginIn(Schema):
    email: str
    password: str


class RecoverIn(Schema):
    email: str


class VerifyIn(Schema):
    email: str
    code: str
    new_password: str = ""


class AccountOut(Schema):
    id: int
    email: str
    state: str


class StepOut(Schema):
    name: str
    label: str
    status: str
    status_text: str
    attempts: int
    last_error: str
    next_attempt_at: dt.datetime | None


class SetupOut(Schema):
    state: str
    state_label: str
    steps: list[StepOut]
    email_verified: bool
    banner: str
    message: str
    can_retry: bool
    welcome_email_unsent: bool


class KeptOut(Schema):
    field: str
    kept: str
    typed: str


class SignupOut(Schema):
    account: AccountOut
    setup: SetupOut
    message: str
    resumed: bool
    # A same-password signup with other details: what was kept until confirmed (POST /api/account/details).
    kept: list[KeptOut] = []


class DetailsIn(Schema):
    code: str = ""


class LoginOut(Schema):
    account: AccountOut
    state: str
    message: str
    setup: SetupOut | None


class ErrorOut(Schema):
    code: str
    message: str
    fields: dict[str, str] | None = None


class MessageOut(Schema):
    message: str


def _sign_in(request: HttpRequest, response: HttpResponse, account: Account) -> None:
    login(request, account, backend="django.contrib.auth.backends.ModelBackend")
    get_token(request)  # sets the CSRF cookie a script needs for the session endpoints
    remember_device(response, account_id=account.pk)


def _device(request: HttpRequest) -> str:
    return request.COOKIES.get(DEVICE_COOKIE, "")


def _account_out(account: Account) -> dict[str, Any]:
    return {"id": account.pk, "email": account.email, "state": account.state}


@router.post("/signup", response={201: SignupOut, 200: SignupOut, 400: ErrorOut, 409: ErrorOut, 429: ErrorOut})
def signup(request: HttpRequest, response: HttpResponse, payload: SignupIn) -> Status[dict[str, Any]]:
    try:
        result = signup_account(**payload.dict(), ip=client_ip(request))
    except EmailTaken:
        return Status(409, {"code": "email_taken", "message": messages.EMAIL_TAKEN.text})
    _sign_in(request, response, result.account)
    resumed = result.outcome == "resumed"
    progress = setup_progress(result.account, action="resignup" if resumed else "signup")
    kept = list(result.kept)
    message = " ".join(part for part in (progress.message, kept_text(kept)) if part)
    return Status(200 if resumed else 201, {
        "account": _account_out(result.account), "setup": progress.as_dict(), "message": message,
        "resumed": resumed, "kept": [k.as_dict() for k in kept],
    })


@router.post("/account/details", auth=signed_in, response={200: MessageOut, 400: ErrorOut, 401: ErrorOut})
def confirm_details(request: HttpRequest, payload: DetailsIn) -> Status[dict[str, str]]:
    """Confirm the details typed at a same-password signup (with the code sent to a new phone)."""
    account = Account.objects.signed_in(request.user)
    if pending_change(account) is None:
        return Status(400, {"code": "nothing_to_confirm", "message": messages.DETAILS_NOTHING_PENDING.text})
    try:
        changed = confirm_detail_change(account=account, code=payload.code)
    except ChangeRejected:
        return Status(400, {"code": "code_rejected", "message": messages.DETAILS_CODE_REJECTED.text})
    return Status(200, {"message": messages.DETAILS_APPLIED.text.format(changes=changed_text(changed))})


@router.post("/login", response={200: LoginOut, 401: ErrorOut, 403: ErrorOut, 429: ErrorOut, 400: ErrorOut})
def login_view(request: HttpRequest, response: HttpResponse, payload: LoginIn) -> Status[dict[str, Any]]:
    try:
        account = authenticate_account(email=payload.email, password=payload.password,
                                       ip=client_ip(request), device=_device(request))
    except RateLimited as error:
        raise error.worded(messages.SIGN_IN_RATE_LIMITED) from None
    except InvalidCredentials:
        return Status(401, {"code": "invalid_credentials", "message": messages.INVALID_CREDENTIALS.text})
    except AccountDisabled:
        return Status(403, {"code": "account_disabled", "message": messages.notice("disabled", "login").text})
    _sign_in(request, response, account)
    progress = setup_progress(account, action="login")
    return Status(200, {
        "account": _account_out(account), "state": account.state, "message": progress.message,
        "setup": None if account.state == "active" else progress.as_dict(),
    })


@router.get("/setup", auth=signed_in, response={200: SetupOut, 401: ErrorOut})
def setup(request: HttpRequest) -> dict[str, Any]:
    return setup_progress(Account.objects.signed_in(request.user)).as_dict()


@router.post("/setup/retry", auth=signed_in, response={202: SetupOut, 401: ErrorOut})
def setup_retry(request: HttpRequest) -> Status[dict[str, Any]]:
    account = Account.objects.signed_in(request.user)
    retry_setup(account=account)
    account.refresh_from_db()
    # The answer says what "Try again now" did: tried now, or nothing until the provider that is down answers again.
    return Status(202, {**setup_progress(account).as_dict(), "message": retry_answer(account)})


@router.post("/recover", response={202: MessageOut, 400: ErrorOut, 429: ErrorOut})
def recover(request: HttpRequest, response: HttpResponse, payload: RecoverIn) -> Status[dict[str, str]]:
    browser = code_browser_token(request.COOKIES)
    try:
        ask_for_sign_in_code(email=payload.email, ip=client_ip(request), device=_device(request), browser=browser)
    except RateLimited as error:
        raise error.worded(messages.SIGN_IN_RATE_LIMITED) from None
    remember_code_browser(response, token=browser)
    return Status(202, {"message": messages.RECOVERY_SENT.text})


@router.post("/recover/verify", response={200: LoginOut, 400: ErrorOut, 429: ErrorOut})
def recover_verify(request: HttpRequest, response: HttpResponse, payload: VerifyIn) -> Status[dict[str, Any]]:
    try:
        account = redeem_sign_in_code(email=payload.email, code=payload.code, ip=client_ip(request),
                                      new_password=payload.new_password, device=_device(request),
                                      browser=request.COOKIES.get(CODE_BROWSER_COOKIE, ""))
    except RateLimited as error:
        raise error.worded(messages.SIGN_IN_RATE_LIMITED) from None
    except CodeRejected:
        return Status(400, {"code": "code_rejected", "message": messages.CODE_REJECTED.text})
    _sign_in(request, response, account)
    progress = setup_progress(account, action="recovery")
    return Status(200, {
        "account": _account_out(account), "state": account.state, "message": progress.message,
        "setup": None if account.state == "active" else progress.as_dict(),
    })


