"""The inbound webhooks over a real HTTP server (`backstop serve`): Mailgun's signed form accepted, unsigned and
forged refused, an unconfigured ESP 404; the same delivery twice stored once; a body over the inbound limit refused by
its Content-Length with 413 and nothing stored; malformed MIME and an unreadable payload kept raw with a clear 400;
attachments over the limit or of the wrong type listed by name while the message is kept."""

from __future__ import annotations

import hashlib
import hmac
import time
from email.message import EmailMessage
from typing import Any

import httpx

from backstop.demo.inbound_mail import mailgun_form

KEY = "test-inbound-signing-key"
LIMIT = 300_000


def _serve(server_factory: Any) -> Any:
    server = server_factory(BACKSTOP_MAILGUN_WEBHOOK_SIGNING_KEY=KEY, BACKSTOP_INBOUND_MAX_BODY_BYTES=str(LIMIT),
                            BACKSTOP_INBOUND_ATTACHMENT_MAX_BYTES="100000",
                            BACKSTOP_INBOUND_ATTACHMENTS_MAX_TOTAL_BYTES="200000")
    return server.start()


def _mail(text: str = "Hello, my invoice is wrong.", message_id: str = "<one@customer.example>") -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Bob Stone <bob@example.com>"
    mail["To"] = "hello@backstop.localhost"
    mail["Subject"] = "Invoice"
    mail["Message-ID"] = message_id
    mail.set_content(text)
    return mail


def _post(server: Any, raw: bytes, *, key: str = KEY, esp: str = "mailgun", **form: Any) -> httpx.Response:
    body, content_type = mailgun_form(raw, signing_key=key, **form)
    return httpx.post(f"{server.url}/inbound/{esp}/", content=body, headers={"Content-Type": content_type},
                      timeout=30)


def _stored(server: Any) -> int:
    return int(server.database.scalar("SELECT COUNT(*) FROM support_inboundmessage"))


def test_it_accepts_signed_mail_once_and_refuses_unsigned_forged_and_unconfigured(server_factory: Any) -> None:
    server = _serve(server_factory)
    raw = _mail().as_bytes()
    assert _post(server, raw, esp="postmark").status_code == 404  # no WEBHOOK_SECRET: not mounted
    assert _post(server, raw, esp="nonesuch").status_code == 404
    unsigned = httpx.post(f"{server.url}/inbound/mailgun/", data={"body-mime": raw.decode()}, timeout=30)
    assert unsigned.status_code == 403 and "refused" in unsigned.text
    forged = _post(server, raw, key="not-the-key")
    assert forged.status_code == 403 and "incorrect signature" in forged.text
    assert _stored(server) == 0

    body, content_type = mailgun_form(raw, signing_key=KEY, token="t" * 50, timestamp=int(time.time()))
    first = httpx.post(f"{server.url}/inbound/mailgun/", content=body, headers={"Content-Type": content_type})
    assert (first.status_code, first.text) == (200, "stored")
    # The ESP retries (our answer was lost): the very same delivery, and a fresh delivery of the same message.
    again = httpx.post(f"{server.url}/inbound/mailgun/", content=body, headers={"Content-Type": content_type})
    assert (again.status_code, again.text) == (200, "already stored")
    assert _post(server, raw).text == "already stored"
    assert _stored(server) == 1
    assert server.database.scalar("SELECT COUNT(*) FROM support_signal WHERE source LIKE ?", ("inbound:%",)) == 1
    # Another path keeps the site's own body limit.
    big = httpx.post(f"{server.url}/api/support/contact", content=b"x" * 100_000,
                     headers={"Content-Type": "application/json"}, timeout=30)
    assert big.status_code in (400, 413)


def test_it_refuses_oversized_bodies_and_keeps_malformed_mail_and_refused_attachments(server_factory: Any) -> None:
    server = _serve(server_factory)
    huge = _mail("x" * (LIMIT + 10), message_id="<huge@customer.example>").as_bytes()
    oversized = _post(server, huge)
    assert oversized.status_code == 413 and str(LIMIT) in oversized.text
    assert _stored(server) == 0

    broken = (b"From: bob@example.com\r\nSubject: broken\r\nMessage-ID: <b@customer.example>\r\n"
              b"Content-Type: multipart/mixed; boundary=\"zzz\"\r\n\r\nno boundary anywhere\r\n")
    answer = _post(server, broken)
    assert answer.status_code == 400 and "MIME structure is broken" in answer.text, answer.text
    assert _post(server, broken).status_code == 400  # retried: still one row
    empty = _post(server, b"")  # an empty body-mime: a message with nothing in it
    assert empty.status_code == 400 and "it has no headers" in empty.text, empty.text
    # Signed, but not an inbound payload at all (a tracking event posted to the inbound URL): anymail cannot read it.
    stamp, token = str(int(time.time())), "u" * 50
    signature = hmac.new(KEY.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    unreadable = httpx.post(f"{server.url}/inbound/mailgun/", json={
        "signature": {"timestamp": stamp, "token": token, "signature": signature},
        "event-data": {"event": "delivered"}}, timeout=30)
    assert unreadable.status_code == 400 and "payload could not be read" in unreadable.text, unreadable.text
    kinds = server.database.query("SELECT kind, problem FROM support_inboundmessage ORDER BY id")
    assert [k for k, _ in kinds] == ["unparseable"] * 3 and all(p for _, p in kinds)
    assert httpx.head(f"{server.url}/inbound/mailgun/").status_code == 200
    assert httpx.head(f"{server.url}/inbound/postmark/").status_code == 404

    mail = _mail("Two files.", message_id="<files@customer.example>")
    mail.add_attachment(b"%PDF" + b"1" * 150_000, maintype="application", subtype="pdf", filename="huge.pdf")
    mail.add_attachment(b"MZ", maintype="application", subtype="x-msdownload", filename="setup.exe")
    mail.add_attachment(b"\x89PNG" + b"2" * 1000, maintype="image", subtype="png", filename="ok.png")
    kept = _post(server, mail.as_bytes())
    assert (kept.status_code, kept.text) == (200, "stored")
    files = dict(server.database.query(
        "SELECT a.filename, a.refused FROM support_inboundattachment a JOIN support_inboundmessage m "
        "ON m.id = a.message_id WHERE m.message_id = '<files@customer.example>'"))
    assert files["huge.pdf"].startswith("larger than") and files["setup.exe"].startswith("type application/")
    assert files["ok.png"] == ""
