"""Email and SMS adapters: a real implementation and a local fake for each."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import httpx
import requests
from anymail.backends.resend import EmailBackend as ResendBackend
from anymail.exceptions import AnymailError
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend

from backstop.lib.adapters import wrap_adapter
from backstop.lib.errors import ProviderError, ProviderRefused, ProviderTimeout, connection_failure, throttled
from backstop.notify.models import Channel, LocalMailboxItem


class EmailProvider(Protocol):
    def send_email(
        self, *, to: str, subject: str, text: str, html: str, message_id: str, reply_to: str = ""
    ) -> None: ...

    def probe(self) -> None:
        """A cheap health call that sends nothing; raises ProviderError when the provider does not work."""
        ...


class SmsProvider(Protocol):
    def send_sms(self, *, to: str, text: str, message_id: str) -> None: ...

    def probe(self) -> None:
        """A cheap health call that sends nothing; raises ProviderError when the provider does not work."""
        ...


class DjangoEmailProvider:
    """Sends through the configured Django email backend (SMTP, anymail, or the local mailbox)."""

    def send_email(
        self, *, to: str, subject: str, text: str, html: str, message_id: str, reply_to: str = ""
    ) -> None:
        connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
        email = EmailMultiAlternatives(
            subject=subject, body=text, to=[to], connection=connection, headers={"Message-ID": message_id},
            reply_to=[reply_to] if reply_to else None,
        )
        if html:
            email.attach_alternative(html, "text/html")
        with _email_failures():
            email.send()

    def probe(self) -> None:
        """Open a connection to the backend and close it: for SMTP, connect, greet and log in; a backend with a health
        call of its own (``ResendEmailBackend``) makes it; others that keep no connection (the local mailbox, other
        HTTP APIs through anymail) have nothing to check before a send."""
        connection = get_connection(timeout=settings.EMAIL_TIMEOUT)
        with _email_failures():
            if isinstance(connection, ResendEmailBackend):
                connection.probe()
                return
            connection.open()
            connection.close()


@contextmanager
def _email_failures() -> Iterator[None]:
    """The email backend's exceptions as the ProviderError a breaker counts (or the ProviderThrottled it waits out)."""
    try:
        yield
    except AnymailError as error:  # before OSError: anymail's request errors are requests' (OSError) too
        raise _anymail_failure(error) from error
    except (smtplib.SMTPException, OSError) as error:
        # smtplib reports a server that stops answering as SMTPServerDisconnected raised while
        # handling the socket's TimeoutError, so the timeout can sit in the exception's context.
        if isinstance(error, TimeoutError) or isinstance(error.__context__, TimeoutError):
            raise ProviderTimeout(
                f"the email server did not answer within {settings.EMAIL_TIMEOUT:g} seconds"
            ) from error
        if not isinstance(error, smtplib.SMTPException):
            raise ProviderError(f"could not reach the email server ({connection_failure(error)})") from error
        raise ProviderError(_smtp_refusal(error)) from error


def _anymail_failure(error: AnymailError) -> ProviderError:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", 0) or 0
    # A 429 (rate limit) or 503 with Retry-After: the breaker holds every send until then.
    headers = response.headers if response is not None else {}
    if held := throttled(status, headers.get("Retry-After"), f"the email provider asked us to wait (HTTP {status})",
                         limit_header=headers.get("ratelimit-limit"), policy_header=headers.get("ratelimit-policy")):
        return held
    if isinstance(error, requests.Timeout):
        return ProviderTimeout(f"the email provider did not answer within {settings.EMAIL_TIMEOUT:g} seconds")
    if isinstance(error, requests.ConnectionError):
        return ProviderError(f"could not reach the email provider ({connection_failure(error)})")
    if status:
        return ProviderRefused(f"the email provider refused the message (HTTP {status})")
    return ProviderError(f"the email provider refused the message ({error})")


def _smtp_refusal(error: smtplib.SMTPException) -> str:
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return "the email server closed the connection"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "the email server refused the address"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"the email server refused the message (reply {error.smtp_code})"
    return "the email server refused the message"


class ResendEmailBackend(ResendBackend):
    """anymail's Resend backend, sending each message's Message-ID as Resend's ``Idempotency-Key``: a send retried
    after an answer that never came (a timeout, a dropped connection) is delivered once (Resend keeps keys 24 hours).
    Its health call (``probe``) lists our domains: it answers when the API is up and our key works, and sends nothing.
    Chosen by ``BACKSTOP_EMAIL=resend``; ``fakemail`` is its local fake."""

    def build_message_payload(self, message: Any, defaults: Any) -> Any:
        payload = super().build_message_payload(message, defaults)
        key = message.extra_headers.get("Message-ID", "")
        if key:
            payload.headers["Idempotency-Key"] = key
        return payload

    def probe(self) -> None:
        created_session = self.open()
        if self.session is None:  # open() always makes one; a subclass that does not is a bug, not an outage
            raise RuntimeError("the Resend backend has no HTTP session")
        try:
            response = self.session.get(f"{self.api_url}domains", timeout=self.timeout,
                                        headers={"Authorization": f"Bearer {self.api_key}"})
        except requests.Timeout as error:
            raise ProviderTimeout(
                f"the email provider did not answer within {settings.EMAIL_TIMEOUT:g} seconds") from error
        except requests.RequestException as error:
            raise ProviderError(f"could not reach the email provider ({connection_failure(error)})") from error
        finally:
            if created_session:
                self.close()
        if held := throttled(response.status_code, response.headers.get("Retry-After"),
                             f"the email provider asked us to wait (HTTP {response.status_code})"):
            raise held
        if response.status_code >= 400:
            raise ProviderError(f"the email provider's health check failed (HTTP {response.status_code})")


class LocalMailboxEmailBackend(BaseEmailBackend):
    """Django email backend for the demo: messages land in LocalMailboxItem, shown at /demo/mailbox."""

    def send_messages(self, email_messages: Any) -> int:
        for message in email_messages:
            html = next((body for body, mime in getattr(message, "alternatives", []) if mime == "text/html"), "")
            LocalMailboxItem.objects.create(
                channel=Channel.EMAIL, to=", ".join(message.to), subject=message.subject, text=message.body,
                html=html, message_id=message.extra_headers.get("Message-ID", ""),
                reply_to=", ".join(message.reply_to),
            )
        return len(email_messages)


class TwilioSmsProvider:
    """Twilio's Messages API over HTTPS."""

    def send_sms(self, *, to: str, text: str, message_id: str) -> None:
        url = f"{settings.TWILIO_API_BASE}/2010-04-01/Accounts/{settings.TWILIO_ACCOUNT_SID}/Messages.json"
        try:
            response = httpx.post(
                url, auth=(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN),
                data={"To": to, "From": settings.TWILIO_FROM_NUMBER, "Body": text},
                timeout=settings.SMS_TIMEOUT,
            )
        except httpx.TimeoutException as error:
            raise ProviderTimeout(f"the SMS provider did not answer within {settings.SMS_TIMEOUT:g} seconds") from error
        except httpx.HTTPError as error:
            raise ProviderError(f"could not reach the SMS provider ({connection_failure(error)})") from error
        if held := throttled(response.status_code, response.headers.get("Retry-After"),
                             f"the SMS provider asked us to wait (HTTP {response.status_code})"):
            raise held
        if response.status_code >= 400:
            raise ProviderError(f"the SMS provider refused the message (HTTP {response.status_code})")

    def probe(self) -> None:
        """Read our own account resource: it answers when the API is up and our credentials work; sends nothing."""
        url = f"{settings.TWILIO_API_BASE}/2010-04-01/Accounts/{settings.TWILIO_ACCOUNT_SID}.json"
        try:
            response = httpx.get(url, auth=(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN),
                                 timeout=settings.SMS_TIMEOUT)
        except httpx.TimeoutException as error:
            raise ProviderTimeout(f"the SMS provider did not answer within {settings.SMS_TIMEOUT:g} seconds") from error
        except httpx.HTTPError as error:
            raise ProviderError(f"could not reach the SMS provider ({connection_failure(error)})") from error
        if held := throttled(response.status_code, response.headers.get("Retry-After"),
                             f"the SMS provider asked us to wait (HTTP {response.status_code})"):
            raise held
        if response.status_code >= 400:
            raise ProviderError(f"the SMS provider's health check failed (HTTP {response.status_code})")


class LocalMailboxSmsProvider:
    def send_sms(self, *, to: str, text: str, message_id: str) -> None:
        LocalMailboxItem.objects.create(channel=Channel.SMS, to=to, text=text, message_id=message_id)

    def probe(self) -> None:
        """The local mailbox is a table of ours: it works whenever the database does (faults wrap this call too)."""


def email_provider() -> EmailProvider:
    return wrap_adapter("email", DjangoEmailProvider(), timeout=settings.EMAIL_TIMEOUT)


def sms_provider() -> SmsProvider:
    adapter = TwilioSmsProvider() if settings.SMS_PROVIDER == "twilio" else LocalMailboxSmsProvider()
    return wrap_adapter("sms", adapter, timeout=settings.SMS_TIMEOUT)
