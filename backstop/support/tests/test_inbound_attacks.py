"""Inbound email against an attacker: over a real HTTP server (`backstop serve`), Mailgun signs only a timestamp and a
token, not the body, so a captured signature must not carry another message, nor an old one come back, and a form of
many parts is refused before it is parsed; on the case page, mail from someone who is not the case's customer says so
(a From is not verified)."""

from __future__ import annotations

import html
import time
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from backstop.demo.inbound_mail import mailgun_form
from backstop.support import messages
from backstop.support.inbound import receive_inbound_message
from backstop.support.models import Case
from backstop.support.replies import send_reply
from backstop.support.reply_addresses import reply_address

KEY = "test-inbound-signing-key"


def _mail(subject: str, message_id: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Bob Stone <bob@example.com>"
    mail["To"] = "hello@backstop.localhost"
    mail["Subject"] = subject
    mail["Message-ID"] = message_id
    mail.set_content("Hello, my invoice is wrong.")
    return mail.as_bytes()


def _post(server: Any, raw: bytes, **form: Any) -> httpx.Response:
    body, content_type = mailgun_form(raw, signing_key=KEY, **form)
    return httpx.post(f"{server.url}/inbound/mailgun_mime/", content=body, headers={"Content-Type": content_type},
                      timeout=30)


def test_it_refuses_a_captured_signature_on_another_message_and_an_old_one(server_factory: Any) -> None:
    server = server_factory(BACKSTOP_MAILGUN_WEBHOOK_SIGNING_KEY=KEY).start()
    now, token = int(time.time()), "c" * 50
    first = _post(server, _mail("Invoice", "<one@customer.example>"), timestamp=now, token=token)
    assert (first.status_code, first.text) == (200, "stored")
    # The ESP's retry: the very same delivery passes (and is deduped).
    again = _post(server, _mail("Invoice", "<one@customer.example>"), timestamp=now, token=token)
    assert (again.status_code, again.text) == (200, "already stored")
    # The same signature on a forged message.
    forged = _post(server, _mail("Refund me", "<two@attacker.example>"), timestamp=now, token=token)
    assert forged.status_code == 403 and "already used" in forged.text
    # A signature from long ago (or far ahead), with a token never seen.
    for stale in (now - 3 * 86400, now + 3 * 86400):
        old = _post(server, _mail("Old", f"<old{stale}@attacker.example>"), timestamp=stale, token=f"o{stale}")
        assert old.status_code == 403 and "timestamp" in old.text
    assert server.database.scalar("SELECT COUNT(*) FROM support_inboundmessage") == 1


def test_it_refuses_an_unsigned_form_of_many_parts_before_parsing_it(server_factory: Any) -> None:
    server = server_factory(BACKSTOP_MAILGUN_WEBHOOK_SIGNING_KEY=KEY).start()
    parts = b"".join(f'--b\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n'.encode() for i in range(50_000))
    started = time.monotonic()
    many = httpx.post(f"{server.url}/inbound/mailgun_mime/", content=parts + b"--b--\r\n",
                      headers={"Content-Type": "multipart/form-data; boundary=b"}, timeout=120)
    elapsed = time.monotonic() - started
    assert many.status_code == 400 and "more than" in many.text, many.text
    assert elapsed < 10, elapsed  # parsed, it took ~30 s on a quiet core
    # A real delivery (a few parts) still passes.
    assert _post(server, _mail("Invoice", "<ok@customer.example>")).status_code == 200


@pytest.mark.django_db
def test_it_flags_a_reply_on_the_case_from_someone_who_is_not_its_customer() -> None:
    from backstop.support.tests.helpers import desk_client, staff_account, stalled_account

    case = Case.objects.get(account=stalled_account("bob@example.com"))
    send_reply(case_id=case.pk, staff=staff_account(), key="k1", subject="Your workspace", body="We are on it.")
    for sender, text in (("bob@example.com", "From Bob himself."), ("eve@attacker.example", "Refund to my card.")):
        mail = EmailMessage()
        mail["From"] = sender
        mail["To"] = reply_address(case.pk)  # a forwarded or leaked reply address threads anyone's mail
        mail["Subject"] = "Re: Your workspace"
        mail.set_content(text)
        row = receive_inbound_message(esp="mailgun", raw=mail.as_bytes()).message
        row.refresh_from_db()
        assert row.case_id == case.pk
    page = desk_client(staff_account(email="kim@backstop.localhost")).get(f"/desk/cases/{case.pk}").content.decode()
    flagged = html.escape(messages.INBOUND_OTHER_SENDER.format(email="eve@attacker.example"))
    assert flagged in page
    assert html.escape(messages.INBOUND_OTHER_SENDER.format(email="bob@example.com")) not in page
