"""The HTML pages with CSRF enforced: forms keep what was typed, errors sit by their fields, setup is visible."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.utils.html import escape

from backstop.accounts import messages
from backstop.accounts.models import Account, AccountState, StepName
from backstop.demo.models import FaultSetting
from backstop.lib import site_messages
from backstop.notify.models import LocalMailboxItem
from backstop.web.contact_links import contact_links
from conftest import wait_for

PASSWORD = "correct horse battery"
ANN = {"name": "Ann Lee", "email": "ann@example.com", "phone": "+1 415 555 0100", "company": "Acme & Sons",
       "password": PASSWORD}


pytestmark = pytest.mark.usefixtures("local_mailbox", "workflows_finish_before_cleanup")


def browser() -> Client:
    return Client(enforce_csrf_checks=True)


def form_token(client: Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.content
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert found, f"no CSRF token in the form at {path}"
    return found.group(1)


def submit(client: Client, path: str, data: dict[str, str], *, form_at: str | None = None) -> Any:
    return client.post(path, {**data, "csrfmiddlewaretoken": form_token(client, form_at or path)})


def html(response: Any) -> str:
    return str(response.content.decode())


def field_input(page: str, name: str) -> str:
    found = re.search(rf'<input id="id_{name}"[^>]*>', page, re.DOTALL)
    assert found, f"no input for {name}"
    return found.group(0)


def make_account(state: str = AccountState.ACTIVE) -> Account:
    account = Account(email="ann@example.com", email_key="ann@example.com", name="Ann Lee", company="Acme & Sons",
                      phone="+14155550100", state=state)
    account.set_password(PASSWORD)
    account.save()
    return account


@pytest.mark.parametrize(("path", "data"), [
    ("/signup", ANN),
    ("/login", {"email": "ann@example.com", "password": PASSWORD}),
    ("/recover", {"email": "ann@example.com"}),
    ("/verify", {"email": "ann@example.com", "code": "123456"}),
])
def test_it_refuses_a_form_post_without_the_csrf_token(db: Any, path: str, data: dict[str, str]) -> None:
    make_account()
    client = browser()
    assert client.get(path).status_code == 200

    response = client.post(path, data)

    assert response.status_code == 403
    assert escape(site_messages.FORM_EXPIRED.text) in html(response)
    assert '<a href="/">' in html(response)  # no page to go back to: the home page
    assert Account.objects.count() == 1
    assert not Account.objects.get().events.exists()
    assert not Account.objects.get().codes.exists()


def test_it_keeps_what_was_typed_and_puts_each_error_by_its_field(db: Any) -> None:
    client = browser()
    typed = {**ANN, "email": "ann@@example", "password": "Zq7x!"}  # too short, and in no page's own text

    response = submit(client, "/signup", typed)

    assert response.status_code == 400
    page = html(response)
    assert escape(site_messages.INVALID_INPUT.text) in page
    assert 'value="Ann Lee"' in field_input(page, "name")
    assert 'value="ann@@example"' in field_input(page, "email")
    assert 'value="+1 415 555 0100"' in field_input(page, "phone")
    assert 'value="Acme &amp; Sons"' in field_input(page, "company")
    assert 'value=""' in field_input(page, "password")
    assert "Zq7x" not in page  # a password typed is never sent back
    for name in ("email", "password"):
        tag = field_input(page, name)
        assert 'aria-invalid="true"' in tag and f'aria-describedby="error_{name}"' in tag
        assert re.search(rf'<p class="field-error" id="error_{name}">[^<]+</p>', page)
    assert escape(messages.FIELD_ERRORS["email_invalid"]) in page
    for name in ("name", "phone", "company"):
        assert "aria-invalid" not in field_input(page, name)
    assert Account.objects.count() == 0


def test_it_names_a_field_with_a_nul_character_instead_of_showing_the_form_again_unchanged(db: Any) -> None:
    response = submit(browser(), "/signup", {**ANN, "name": "Ann\x00Lee"})

    assert response.status_code == 400
    page = html(response)
    assert escape(site_messages.INVALID_INPUT.text) in page
    assert 'aria-invalid="true"' in field_input(page, "name")
    assert escape(messages.FIELD_ERRORS["control_characters"]) in page
    assert Account.objects.count() == 0


@pytest.mark.parametrize(("path", "data", "answer"), [
    ("/login", {"email": "ann\x00@example.com", "password": PASSWORD}, messages.INVALID_CREDENTIALS.text),
    ("/verify", {"email": "ann@example.com", "code": "12\x003456"}, messages.CODE_REJECTED.text),
])
def test_it_answers_a_nul_character_as_it_answers_any_mistyped_sign_in(
        db: Any, path: str, data: dict[str, str], answer: str) -> None:
    make_account()

    response = submit(browser(), path, data)

    assert response.status_code == 400
    assert escape(answer) in html(response)


@pytest.mark.parametrize(("referer", "back"), [
    ("http://127.0.0.1:8000/setup", "http://127.0.0.1:8000/setup"),
    ("https://elsewhere.example/page", "/"),
])
def test_it_points_an_expired_form_back_to_the_page_it_was_on_here(db: Any, referer: str, back: str) -> None:
    client = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1:8000")  # served on a port, as the demo is

    response = client.post("/logout", HTTP_REFERER=referer)  # an address that takes only POST

    assert response.status_code == 403
    assert f'<a href="{escape(back)}">' in html(response)


def test_it_says_what_happened_to_a_form_too_large_to_read(db: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = submit(browser(), "/signup", {**ANN, "company": "x" * 4096})

    assert response.status_code == 400
    assert escape(site_messages.FORM_UNREADABLE.text) in html(response)
    assert Account.objects.count() == 0


def test_it_does_not_call_a_request_with_an_unknown_host_a_form_too_large(db: Any) -> None:
    response = Client(HTTP_HOST="unknown.example").get("/signup")

    assert response.status_code == 400
    assert escape(site_messages.REQUEST_UNREADABLE.text) in html(response)


def test_it_asks_for_the_address_when_the_recovery_form_is_sent_empty(db: Any) -> None:
    response = submit(browser(), "/recover", {"email": "  "})

    assert response.status_code == 400
    page = html(response)
    assert 'aria-invalid="true"' in field_input(page, "email")
    assert escape(messages.FIELD_ERRORS["email_required"]) in page
    assert not LocalMailboxItem.objects.exists()


def test_it_signs_up_from_the_page_and_shows_each_setup_step_with_a_retry_button(engine_db: str) -> None:
    FaultSetting.objects.set_modes({"workspace": "error"})
    client = browser()

    response = submit(client, "/signup", ANN)

    assert response.status_code == 302
    assert response["Location"] == "/setup"
    account = Account.objects.get()
    setup = client.get("/setup")
    page = html(setup)
    assert setup.status_code == 200
    assert escape(messages.notice(AccountState.SETTING_UP, "signup").text) in page
    for name in StepName:
        assert f'data-step="{name.value}"' in page
        assert escape(name.label) in page
    assert "Try again now" in page
    # The banner says where the welcome email is: on its way, or sent (its link is pointed at only then).
    assert any(escape(banner.format(email=account.email)) in page
               for banner in (messages.VERIFY_EMAIL_BANNER_SENDING, messages.VERIFY_EMAIL_BANNER))
    # The notice belongs to the moment it describes: a reload shows the live state only.
    assert escape(messages.notice(AccountState.SETTING_UP, "signup").text) not in html(client.get("/setup"))


def test_it_retries_setup_from_the_page_only_with_the_csrf_token(engine_db: str) -> None:
    FaultSetting.objects.set_modes({"workspace": "error"})
    client = browser()
    assert submit(client, "/signup", ANN).status_code == 302

    assert client.post("/setup/retry").status_code == 403
    retried = submit(client, "/setup/retry", {}, form_at="/setup")

    assert retried.status_code == 302 and retried["Location"] == "/setup"
    assert escape(messages.RETRY_STARTED.text) in html(client.get("/setup"))


def test_it_shows_a_needs_attention_account_the_catalogue_text(engine_db: str) -> None:
    FaultSetting.objects.set_modes({"workspace": "error"})
    client = browser()
    assert submit(client, "/signup", ANN).status_code == 302
    wait_for(lambda: Account.objects.get().state == AccountState.NEEDS_ATTENTION,
             message="setup never gave up on a failing workspace provider")

    page = html(client.get("/setup"))

    assert contact_links(messages.notice(AccountState.NEEDS_ATTENTION, "setup_page").text) in page
    assert "Try again now" in page
    assert 'class="status-failed" data-step="workspace"' in page
    assert client.get("/app")["Location"] == "/setup"


def test_it_takes_an_active_account_to_its_workspace(engine_db: str) -> None:
    client = browser()
    assert submit(client, "/signup", ANN).status_code == 302
    wait_for(lambda: Account.objects.get().state == AccountState.ACTIVE, message="setup never finished")

    app = client.get("/app")

    assert app.status_code == 200
    assert "Acme &amp; Sons" in html(app)
    signed_in_again = submit(browser(), "/login", {"email": "ann@example.com", "password": PASSWORD})
    assert signed_in_again["Location"] == "/app"


def test_it_tells_a_second_signup_the_address_is_taken_and_where_to_go(db: Any) -> None:
    make_account()

    response = submit(browser(), "/signup", {**ANN, "password": "another long passphrase"})

    assert response.status_code == 400
    page = html(response)
    assert escape(messages.EMAIL_TAKEN.text) in page
    assert 'href="/login"' in page and 'href="/recover"' in page
    assert Account.objects.count() == 1


def test_it_signs_in_from_the_login_page_and_refuses_a_wrong_password_keeping_the_email(db: Any) -> None:
    make_account(state=AccountState.SETTING_UP)

    wrong = submit(browser(), "/login", {"email": "ann@example.com", "password": "not the password"})
    assert wrong.status_code == 400
    assert escape(messages.INVALID_CREDENTIALS.text) in html(wrong)
    assert 'value="ann@example.com"' in field_input(html(wrong), "email")

    client = browser()
    right = submit(client, "/login", {"email": "ann@example.com", "password": PASSWORD})
    assert right.status_code == 302 and right["Location"] == "/setup"
    assert escape(messages.notice(AccountState.SETTING_UP, "login").text) in html(client.get("/setup"))


def test_it_refuses_a_disabled_account_on_the_login_page(db: Any) -> None:
    make_account(state=AccountState.DISABLED)

    response = submit(browser(), "/login", {"email": "ann@example.com", "password": PASSWORD})

    assert response.status_code == 400
    assert contact_links(messages.notice(AccountState.DISABLED, "login").text, "ann@example.com") in html(response)


def test_it_recovers_through_the_recover_and_verify_pages(engine_db: str) -> None:
    make_account(state=AccountState.SETTING_UP)
    client = browser()

    sent = submit(client, "/recover", {"email": "ann@example.com"})
    assert sent.status_code == 302
    assert sent["Location"] == "/verify?email=ann%40example.com"
    verify_page = html(client.get(sent["Location"]))
    assert contact_links(messages.RECOVERY_SENT.text) in verify_page
    assert 'value="ann@example.com"' in field_input(verify_page, "email")

    sms = wait_for(lambda: LocalMailboxItem.objects.filter(channel="sms").first(), message="no code by SMS")
    code = re.search(r"\b(\d{6})\b", sms.text)
    assert code

    wrong = submit(client, "/verify", {"email": "ann@example.com", "code": "000000" if code.group(1) != "000000"
                                       else "111111"})
    assert wrong.status_code == 400
    assert escape(messages.CODE_REJECTED.text) in html(wrong)

    signed_in = submit(client, "/verify", {"email": "ann@example.com", "code": code.group(1)})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/setup"
    assert Account.objects.get().email_verified_at is not None
    assert client.get("/setup").status_code == 200


def test_it_sends_a_signed_out_browser_to_the_login_page(db: Any) -> None:
    client = browser()
    for path in ("/setup", "/app"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/login?next=")
    assert client.get("/")["Location"] == "/signup"


def test_it_signs_out_only_by_a_form_post_with_the_token(db: Any) -> None:
    make_account()
    client = browser()
    assert submit(client, "/login", {"email": "ann@example.com", "password": PASSWORD}).status_code == 302

    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 403
    assert client.get("/app").status_code == 200

    signed_out = submit(client, "/logout", {}, form_at="/app")
    assert signed_out["Location"] == "/login"
    assert client.get("/app").status_code == 302
