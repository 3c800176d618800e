"""POST /api/signup in process: one account per address, a second signup resumes or is refused without leaking."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from backstop.accounts import messages
from backstop.accounts.models import Account, AccountState, SetupStep, StepName
from backstop.demo.models import FaultSetting
from backstop.notify.models import Channel, LocalMailboxItem, Message
from conftest import wait_for

ANN = {"name": "Ann Lee", "email": "ann@example.com", "phone": "+1 415 555 0100", "company": "Acme",
       "password": "correct horse battery"}
BOB = {"name": "Bob Ray", "email": "bob@example.com", "phone": "+44 7911 123456", "company": "Bobco",
       "password": "plum orchard lantern"}


pytestmark = pytest.mark.usefixtures("local_mailbox", "workflows_finish_before_cleanup")


def signup(client: Client, **fields: Any) -> Any:
    return client.post("/api/signup", fields, content_type="application/json")


def account_of(email_key: str) -> Account:
    return Account.objects.get(email_key=email_key)


def keep_workspace_failing() -> None:
    """The workspace provider answers with an error, so the account stays short of active."""
    FaultSetting.objects.set_modes({"workspace": "error"})


def test_it_creates_the_account_its_steps_and_one_welcome_email(engine_db: str) -> None:
    client = Client()
    response = signup(client, **ANN)

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"account", "setup", "message", "resumed", "kept"}
    assert body["kept"] == []
    assert set(body["account"]) == {"id", "email", "state"}
    assert body["account"]["email"] == "ann@example.com"
    assert body["account"]["state"] == AccountState.SETTING_UP
    assert body["resumed"] is False
    assert body["message"]
    assert {step["name"] for step in body["setup"]["steps"]} == set(StepName.values)
    assert body["setup"]["email_verified"] is False
    assert "sessionid" in response.cookies and response.cookies["sessionid"].value

    account = Account.objects.get()
    assert account.pk == body["account"]["id"]
    assert account.phone == "+14155550100"
    assert account.password.startswith("argon2$")
    assert SetupStep.objects.filter(account=account).count() == 2
    assert Message.objects.filter(account=account, kind="welcome").count() == 1

    # The session cookie signs the browser in: the setup read model answers for this account.
    assert client.get("/api/setup").status_code == 200
    wait_for(lambda: LocalMailboxItem.objects.filter(channel=Channel.EMAIL, to="ann@example.com").exists(),
             message="the welcome email never reached the mailbox")
    wait_for(lambda: account_of("ann@example.com").state == AccountState.ACTIVE,
             message="setup never finished with working providers")
    assert Message.objects.filter(kind="welcome").count() == 1
    assert LocalMailboxItem.objects.filter(to="ann@example.com").count() == 1


def test_it_resumes_a_setting_up_account_when_the_same_password_signs_up_again(engine_db: str) -> None:
    keep_workspace_failing()
    assert signup(Client(), **ANN).status_code == 201

    other_browser = Client()
    again = signup(other_browser, **ANN)

    assert again.status_code == 200, again.content
    body = again.json()
    assert body["resumed"] is True
    assert body["account"]["id"] == account_of("ann@example.com").pk
    assert body["account"]["state"] in (AccountState.SETTING_UP, AccountState.NEEDS_ATTENTION)
    assert other_browser.get("/api/setup").status_code == 200
    assert Account.objects.count() == 1
    assert SetupStep.objects.count() == 2
    assert Message.objects.filter(kind="welcome").count() == 1


def test_it_resumes_a_needs_attention_account_and_starts_its_setup_again(engine_db: str) -> None:
    keep_workspace_failing()
    assert signup(Client(), **ANN).status_code == 201
    wait_for(lambda: account_of("ann@example.com").state == AccountState.NEEDS_ATTENTION,
             message="setup never gave up on a failing workspace provider")

    again = signup(Client(), **ANN)

    assert again.status_code == 200, again.content
    assert again.json()["resumed"] is True
    account = account_of("ann@example.com")
    assert account.setup_run == 2
    assert again.json()["account"]["state"] == AccountState.SETTING_UP
    assert account.events.filter(kind="setup_restarted").count() == 1


def test_it_refuses_another_password_and_tells_the_owner_without_touching_the_account(engine_db: str) -> None:
    keep_workspace_failing()
    assert signup(Client(), **ANN).status_code == 201
    stored_hash = account_of("ann@example.com").password

    intruder = Client()
    taken = signup(intruder, **{**ANN, "password": "another long passphrase"})

    assert taken.status_code == 409
    assert taken.json()["code"] == "email_taken"
    assert taken.json()["message"] == messages.EMAIL_TAKEN.text
    assert taken.json().get("fields") is None
    assert "sessionid" not in taken.cookies
    assert intruder.get("/api/setup").status_code == 401
    assert account_of("ann@example.com").password == stored_hash
    assert Account.objects.count() == 1
    attempts = Message.objects.filter(kind="signup_attempt", account=account_of("ann@example.com"))
    assert set(attempts.values_list("channel", "to")) == {(Channel.EMAIL, "ann@example.com"),
                                                          (Channel.SMS, "+14155550100")}
    wait_for(lambda: LocalMailboxItem.objects.filter(channel=Channel.SMS, to="+14155550100").exists(),
             message="the owner's phone never got the signup-attempt SMS")


def test_it_answers_an_active_and_a_pending_account_identically(engine_db: str) -> None:
    assert signup(Client(), **BOB).status_code == 201
    wait_for(lambda: account_of("bob@example.com").state == AccountState.ACTIVE, message="Bob never became active")
    keep_workspace_failing()
    assert signup(Client(), **ANN).status_code == 201
    assert account_of("ann@example.com").state != AccountState.ACTIVE

    for_active = signup(Client(), **{**BOB, "password": "another long passphrase"})
    for_pending = signup(Client(), **{**ANN, "password": "another long passphrase"})

    assert for_active.status_code == for_pending.status_code == 409
    assert for_active.json() == for_pending.json()
    assert for_active.content == for_pending.content
    # The right password on an active account does not resume anything: it is refused the same way.
    same_password_active = signup(Client(), **BOB)
    assert same_password_active.status_code == 409
    assert same_password_active.content == for_active.content


def test_it_treats_case_and_unicode_variants_of_an_address_as_one_account(engine_db: str) -> None:
    keep_workspace_failing()
    created = signup(Client(), **ANN)
    assert created.status_code == 201

    for variant in ("ANN@Example.com", "\uff41nn@example.com", "  ann@EXAMPLE.COM "):
        again = signup(Client(), **{**ANN, "email": variant})
        assert again.status_code == 200, (variant, again.content)
        assert again.json()["account"]["id"] == created.json()["account"]["id"]
    refused = signup(Client(), **{**ANN, "email": "\uff21NN@example.com", "password": "another long passphrase"})
    assert refused.status_code == 409
    assert Account.objects.count() == 1
    assert account_of("ann@example.com").email == "ann@example.com"


def test_it_lets_the_exact_password_typed_at_signup_sign_in_again(engine_db: str) -> None:
    # A decomposed accent and a fullwidth letter: what some keyboards and IMEs actually send.
    typed = "cafe\u0301 \uff23orrect horse battery"
    assert signup(Client(), **{**ANN, "password": typed}).status_code == 201

    login = Client().post("/api/login", {"email": ANN["email"], "password": typed}, content_type="application/json")

    assert login.status_code == 200, login.content
    assert login.json()["account"]["email"] == "ann@example.com"
