"""Email and SMS adapters against real local servers: an SMTP sink and a stand-in for Twilio's HTTP API."""

from __future__ import annotations

import base64
import socket
from typing import Any
from urllib.parse import parse_qs

import pytest

from backstop.lib.errors import ProviderError, ProviderTimeout
from backstop.notify.models import Channel, LocalMailboxItem
from backstop.notify.providers import DjangoEmailProvider, LocalMailboxSmsProvider, TwilioSmsProvider
from conftest import StubApi, free_port


@pytest.fixture
def smtp_settings(settings: Any, smtp_sink: Any) -> Any:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_sink.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    return settings


@pytest.fixture
def twilio_settings(settings: Any, stub_api: StubApi) -> Any:
    stub_api.status, stub_api.body = 201, b'{"sid": "SM1"}'
    settings.TWILIO_API_BASE = stub_api.url
    settings.TWILIO_ACCOUNT_SID = "AC123"
    settings.TWILIO_AUTH_TOKEN = "secret-token"
    settings.TWILIO_FROM_NUMBER = "+14155550000"
    settings.SMS_TIMEOUT = 0.3
    return settings


def send_welcome(**overrides: str) -> None:
    email = {"to": "ann@example.com", "subject": "Welcome to Backstop", "text": "Hello Ann.\n",
             "html": "<p>Hello <b>Ann</b>.</p>", "message_id": "<welcome.7@backstop>", **overrides}
    DjangoEmailProvider().send_email(**email)


def test_it_sends_email_over_smtp_with_our_message_id_and_an_html_part(smtp_settings: Any, smtp_sink: Any) -> None:
    send_welcome()

    [received] = smtp_sink.to("ann@example.com")
    assert received["Message-ID"] == "<welcome.7@backstop>"
    assert received["Subject"] == "Welcome to Backstop"
    assert received.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_payload(decode=True).decode().replace("\r\n", "\n")
             for part in received.get_payload()}
    assert parts["text/plain"] == "Hello Ann.\n"
    assert parts["text/html"] == "<p>Hello <b>Ann</b>.</p>"


def test_it_sends_plain_text_only_when_there_is_no_html(smtp_settings: Any, smtp_sink: Any) -> None:
    send_welcome(html="")

    [received] = smtp_sink.to("ann@example.com")
    assert received.get_content_type() == "text/plain"


def test_it_reports_an_unreachable_email_server_as_a_provider_error(smtp_settings: Any) -> None:
    smtp_settings.EMAIL_PORT = free_port()  # nothing listens there

    with pytest.raises(ProviderError) as raised:
        send_welcome()

    assert not isinstance(raised.value, ProviderTimeout)
    assert str(raised.value) == "could not reach the email server (the connection was refused)"


def test_it_reports_a_refused_email_with_the_servers_reply_code(smtp_settings: Any, smtp_sink: Any) -> None:
    smtp_sink.reply = "554 5.7.1 Message rejected"

    with pytest.raises(ProviderError) as raised:
        send_welcome()

    # The text reaches the customer's setup page: the reply code, never an exception's class name.
    assert str(raised.value) == "the email server refused the message (reply 554)"
    assert smtp_sink.messages == []


def test_it_reports_a_silent_email_server_as_a_timeout(smtp_settings: Any) -> None:
    smtp_settings.EMAIL_TIMEOUT = 0.3
    with socket.socket() as silent:  # accepts the connection, never says hello
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        smtp_settings.EMAIL_PORT = silent.getsockname()[1]

        with pytest.raises(ProviderTimeout) as raised:
            send_welcome()

    assert str(raised.value) == "the email server did not answer within 0.3 seconds"


def test_it_posts_an_sms_to_twilio_with_basic_auth(twilio_settings: Any, stub_api: StubApi) -> None:
    TwilioSmsProvider().send_sms(to="+14155550100", text="Your code is 123456", message_id="<code.1.sms@backstop>")

    [request] = stub_api.requests
    assert request["path"] == "/2010-04-01/Accounts/AC123/Messages.json"
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"AC123:secret-token").decode()
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request["body"]) == {"To": ["+14155550100"], "From": ["+14155550000"],
                                         "Body": ["Your code is 123456"]}


@pytest.mark.parametrize("status", [400, 401, 429, 500])
def test_it_reports_a_refused_sms_as_a_provider_error(twilio_settings: Any, stub_api: StubApi, status: int) -> None:
    stub_api.status = status

    with pytest.raises(ProviderError) as raised:
        TwilioSmsProvider().send_sms(to="+14155550100", text="hi", message_id="<m@backstop>")

    assert str(raised.value) == f"the SMS provider refused the message (HTTP {status})"


def test_it_reports_a_slow_sms_provider_as_a_timeout(twilio_settings: Any, stub_api: StubApi) -> None:
    stub_api.delay = 1.0

    with pytest.raises(ProviderTimeout) as raised:
        TwilioSmsProvider().send_sms(to="+14155550100", text="hi", message_id="<m@backstop>")

    assert str(raised.value) == "the SMS provider did not answer within 0.3 seconds"


def test_it_reports_an_unreachable_sms_provider_as_a_provider_error(twilio_settings: Any) -> None:
    twilio_settings.TWILIO_API_BASE = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(ProviderError) as raised:
        TwilioSmsProvider().send_sms(to="+14155550100", text="hi", message_id="<m@backstop>")

    assert str(raised.value) == "could not reach the SMS provider (the connection was refused)"


@pytest.mark.django_db
def test_it_delivers_sms_to_the_local_mailbox() -> None:
    LocalMailboxSmsProvider().send_sms(to="+14155550100", text="Your code is 123456", message_id="<code.1@backstop>")

    item = LocalMailboxItem.objects.get()
    assert (item.channel, item.to, item.text, item.message_id) == (
        Channel.SMS, "+14155550100", "Your code is 123456", "<code.1@backstop>")


@pytest.mark.django_db
def test_it_delivers_email_to_the_local_mailbox(settings: Any) -> None:
    settings.EMAIL_BACKEND = "backstop.notify.providers.LocalMailboxEmailBackend"
    send_welcome()

    item = LocalMailboxItem.objects.get()
    assert (item.channel, item.to, item.subject, item.text, item.html, item.message_id) == (
        Channel.EMAIL, "ann@example.com", "Welcome to Backstop", "Hello Ann.\n", "<p>Hello <b>Ann</b>.</p>",
        "<welcome.7@backstop>")
