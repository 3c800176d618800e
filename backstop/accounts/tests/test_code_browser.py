"""A code typed in the browser that asked for it (the HTML forms, as a person uses them): strangers who spent the
account's wrong-code budget cannot stop it; typed in another browser it goes under that budget."""

from __future__ import annotations

import pytest
from django.test import Client

from backstop.accounts.devices import CODE_BROWSER_COOKIE, hash_code_browser
from backstop.accounts.models import VerificationCode
from backstop.accounts.tests.test_recovery import delivered_codes, make_account
from backstop.notify.models import Channel, LocalMailboxItem
from conftest import wait_for

pytestmark = pytest.mark.usefixtures("local_mailbox", "workflows_finish_before_cleanup")


def strangers_spend_the_accounts_wrong_codes() -> None:
    for n in range(10):
        stranger = Client(REMOTE_ADDR=f"10.0.1.{n + 1}")
        assert stranger.post("/verify", {"email": "ann@example.com", "code": "000000"}).status_code == 400
    refused = Client(REMOTE_ADDR="10.0.1.99").post("/verify", {"email": "ann@example.com", "code": "000000"})
    assert refused.status_code == 429


def test_it_lets_the_browser_that_asked_for_a_code_sign_in_with_it_through_strangers_guesses(engine_db: str) -> None:
    make_account()
    strangers_spend_the_accounts_wrong_codes()
    LocalMailboxItem.objects.all().delete()
    owner = Client(REMOTE_ADDR="10.0.2.1")

    asked = owner.post("/recover", {"email": "ann@example.com"})

    assert asked.status_code == 302
    token = owner.cookies[CODE_BROWSER_COOKIE].value
    code = wait_for(delivered_codes, message="the sign-in code never arrived")[Channel.SMS]
    assert VerificationCode.objects.get().browser_hash == hash_code_browser(token)
    # Typed in another browser, the code is held to the account's spent budget (and not used up by trying).
    elsewhere = Client(REMOTE_ADDR="10.0.2.2").post("/verify", {"email": "ann@example.com", "code": code})
    assert elsewhere.status_code == 429
    signed_in = owner.post("/verify", {"email": "ann@example.com", "code": code})
    assert signed_in.status_code == 302, signed_in.content
    assert owner.get("/api/setup").status_code == 200


def test_it_keeps_the_browsers_token_when_it_asks_again(engine_db: str) -> None:
    make_account()
    owner = Client()
    owner.post("/recover", {"email": "ann@example.com"})
    first = owner.cookies[CODE_BROWSER_COOKIE].value
    owner.post("/recover", {"email": "ann@example.com"})

    assert owner.cookies[CODE_BROWSER_COOKIE].value == first
    wait_for(lambda: VerificationCode.objects.count() == 2, message="the second code was never made")
    # Both codes belong to the browser: an SMS that arrives late still works there.
    assert set(VerificationCode.objects.values_list("browser_hash", flat=True)) == {hash_code_browser(first)}
