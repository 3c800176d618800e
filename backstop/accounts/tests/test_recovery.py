"""Sign-in codes by SMS and email, and the email confirmation link: the ways back in when a password or inbox fails."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from backstop.accounts import messages
from backstop.accounts.models import Account, AccountState, SetupStep, StepName, VerificationCode
from backstop.notify.models import Channel, DeliveryStatus, LocalMailboxItem, Message
from backstop.notify.services import SECRET_MASK
from conftest import wait_for

PASSWORD = "correct horse battery"
NEW_PASSWORD = "lantern orchard plum"
ANN = {"name": "Ann Lee", "email": "ann@example.com", "phone": "+1 415 555 0100", "company": "Acme",
       "password": PASSWORD}


pytestmark = pytest.mark.usefixtures("local_mailbox", "workflows_finish_before_cleanup")


def make_account(state: str = AccountState.SETTING_UP) -> Account:
    account = Account(email="ann@example.com", email_key="ann@example.com", name="Ann Lee", company="Acme",
                      phone="+14155550100", state=state)
    account.set_password(PASSWORD)
    account.save()
    SetupStep.objects.bulk_create([SetupStep(account=account, name=name) for name in StepName.values])
    return account


def post(client: Client, path: str, **body: Any) -> Any:
    return client.post(path, body, content_type="application/json")


def delivered_codes() -> dict[str, str]:
    """The code each channel delivered to Ann, once both have arrived."""
    items = LocalMailboxItem.objects.filter(to__in=("ann@example.com", "+14155550100"))
    codes = {}
    for item in items:
        found = re.search(r"\b(\d{6})\b", item.text)
        if found:
            codes[item.channel] = found.group(1)
    return codes if len(codes) == 2 else {}


def request_code(client: Client | None = None) -> str:
    LocalMailboxItem.objects.all().delete()
    assert post(client or Client(), "/api/recover", email="ann@example.com").status_code == 202
    codes = wait_for(delivered_codes, message="the sign-in code never arrived by both SMS and email")
    assert codes[Channel.SMS] == codes[Channel.EMAIL]
    return str(codes[Channel.SMS])


def verify(client: Client, code: str, **extra: str) -> Any:
    return post(client, "/api/recover/verify", email="ann@example.com", code=code, **extra)


def test_it_answers_a_known_and_an_unknown_address_alike(engine_db: str) -> None:
    make_account()

    known = post(Client(), "/api/recover", email="ann@example.com")
    unknown = post(Client(), "/api/recover", email="nobody@example.com")

    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content
    assert known.json() == {"message": messages.RECOVERY_SENT.text}
    wait_for(delivered_codes, message="the known address never got its code")
    assert not LocalMailboxItem.objects.exclude(to__in=("ann@example.com", "+14155550100")).exists()


def test_it_sends_one_code_by_sms_and_email_and_stores_only_a_keyed_hash(engine_db: str) -> None:
    account = make_account()

    code = request_code()

    record = VerificationCode.objects.get(account=account)
    assert code not in record.code_hash
    assert record.code_hash != hashlib.sha256(code.encode()).hexdigest()
    keyed = hmac.new(django_settings.SECRET_KEY.encode(), f"{account.pk}:{code}".encode(), hashlib.sha256)
    assert record.code_hash == keyed.hexdigest()
    assert record.used_at is None and record.tries == 0
    assert record.expires_at > timezone.now()
    # Once delivered, the outbox (and the support desk that shows it) keeps the message but not a usable code.
    sent = wait_for(lambda: list(Message.objects.filter(kind="sign_in_code", status=DeliveryStatus.SENT))
                    if not Message.objects.filter(kind="sign_in_code").exclude(status=DeliveryStatus.SENT).exists()
                    else None, message="the code messages were not marked sent")
    assert {message.channel for message in sent} == {Channel.SMS, Channel.EMAIL}
    for message in sent:
        assert message.secret == ""
        assert code not in message.subject + message.text + message.html
        assert SECRET_MASK in message.text
        # The email's sign-in link is masked too: only "/signin/" and the mask are left of it.
        assert "/signin/" not in message.text or f"/signin/{SECRET_MASK}" in message.text
    email = next(message for message in sent if message.channel == Channel.EMAIL)
    assert f"/signin/{SECRET_MASK}" in email.text and f"/signin/{SECRET_MASK}" in email.html
    assert record.link_hash and len(record.link_hash) == 64


def test_it_signs_in_with_the_right_code_and_confirms_the_email(engine_db: str) -> None:
    account = make_account()
    code = request_code()
    browser = Client()

    response = verify(browser, code)

    assert response.status_code == 200, response.content
    assert response.json()["account"]["id"] == account.pk
    assert response.json()["message"] == messages.notice(AccountState.SETTING_UP, "recovery").text
    assert response.json()["setup"]["email_verified"] is True
    assert browser.get("/api/setup").status_code == 200
    account.refresh_from_db()
    assert account.email_verified_at is not None
    assert VerificationCode.objects.get().used_at is not None
    assert account.check_password(PASSWORD)


def test_it_refuses_even_the_right_code_after_five_wrong_ones(engine_db: str) -> None:
    make_account()
    code = request_code()
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    for _ in range(django_settings.VERIFICATION_CODE_MAX_TRIES):
        refused = verify(Client(), wrong)
        assert refused.status_code == 400
        assert refused.json()["code"] == "code_rejected"

    browser = Client()
    too_late = verify(browser, code)
    assert too_late.status_code == 400
    assert too_late.json() == {"code": "code_rejected", "message": messages.CODE_REJECTED.text, "fields": None}
    assert browser.get("/api/setup").status_code == 401
    assert Account.objects.get().email_verified_at is None


def test_it_accepts_an_earlier_code_that_arrives_after_a_newer_one_was_asked_for(engine_db: str) -> None:
    """The SMS was late; the person asked again, then the first code arrived and they typed it."""
    make_account()
    first = request_code()
    second = request_code()
    assert VerificationCode.objects.count() == 2

    assert verify(Client(), first).status_code == 200

    assert not VerificationCode.objects.filter(used_at__isnull=True).exists()  # signed in: the newer one is spent
    assert verify(Client(), second).status_code == 400


def test_it_gives_five_tries_in_all_however_many_codes_are_live(engine_db: str) -> None:
    make_account()
    first = request_code()
    request_code()
    wrong = next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in {first, *delivered_codes().values()})

    for _ in range(django_settings.VERIFICATION_CODE_MAX_TRIES):
        assert verify(Client(), wrong).status_code == 400

    assert verify(Client(), first).status_code == 400
    assert Account.objects.get().email_verified_at is None


def test_it_counts_parallel_guesses_against_the_five_tries(engine_db: str) -> None:
    make_account()
    code = request_code()
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    guesses = 8
    barrier = threading.Barrier(guesses)

    def guess() -> int:
        barrier.wait(timeout=30)
        try:
            return int(verify(Client(), wrong).status_code)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=guesses) as pool:
        statuses = list(pool.map(lambda _: guess(), range(guesses)))

    assert statuses == [400] * guesses
    assert VerificationCode.objects.get().tries == django_settings.VERIFICATION_CODE_MAX_TRIES
    assert verify(Client(), code).status_code == 400


def test_it_refuses_an_expired_code(engine_db: str) -> None:
    make_account()
    code = request_code()
    VerificationCode.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    assert verify(Client(), code).status_code == 400
    assert Account.objects.get().email_verified_at is None


def test_it_accepts_a_code_once(engine_db: str) -> None:
    make_account()
    code = request_code()

    assert verify(Client(), code).status_code == 200
    second = verify(Client(), code)

    assert second.status_code == 400
    assert second.json()["code"] == "code_rejected"


def test_it_refuses_a_code_for_an_unknown_or_disabled_account(engine_db: str) -> None:
    make_account()
    code = request_code()
    assert post(Client(), "/api/recover/verify", email="nobody@example.com", code=code).status_code == 400
    Account.objects.update(state=AccountState.DISABLED)
    assert verify(Client(), code).status_code == 400

    LocalMailboxItem.objects.all().delete()
    assert post(Client(), "/api/recover", email="ann@example.com").status_code == 202
    assert VerificationCode.objects.count() == 1  # a disabled account gets no new code


def test_it_validates_and_applies_a_new_password(engine_db: str) -> None:
    make_account()
    code = request_code()

    weak = verify(Client(), code, new_password="123")
    assert weak.status_code == 400
    assert weak.json()["code"] == "invalid_input"
    assert set(weak.json()["fields"]) == {"new_password"}
    assert VerificationCode.objects.get().used_at is None  # a refused password does not spend the code

    similar = verify(Client(), code, new_password="ann@example.com")
    assert similar.status_code == 400
    assert set(similar.json()["fields"]) == {"new_password"}

    applied = verify(Client(), code, new_password=NEW_PASSWORD)
    assert applied.status_code == 200, applied.content
    account = Account.objects.get()
    assert account.check_password(NEW_PASSWORD)
    assert account.events.filter(kind="password_reset").count() == 1
    new_login = post(Client(), "/api/login", email="ann@example.com", password=NEW_PASSWORD)
    assert new_login.status_code == 200
    assert post(Client(), "/api/login", email="ann@example.com", password=PASSWORD).status_code == 401


def test_it_lets_a_new_password_typed_in_any_unicode_form_sign_in(engine_db: str) -> None:
    make_account()
    code = request_code()
    typed = "cafe\u0301 \uff2cantern orchard"

    assert verify(Client(), code, new_password=typed).status_code == 200

    assert post(Client(), "/api/login", email="ann@example.com", password=typed).status_code == 200
    assert post(Client(), "/api/login", email="ann@example.com", password="café Lantern orchard").status_code == 200


def test_it_confirms_the_email_from_the_welcome_link_and_refuses_a_tampered_one(engine_db: str) -> None:
    assert post(Client(), "/api/signup", **ANN).status_code == 201
    welcome = wait_for(lambda: LocalMailboxItem.objects.filter(channel=Channel.EMAIL, to="ann@example.com").first(),
                       message="the welcome email never arrived")
    found = re.search(r"/verify/email/(\S+)", welcome.text)
    assert found, welcome.text
    token = found.group(1)
    assert found.group(1) in welcome.html

    tampered_token = token[:-1] + ("A" if token[-1] != "A" else "B")
    tampered = Client().get(f"/verify/email/{tampered_token}")
    assert tampered.status_code == 400
    assert escape(messages.VERIFY_LINK_BAD.happened) in tampered.content.decode()
    assert Account.objects.get().email_verified_at is None

    confirmed = Client().get(f"/verify/email/{token}")
    assert confirmed.status_code == 200
    assert Account.objects.get().email_verified_at is not None
    assert Account.objects.get().events.filter(kind="email_verified").count() == 1
    again = Client().get(f"/verify/email/{token}")
    assert again.status_code == 200
    assert Account.objects.get().events.filter(kind="email_verified").count() == 1


def test_it_refuses_a_confirmation_link_for_another_address(engine_db: str) -> None:
    from backstop.accounts.signup import email_verification_url

    account = make_account()
    link = email_verification_url(account)
    Account.objects.filter(pk=account.pk).update(email="ann.lee@example.com", email_key="ann.lee@example.com")

    response = Client().get(link.removeprefix(django_settings.BASE_URL))

    assert response.status_code == 400
    assert Account.objects.get().email_verified_at is None
