"""POST /api/login and the signed-in setup endpoints: the truth about the account, nothing about strangers."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.test import Client

from backstop.accounts import messages
from backstop.accounts.models import Account, AccountState, SetupStep, StepName, StepStatus
from backstop.demo.models import FaultSetting
from backstop.lib import site_messages

PASSWORD = "correct horse battery"
ANN = {"name": "Ann Lee", "email": "ann@example.com", "phone": "+1 415 555 0100", "company": "Acme",
       "password": PASSWORD}


pytestmark = pytest.mark.usefixtures("workflows_finish_before_cleanup")


def make_account(email: str = "ann@example.com", state: str = AccountState.SETTING_UP) -> Account:
    """An account as signup leaves it (its two steps open), in ``state``; no workflow involved."""
    account = Account(email=email, email_key=email.casefold(), name="Ann Lee", company="Acme",
                      phone="+14155550100", state=state)
    account.set_password(PASSWORD)
    account.save()
    done = state == AccountState.ACTIVE
    SetupStep.objects.bulk_create([
        SetupStep(account=account, name=name, status=StepStatus.DONE if done else StepStatus.PENDING)
        for name in StepName.values
    ])
    return account


def login(client: Client, email: str, password: str, **extra: Any) -> Any:
    return client.post("/api/login", {"email": email, "password": password}, content_type="application/json",
                       **extra)


@pytest.mark.parametrize("state", [AccountState.SETTING_UP, AccountState.NEEDS_ATTENTION])
def test_it_signs_in_an_unfinished_account_and_shows_its_setup(db: Any, state: str) -> None:
    account = make_account(state=state)
    client = Client()

    response = login(client, "ANN@example.com", PASSWORD)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["account"] == {"id": account.pk, "email": "ann@example.com", "state": state}
    assert body["state"] == state
    assert body["message"] == messages.notice(state, "login").text
    assert {step["name"] for step in body["setup"]["steps"]} == set(StepName.values)
    assert body["setup"]["can_retry"] is True
    assert response.cookies["sessionid"].value
    assert client.get("/api/setup").json()["state"] == state
    assert account.events.filter(kind="signed_in").count() == 1


def test_it_signs_in_an_active_account_without_setup_details(db: Any) -> None:
    make_account(state=AccountState.ACTIVE)

    response = login(Client(), "ann@example.com", PASSWORD)

    assert response.status_code == 200
    assert response.json()["state"] == AccountState.ACTIVE
    assert response.json()["setup"] is None


def test_it_answers_a_wrong_password_and_an_unknown_email_identically(db: Any) -> None:
    make_account()

    wrong_password = login(Client(), "ann@example.com", "not the password at all")
    unknown_email = login(Client(), "nobody@example.com", "not the password at all")

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()
    assert wrong_password.json()["code"] == "invalid_credentials"
    assert wrong_password.json()["message"] == messages.INVALID_CREDENTIALS.text
    assert wrong_password.content == unknown_email.content
    assert "sessionid" not in wrong_password.cookies and "sessionid" not in unknown_email.cookies


def test_it_does_the_same_password_hash_work_for_an_unknown_email(db: Any) -> None:
    make_account()
    verify = Argon2PasswordHasher.verify

    for email in ("ann@example.com", "nobody@example.com", ""):
        with mock.patch.object(Argon2PasswordHasher, "verify", autospec=True, side_effect=verify) as spy:
            assert login(Client(), email, "not the password at all").status_code == 401
        assert spy.call_count == 1, email
        # The work is a real Argon2 verification, against a real Argon2 hash.
        (_hasher, _password, encoded), _ = spy.call_args
        assert encoded.startswith("argon2$argon2id$")


def test_it_refuses_a_disabled_account_with_its_own_answer(db: Any) -> None:
    make_account(state=AccountState.DISABLED)
    client = Client()

    response = login(client, "ann@example.com", PASSWORD)

    assert response.status_code == 403
    assert response.json()["code"] == "account_disabled"
    assert response.json()["message"] == messages.notice(AccountState.DISABLED, "login").text
    assert client.get("/api/setup").status_code == 401
    # Without the right password a disabled account looks like any other.
    assert login(Client(), "ann@example.com", "not the password at all").status_code == 401


@pytest.mark.parametrize("body", ["{", "[]", json.dumps({"email": "ann@example.com"}),
                                  json.dumps({"email": 7, "password": PASSWORD})])
def test_it_refuses_an_unreadable_login_without_signing_in(db: Any, body: str) -> None:
    make_account()
    response = Client().post("/api/login", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] in ("malformed_request", "invalid_input")
    assert not Account.objects.get().events.filter(kind="signed_in").exists()


def test_it_refuses_a_login_another_site_could_send_as_plain_text(db: Any) -> None:
    """A form on another site may post text/plain here without asking: it must not sign the visitor in."""
    make_account()
    response = Client().post("/api/login", json.dumps({"email": "ann@example.com", "password": PASSWORD}),
                             content_type="text/plain", HTTP_ORIGIN="https://elsewhere.example")

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert "sessionid" not in response.cookies
    assert not Account.objects.get().events.filter(kind="signed_in").exists()


@pytest.mark.parametrize("email", ["a" * 5000 + "@example.com", "ann\x00@example.com", "\uff41nn@example.com "])
def test_it_answers_odd_addresses_like_any_other(db: Any, email: str) -> None:
    response = login(Client(), email, "not the password at all")

    assert response.status_code == 401, response.content
    assert response.json()["code"] == "invalid_credentials"


def test_it_asks_for_a_session_before_showing_or_retrying_setup(db: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    for response in (client.get("/api/setup"), client.post("/api/setup/retry")):
        assert response.status_code == 401
        assert response.json() == {"code": "not_signed_in", "message": site_messages.NOT_SIGNED_IN.text}


def test_it_retries_setup_for_a_signed_in_browser_that_sends_the_csrf_token(engine_db: str) -> None:
    FaultSetting.objects.set_modes({"workspace": "error"})
    assert Client().post("/api/signup", ANN, content_type="application/json").status_code == 201
    browser = Client(enforce_csrf_checks=True)
    assert login(browser, "ann@example.com", PASSWORD).status_code == 200
    token = browser.cookies["csrftoken"].value

    assert browser.get("/api/setup").status_code == 200
    without_token = browser.post("/api/setup/retry")
    assert without_token.status_code == 403
    assert without_token.json() == {"code": "csrf_failed", "message": site_messages.CSRF_FAILED.text}
    with_token = browser.post("/api/setup/retry", HTTP_X_CSRFTOKEN=token)

    assert with_token.status_code == 202, with_token.content
    body = with_token.json()
    assert {step["name"] for step in body["steps"]} == set(StepName.values)
    assert body["can_retry"] is True
    assert body["state"] in (AccountState.SETTING_UP, AccountState.NEEDS_ATTENTION)
