"""What a reply's writer typed, cut from the quote and signature as Gmail, Outlook and Apple Mail write them; and mail
a machine wrote, told from mail a person wrote by its headers."""

from __future__ import annotations

from backstop.lib.email_replies import automated_kind, visible_text

GMAIL = """Thanks, that worked!

On Mon, 7 Dec 2026 at 15:02, Backstop <hello@backstop.localhost>
wrote:

> Hello Bob,
>
> Your workspace is ready.
"""

OUTLOOK = """Still broken for me, sorry.

Bob Stone | Bobco
________________________________
From: Backstop <hello@backstop.localhost>
Sent: Monday, December 7, 2026 3:02 PM
To: Bob Stone <bob@example.com>
Subject: Your workspace

Hello Bob,
"""

OUTLOOK_NO_RULE = """Still broken.

From: Backstop <hello@backstop.localhost>
Sent: Monday, December 7, 2026 3:02 PM
Subject: Your workspace

Hello Bob,
"""

APPLE_MAIL = """Can you refund the second charge?

Sent from my iPhone

> On 7 Dec 2026, at 15:02, Backstop <hello@backstop.localhost> wrote:
>
> Hello Bob,
"""

SIGNATURE = "It works now.\n\n-- \nBob Stone\nBobco, CEO\n"

INLINE = """> Which plan are you on?
Team plan.
> And since when?
Since Monday.
"""


def test_it_cuts_the_gmail_quote_wrapped_over_two_lines() -> None:
    assert visible_text(GMAIL) == "Thanks, that worked!"


def test_it_cuts_outlooks_separator_and_its_from_sent_block() -> None:
    assert visible_text(OUTLOOK) == "Still broken for me, sorry.\n\nBob Stone | Bobco"
    assert visible_text(OUTLOOK_NO_RULE) == "Still broken."


def test_it_cuts_apple_mails_quote_and_its_sent_from_footer() -> None:
    assert visible_text(APPLE_MAIL) == "Can you refund the second charge?"


def test_it_cuts_a_signature_after_the_dash_dash_line() -> None:
    assert visible_text(SIGNATURE) == "It works now."


def test_it_keeps_inline_answers_between_quoted_lines() -> None:
    assert visible_text(INLINE) == "Team plan.\nSince Monday."


def test_it_shows_a_message_that_is_all_quote_whole() -> None:
    assert visible_text("> just the quote\n> again\n") == "> just the quote\n> again"


def _kind(headers: dict[str, str], *, sender: str = "bob@example.com", content_type: str = "text/plain",
          report_type: str = "") -> str:
    return automated_kind(headers, content_type=content_type, report_type=report_type, sender=sender)


def test_it_tells_auto_replies_bounces_and_people_apart() -> None:
    assert _kind({}) == ""
    assert _kind({"Auto-Submitted": "no"}) == ""
    assert _kind({"Auto-Submitted": "auto-replied"}) == "auto_reply"
    assert _kind({"X-Autoreply": "yes"}) == "auto_reply"
    assert _kind({"X-Autorespond": "Vacation"}) == "auto_reply"
    assert _kind({"X-Auto-Response-Suppress": "All"}) == "auto_reply"
    for precedence in ("bulk", "junk", "list", "auto_reply"):
        assert _kind({"Precedence": precedence}) == "auto_reply"
    assert _kind({}, content_type="multipart/report", report_type="delivery-status") == "bounce"
    assert _kind({}, sender="MAILER-DAEMON@mx.example.com") == "bounce"
    assert _kind({"Return-Path": "<>"}) == "bounce"
