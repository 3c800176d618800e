from __future__ import annotations

from typing import Any

from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from backstop.accounts import messages
from backstop.accounts.details import (
    ChangeRejected,
    changed_text,
    confirm_detail_change,
    kept_details_of,
    kept_text,
    pending_change,
)
from backstop.accounts.devices import DEVICE_COOKIE, remember_device
from backstop.accounts.forms import LoginForm, RecoverForm, SignInLinkForm, SignupForm, VerifyForm
from backstop.accounts.models import Account, AccountState
from backstop.accounts.progress import retry_answer, setup_progress
from backstop.accounts.recovery import ask_for_sign_in_code
from backstop.accounts.setup import retry_setup
from backstop.accounts.signin import (
    AccountDisabled,
    CodeRejected,
    InvalidCredentials,
    LinkRejected,
    authenticate_account,
    redeem_sign_in_code,
    redeem_sign_in_link,
    send_sign_in_code,
    sign_in_link_is_live,
)
from backstop.accounts.signup import EmailTaken, signup_account, verify_email_token
from backstop.lib import site_messages
from backstop.lib.errors import InvalidInput
from backstop.lib.http import client_ip
from backstop.ratelimits.services import RateLimited
from backstop.web.pages import form_page, note_rate_limited


def _sign_in_and_go(request: HttpRequest, account: Account, action: str) -> HttpResponseRedirect:
    login(request, account, backend="django.contrib.auth.backends.ModelBackend")
    request.session["last_notice"] = messages.notice(account.state, action).text
    response = redirect("app" if account.state == AccountState.ACTIVE else "setup")
    remember_device(response, account_id=account.pk)
    return response


def _device(request: HttpRequest) -> str:
    return request.COOKIES.get(DEVICE_COOKIE, "")


def _sign_in_refused_for_now(context: dict[str, Any], error: RateLimited) -> None:
    """A sign-in route's 429 also names the way in that needs no waiting: a sign-in link or code (/recover)."""
    note_rate_limited(context, error, messages.SIGN_IN_RATE_LIMITED)
    context.update(recover_offer=messages.GET_LINK_AND_CODE)


def signup_page(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    context: dict[str, Any] = {"form": form, "errors": {}, "problem": ""}
    if request.method == "POST" and form.is_valid():
        try:
            result = signup_account(**form.cleaned_data, ip=client_ip(request))
        except InvalidInput as error:
            context.update(errors=error.errors, problem=site_messages.INVALID_INPUT.text)
        except EmailTaken:
            context["problem"] = messages.EMAIL_TAKEN.text
            context["email_taken"] = True
        except RateLimited as error:
            note_rate_limited(context, error)
        else:
            action = "resignup" if result.outcome == "resumed" else "signup"
            response = _sign_in_and_go(request, result.account, action)
            if result.kept:  # what we kept on file, and how to switch to what they typed
                request.session["last_notice"] += " " + kept_text(list(result.kept))
            return response
    return form_page(request, "accounts/signup.html", context)


def login_page(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    context: dict[str, Any] = {"form": form, "problem": ""}
    if request.method == "POST" and form.is_valid():
        try:
            account = authenticate_account(**form.cleaned_data, ip=client_ip(request), device=_device(request))
        except InvalidCredentials:
            context["problem"] = messages.INVALID_CREDENTIALS.text
        except AccountDisabled:
            context["problem"] = messages.notice(AccountState.DISABLED, "login").text
        except RateLimited as error:
            _sign_in_refused_for_now(context, error)
        else:
            return _sign_in_and_go(request, account, "login")
    return form_page(request, "accounts/login.html", context)


@require_POST
def logout_page(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("login")


@login_required
def setup_page(request: HttpRequest) -> HttpResponse:
    account = Account.objects.signed_in(request.user)
    notice = request.session.pop("last_notice", "")
    return render(request, "accounts/setup.html", {"progress": setup_progress(account), "notice": notice})


@login_required
@require_POST
def setup_retry(request: HttpRequest) -> HttpResponse:
    account = Account.objects.signed_in(request.user)
    retry_setup(account=account)
    request.session["last_notice"] = retry_answer(account)
    return redirect("setup")


@login_required
def app_page(request: HttpRequest) -> HttpResponse:
    account = Account.objects.signed_in(request.user)
    if account.state != AccountState.ACTIVE:
        return redirect("setup")
    notice = request.session.pop("last_notice", "")
    return render(request, "accounts/app.html", {
        "account": account, "progress": setup_progress(account), "notice": notice,
        "workspace": getattr(account, "workspace", None),
    })


def recover_page(request: HttpRequest) -> HttpResponse:
    form = RecoverForm(request.POST or None)
    context: dict[str, Any] = {"form": form, "problem": "", "errors": {}}
    if request.method == "POST" and form.is_valid() and not form.cleaned_data["email"]:
        # The API answers every address alike; an empty form is a slip to point out, not an address to answer.
        context.update(errors={"email": messages.FIELD_ERRORS["email_required"]},
                       problem=site_messages.INVALID_INPUT.text)
    elif request.method == "POST" and form.is_valid():
        try:
            email = ask_for_sign_in_code(email=form.cleaned_data["email"], ip=client_ip(request),
                                         device=_device(request))
        except InvalidInput as error:  # not an address: said against the field, never "code sent"
            context.update(errors=error.errors, problem=site_messages.INVALID_INPUT.text)
        except RateLimited as error:
            _sign_in_refused_for_now(context, error)
        else:
            request.session["last_notice"] = messages.RECOVERY_SENT.text
            return redirect(f"{reverse('verify')}?{urlencode({'email': email})}")
    return form_page(request, "accounts/recover.html", context)


@login_required
@require_POST
def send_code_page(request: HttpRequest) -> HttpResponse:
    """The banner's "get a code by SMS instead": the same code as recovery, sent to the signed-in account."""
    account = Account.objects.signed_in(request.user)
    try:
        send_sign_in_code(email=account.email, ip=client_ip(request), device=_device(request))
    except RateLimited as error:
        request.session["last_notice"] = site_messages.RATE_LIMITED.text.format(minutes=error.minutes)
    else:
        request.session["last_notice"] = messages.RECOVERY_SENT.text
    return redirect(f"{reverse('verify')}?{urlencode({'email': account.email})}")


def verify_page(request: HttpRequest) -> HttpResponse:
    form = VerifyForm(request.POST or None, initial={"email": request.GET.get("email", "")})
    context: dict[str, Any] = {"form": form, "problem": "", "errors": {},
                               "notice": request.session.pop("last_notice", "")}
    if request.method == "POST" and form.is_valid():
        try:
            account = redeem_sign_in_code(**form.cleaned_data, ip=client_ip(request), device=_device(request))
        except CodeRejected:
            context["problem"] = messages.CODE_REJECTED.text
        except InvalidInput as error:
            context.update(errors=error.errors, problem=site_messages.INVALID_INPUT.text)
        except RateLimited as error:
            _sign_in_refused_for_now(context, error)
        else:
            return _sign_in_and_go(request, account, "recovery")
    return form_page(request, "accounts/verify.html", context)


def sign_in_link_page(request: HttpRequest, token: str) -> HttpResponse:
    """The sign-in link emailed with each code. GET only shows a button (a mail scanner that opens the link uses
    nothing); its POST signs in, as a code does, and leads where /verify leads."""
    form = SignInLinkForm(request.POST or None)
    context: dict[str, Any] = {"form": form, "problem": "", "errors": {}, "live": True,
                               "title": messages.LINK_CONFIRM_TITLE, "text": messages.LINK_CONFIRM.text,
                               "ask_again": messages.GET_LINK_AND_CODE}
    if request.method == "POST" and form.is_valid():
        try:
            account = redeem_sign_in_link(token=token, new_password=form.cleaned_data["new_password"])
        except LinkRejected:
            context.update(problem=messages.LINK_REJECTED.text, live=False)
        except InvalidInput as error:
            context.update(errors=error.errors, problem=site_messages.INVALID_INPUT.text)
        else:
            return _sign_in_and_go(request, account, "recovery")
    elif not sign_in_link_is_live(token=token):
        context.update(problem=messages.LINK_REJECTED.text, live=False)
    return form_page(request, "accounts/sign_in_link.html", context)


def verify_email_link(request: HttpRequest, token: str) -> HttpResponse:
    account = verify_email_token(token=token)
    text = (messages.EMAIL_VERIFIED if account else messages.VERIFY_LINK_BAD).text
    return render(request, "accounts/verified.html", {"text": text, "ok": account is not None},
                  status=200 if account else 400)


def home(request: HttpRequest) -> HttpResponse:
    return redirect("app" if request.user.is_authenticated else "signup")


@login_required
def details_page(request: HttpRequest) -> HttpResponse:
    """Confirm the details typed at a same-password signup (a new phone with the code sent to it)."""
    account = Account.objects.signed_in(request.user)
    form = VerifyForm(request.POST or None)
    change = pending_change(account)
    context: dict[str, Any] = {"form": form, "problem": "", "errors": {}, "notice": "", "change": change,
                               "kept": kept_details_of(account, change) if change else []}
    if change is None:
        context["notice"] = messages.DETAILS_NOTHING_PENDING.text
    elif request.method == "POST" and form.is_valid():
        try:
            changed = confirm_detail_change(account=account, code=form.cleaned_data["code"])
        except ChangeRejected:
            context.update(problem=messages.DETAILS_CODE_REJECTED.text,
                           errors={"code": messages.DETAILS_CODE_REJECTED.happened})
        else:
            request.session["last_notice"] = messages.DETAILS_APPLIED.text.format(changes=changed_text(changed))
            return redirect("app" if account.state == AccountState.ACTIVE else "setup")
    return form_page(request, "accounts/details.html", context)
