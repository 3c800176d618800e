"""Email the customer sends us, in the service (support.inbound): threaded by our reply address or by the Message-ID
we sent, never by a guessed token; a reply reopens and wakes its case; auto-replies and bounces stay on the timeline
and do nothing else; the same message twice is stored once; attachments within the limits."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from django.test import override_settings
from django.utils import timezone

from backstop.notify.models import Message
from backstop.support import messages
from backstop.support.inbound import receive_inbound_message
from backstop.support.models import (
    Case,
    CaseState,
    InboundKind,
    InboundMessage,
    InboundThreading,
    Signal,
    SupportAction,
)
from backstop.support.replies import send_reply
from backstop.support.reply_addresses import case_of_address, case_of_message_id, reply_address
from backstop.support.tests.helpers import staff_account, stalled_account

QUOTE = "\n\nOn Mon, 7 Dec 2026 at 15:02, Backstop <hello@backstop.localhost> wrote:\n> Hello Bob,\n"


def _replied_case(email: str = "bob@example.com") -> tuple[Case, Message]:
    case = Case.objects.get(account=stalled_account(email))
    send_reply(case_id=case.pk, staff=staff_account(), key="k1", subject="Your workspace", body="We are on it.")
    return case, Message.objects.get(kind="support_reply")


def _mail(*, sender: str = "bob@example.com", to: str = "hello@backstop.localhost", text: str = "Thanks!",
          in_reply_to: str = "", headers: dict[str, str] | None = None, message_id: str | None = None) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Bob Stone <{sender}>"
    mail["To"] = to
    mail["Subject"] = "Re: Your workspace"
    mail["Message-ID"] = message_id or make_msgid(domain="customer.example")
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
        mail["References"] = in_reply_to
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(text + QUOTE)
    return mail.as_bytes()


@pytest.mark.django_db
def test_it_sends_case_emails_with_a_reply_address_and_a_message_id_that_name_the_case() -> None:
    case, sent = _replied_case()
    assert sent.reply_to == reply_address(case.pk) and sent.reply_to.startswith(f"case+{case.pk}.")
    assert sent.message_id_header == sent.header_message_id
    assert case_of_address(sent.reply_to) == case.pk and case_of_message_id(sent.header_message_id) == case.pk
    token = sent.reply_to.split(".", 1)[1].split("@")[0]
    guessed = sent.reply_to.replace(token, "0" * len(token))
    assert case_of_address(guessed) is None
    assert case_of_address(sent.reply_to.replace(f"case+{case.pk}.", f"case+{case.pk + 1}.")) is None


@pytest.mark.django_db
def test_it_threads_a_reply_by_our_reply_address_and_shows_what_they_typed() -> None:
    case, sent = _replied_case()
    result = receive_inbound_message(esp="mailgun", raw=_mail(to=sent.reply_to, text="Thanks, it works now!"))
    row = result.message
    row.refresh_from_db()
    assert not result.duplicate and not result.problem
    assert row.case_id == case.pk and row.threaded_by == InboundThreading.ADDRESS
    assert row.visible_text == "Thanks, it works now!" and "Hello Bob" in row.text and bytes(row.raw)
    signal = Signal.objects.get(source=f"inbound:{row.pk}")
    assert signal.case_id == case.pk and signal.kind == "contact" and signal.cleared_at is None
    assert signal.summary == messages.SIGNAL_INBOUND_REPLY.format(excerpt="Thanks, it works now!")


@pytest.mark.django_db
def test_it_threads_by_in_reply_to_and_reopens_a_resolved_case() -> None:
    case, sent = _replied_case()
    Case.objects.filter(pk=case.pk).update(state=CaseState.RESOLVED, resolved_at=timezone.now(), resolution="staff")
    result = receive_inbound_message(esp="mailgun", raw=_mail(in_reply_to=sent.header_message_id))
    result.message.refresh_from_db()
    assert result.message.case_id == case.pk and result.message.threaded_by == InboundThreading.HEADERS
    case.refresh_from_db()
    assert case.state == CaseState.OPEN and case.resolved_at is None
    reopen = SupportAction.objects.get(case=case, action="reopen")
    assert reopen.note == messages.REOPENED_BY_REPLY and reopen.staff is None
    assert (reopen.before["case"]["state"], reopen.after["case"]["state"]) == ("resolved", "open")
    assert Case.objects.queue().filter(pk=case.pk).exists()


@pytest.mark.django_db
def test_it_does_not_thread_by_a_guessed_token_or_a_forged_message_id() -> None:
    case, sent = _replied_case()
    Case.objects.filter(pk=case.pk).update(state=CaseState.RESOLVED, resolved_at=timezone.now())
    forged_address = f"case+{case.pk}.{'a' * 12}@reply.backstop.localhost"
    forged_id = sent.header_message_id.replace(sent.header_message_id.split(".")[2].split("@")[0], "b" * 12)
    result = receive_inbound_message(esp="mailgun", raw=_mail(sender="eve@example.net", to=forged_address,
                                                              in_reply_to=forged_id))
    result.message.refresh_from_db()
    assert result.message.threaded_by == InboundThreading.SENDER
    assert result.message.case is not None and result.message.case.customer_key == "eve@example.net"
    case.refresh_from_db()
    assert case.state == CaseState.RESOLVED


@pytest.mark.django_db
def test_it_wakes_a_snoozed_case_on_the_customers_reply() -> None:
    case, sent = _replied_case()
    Case.objects.filter(pk=case.pk).update(snoozed_until=timezone.now() + dt.timedelta(hours=5))
    receive_inbound_message(esp="mailgun", raw=_mail(to=sent.reply_to))
    case.refresh_from_db()
    assert case.snoozed_until is None
    assert SupportAction.objects.get(case=case, action="wake").staff is None


@pytest.mark.django_db
def test_it_keeps_auto_replies_and_bounces_on_the_case_without_reopening_or_answering() -> None:
    case, sent = _replied_case()
    Case.objects.filter(pk=case.pk).update(state=CaseState.RESOLVED, resolved_at=timezone.now(),
                                           snoozed_until=None)
    messages_before = Message.objects.count()
    ooo = receive_inbound_message(esp="mailgun", raw=_mail(to=sent.reply_to, text="I am away.",
                                                           headers={"Auto-Submitted": "auto-replied"})).message
    bounce = EmailMessage()
    bounce["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.com>"
    bounce["To"] = sent.reply_to
    bounce["Subject"] = "Undelivered Mail Returned to Sender"
    bounce["In-Reply-To"] = sent.header_message_id
    bounce.set_content("Delivery to bob@example.com failed.")
    bounced = receive_inbound_message(esp="mailgun", raw=bounce.as_bytes()).message
    for row, kind in ((ooo, InboundKind.AUTO_REPLY), (bounced, InboundKind.BOUNCE)):
        row.refresh_from_db()
        assert row.kind == kind and row.case_id == case.pk
        assert not Signal.objects.filter(source=f"inbound:{row.pk}").exists()
    case.refresh_from_db()
    assert case.state == CaseState.RESOLVED
    assert Message.objects.count() == messages_before  # nothing answered
    # Someone else's robot quoting our Message-ID does not land on the case.
    stranger = receive_inbound_message(esp="mailgun", raw=_mail(
        sender="robot@lists.example.org", in_reply_to=sent.header_message_id,
        headers={"Precedence": "list"})).message
    stranger.refresh_from_db()
    assert stranger.case_id is None and stranger.threaded_by == InboundThreading.NONE


@pytest.mark.django_db
def test_it_stores_the_same_message_once() -> None:
    _, sent = _replied_case()
    raw = _mail(to=sent.reply_to, message_id="<same@customer.example>")
    first = receive_inbound_message(esp="mailgun", raw=raw)
    again = receive_inbound_message(esp="mailgun", raw=raw)
    assert not first.duplicate and again.duplicate and again.message.pk == first.message.pk
    no_id = _mail(to=sent.reply_to, message_id="<x@y>").replace(b"Message-ID: <x@y>\n", b"")
    assert b"Message-ID" not in no_id
    assert not receive_inbound_message(esp="mailgun", raw=no_id).duplicate
    assert receive_inbound_message(esp="mailgun", raw=no_id).duplicate
    assert InboundMessage.objects.count() == 2
    assert Signal.objects.filter(source__startswith="inbound:").count() == 2


@pytest.mark.django_db
@override_settings(INBOUND_ATTACHMENT_MAX_BYTES=2048, INBOUND_ATTACHMENTS_MAX_TOTAL_BYTES=3000,
                   INBOUND_ATTACHMENT_TYPES=["image/png", "application/pdf"])
def test_it_keeps_attachments_within_the_limits_and_lists_the_others_by_name() -> None:
    _, sent = _replied_case()
    mail = EmailMessage()
    mail["From"] = "bob@example.com"
    mail["To"] = sent.reply_to
    mail["Subject"] = "Screenshots"
    mail.set_content("Here they are.")
    mail.add_attachment(b"\x89PNG" + b"1" * 1500, maintype="image", subtype="png", filename="screen.png")
    mail.add_attachment(b"%PDF" + b"2" * 3000, maintype="application", subtype="pdf", filename="big.pdf")
    mail.add_attachment(b"MZ" + b"3" * 100, maintype="application", subtype="x-msdownload", filename="tool.exe")
    mail.add_attachment(b"%PDF" + b"4" * 1600, maintype="application", subtype="pdf", filename="second.pdf")
    row = receive_inbound_message(esp="mailgun", raw=mail.as_bytes()).message
    files = {a.filename: a for a in row.attachments.all()}
    assert bytes(files["screen.png"].content or b"").startswith(b"\x89PNG") and not files["screen.png"].refused
    assert files["big.pdf"].refused == messages.INBOUND_ATTACHMENT_REFUSED_SIZE.format(limit=2048)
    assert files["big.pdf"].content is None
    assert files["tool.exe"].refused == messages.INBOUND_ATTACHMENT_REFUSED_TYPE.format(
        content_type="application/x-msdownload")
    assert files["second.pdf"].refused == messages.INBOUND_ATTACHMENT_REFUSED_TOTAL.format(limit=3000)
    row.refresh_from_db()
    assert row.case_id is not None and row.visible_text == "Here they are."


@pytest.mark.django_db
def test_it_keeps_a_malformed_message_raw_and_says_what_was_wrong() -> None:
    raw = (b"From: bob@example.com\r\nSubject: broken\r\nContent-Type: multipart/mixed; boundary=\"zzz\"\r\n\r\n"
           b"no boundary here at all\r\n")
    result = receive_inbound_message(esp="mailgun", raw=raw)
    assert "MIME structure is broken" in result.problem
    assert result.message.kind == InboundKind.UNPARSEABLE and bytes(result.message.raw) == raw
    assert result.message.case_id is None
    assert receive_inbound_message(esp="mailgun", raw=raw).duplicate
    from backstop.support.tests.helpers import desk_client

    desk = desk_client(staff_account()).get("/desk").content.decode()
    assert messages.INBOUND_CASELESS_HEADING in desk and "MIME structure is broken" in desk


@pytest.mark.django_db
def test_it_tells_an_open_case_page_that_the_customer_emailed_since_it_was_drawn() -> None:
    from backstop.support.presence import newer_than, timeline_marker

    case, sent = _replied_case()
    marker = timeline_marker(case_id=case.pk)
    assert newer_than(case_id=case.pk, marker=marker) == []
    receive_inbound_message(esp="mailgun", raw=_mail(to=sent.reply_to, text="One more thing"))
    newer = newer_than(case_id=case.pk, marker=marker)
    assert len(newer) == 1 and newer[0].startswith("bob@example.com wrote at")
    assert newer_than(case_id=case.pk, marker=timeline_marker(case_id=case.pk)) == []


def test_it_names_a_view_and_its_secrets_for_every_inbound_esp() -> None:
    from django.conf import settings

    from backstop.support.inbound_webhooks import INBOUND_ESPS, _view_class

    for esp, entry in INBOUND_ESPS.items():
        view = _view_class(esp)
        assert view.signal is not None and view.esp_name, esp
        assert entry.secrets and all(name in settings.ANYMAIL for name in entry.secrets), esp


def test_it_checks_the_inbound_domain_and_the_attachment_limits() -> None:
    from backstop.support.checks import check_inbound_settings

    assert check_inbound_settings() == []
    with override_settings(INBOUND_DOMAIN="not a domain"):
        assert [e.id for e in check_inbound_settings()] == ["backstop.E210"]
    with override_settings(INBOUND_ATTACHMENT_MAX_BYTES=10, INBOUND_ATTACHMENTS_MAX_TOTAL_BYTES=5):
        assert [e.id for e in check_inbound_settings()] == ["backstop.E211"]


@pytest.mark.django_db
def test_it_lets_staff_download_a_kept_attachment_and_shows_the_email_on_the_case_page() -> None:
    from backstop.support.tests.helpers import desk_client

    case, sent = _replied_case()
    mail = EmailMessage()
    mail["From"] = "bob@example.com"
    mail["To"] = sent.reply_to
    mail["Subject"] = "Screenshot"
    mail.set_content("See attached." + QUOTE)
    mail.add_attachment(b"\x89PNG-bytes", maintype="image", subtype="png", filename="screen.png")
    mail.add_attachment(b"MZ", maintype="application", subtype="x-msdownload", filename="tool.exe")
    row = receive_inbound_message(esp="mailgun", raw=mail.as_bytes()).message
    kept = row.attachments.get(filename="screen.png")
    client = desk_client(staff_account(email="kim@backstop.localhost"))
    page = client.get(f"/desk/cases/{case.pk}").content.decode()
    assert "See attached." in page and messages.INBOUND_SHOW_FULL in page and "&gt; Hello Bob," in page
    assert f"/desk/inbound/attachments/{kept.pk}" in page and "tool.exe" in page and "not kept: type" in page
    download = client.get(f"/desk/inbound/attachments/{kept.pk}")
    assert download.status_code == 200 and download.content == b"\x89PNG-bytes"
    assert download["Content-Disposition"].startswith("attachment") and download["X-Content-Type-Options"] == "nosniff"
    refused = row.attachments.get(filename="tool.exe")
    assert client.get(f"/desk/inbound/attachments/{refused.pk}").status_code == 404
    from django.test import Client

    assert Client().get(f"/desk/inbound/attachments/{kept.pk}").status_code == 302  # to the sign-in page
