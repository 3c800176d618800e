"""The demo's stand-in for an ESP's inbound route: a customer's answer to an email in the local mailbox, built as a
real MIME message and posted, signed as Mailgun signs (HMAC-SHA256 of timestamp and token), to the site's own inbound
webhook over HTTP: the same path a real ESP takes, never a shortcut into the service."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import httpx
from django.conf import settings
from django.utils import timezone

from backstop.notify.models import LocalMailboxItem

# The customer's side of the demo: their mail client's domain, for their own Message-IDs.
CUSTOMER_DOMAIN = "customer.example"


def customer_reply(item: LocalMailboxItem, *, text: str) -> bytes:
    """What a mail client sends when the customer answers ``item``: their words above the quoted original."""
    sent = format_datetime(item.created_at)
    quoted = "\n".join(f"> {line}" if line else ">" for line in item.text.rstrip().splitlines())
    message = _answer(item)
    message.set_content(f"{text.strip()}\n\nOn {sent}, Backstop <{_our_address()}> wrote:\n{quoted}\n")
    return message.as_bytes()


def out_of_office(item: LocalMailboxItem) -> bytes:
    """The customer's vacation responder answering ``item`` (RFC 3834's Auto-Submitted, and what Outlook adds)."""
    message = _answer(item, subject_prefix="Out of office: ")
    message["Auto-Submitted"] = "auto-replied"
    message["X-Autoreply"] = "yes"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content("I am out of the office until Monday and will read your message when I am back.\n")
    return message.as_bytes()


def _our_address() -> str:
    return settings.DEFAULT_FROM_EMAIL.rsplit("<", 1)[-1].rstrip(">")


def _answer(item: LocalMailboxItem, *, subject_prefix: str = "Re: ") -> EmailMessage:
    message = EmailMessage()
    message["From"] = item.to
    message["To"] = item.reply_to or _our_address()
    message["Subject"] = subject_prefix + item.subject
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = make_msgid(domain=CUSTOMER_DOMAIN)
    if item.message_id:
        message["In-Reply-To"] = item.message_id
        message["References"] = item.message_id
    return message


def mailgun_form(raw: bytes, *, signing_key: str, recipient: str = "", sender: str = "",
                 timestamp: int | None = None, token: str | None = None) -> tuple[bytes, str]:
    """Mailgun's forward() of a raw message (``body-mime``), as the multipart form it posts: (body, content type)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    token = secrets.token_hex(25) if token is None else token
    signature = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    fields = {"recipient": recipient, "sender": sender, "timestamp": str(timestamp), "token": token,
              "signature": signature}
    boundary = secrets.token_hex(16)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="body-mime"\r\n'
                 f"Content-Type: text/plain; charset=utf-8\r\n\r\n".encode() + raw + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_to_inbound_webhook(raw: bytes, *, recipient: str, sender: str) -> httpx.Response:
    """POST the message to ``/inbound/mailgun_mime/`` of this site (BASE_URL), signed with its Mailgun signing key."""
    body, content_type = mailgun_form(raw, signing_key=settings.ANYMAIL.get("MAILGUN_WEBHOOK_SIGNING_KEY", ""),
                                      recipient=recipient, sender=sender)
    return httpx.post(f"{settings.BASE_URL}/inbound/mailgun_mime/", content=body,
                      headers={"Content-Type": content_type}, timeout=30)
