"""Reading an email a person (or a machine) sent back to us: what they wrote above the quote, and whether a machine
wrote it. Framework-free: the support app's inbound mail uses it, its tests feed it the shapes mail clients write."""

from __future__ import annotations

import re
from collections.abc import Mapping

# The line a client writes above the quoted message: Gmail and Apple Mail ("On <date>, <who> wrote:", possibly
# wrapped over two lines), and the same in a few languages the desk meets.
_WROTE = re.compile(
    r"^\s*(On|Le|Am|El|Il|Op)\s.{0,300}?(wrote|a écrit|schrieb|escribió|ha scritto|schreef)\s*:\s*$",
    re.IGNORECASE | re.DOTALL,
)
# Outlook's separators: a rule of underscores or the "Original Message" line, and the From:/Sent: block it writes.
_OUTLOOK_RULE = re.compile(r"^\s*(_{10,}|-{2,}\s*Original Message\s*-{2,}|-{2,}\s*Forwarded message\s*-{2,})\s*$",
                           re.IGNORECASE)
_OUTLOOK_FROM = re.compile(r"^\s*\*?(From|De|Von|Van)\s*:\*?\s+\S", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(r"^\s*\*?(Sent|Date|Envoyé|Gesendet|To|Subject)\s*:", re.IGNORECASE)
# A signature starts at "-- " alone on its line (RFC 3676); mobile clients' one-line footers too.
_SIGNATURE = re.compile(r"^(-- ?|Sent from my \w+.*|Get Outlook for \w+.*)$")


def visible_text(text: str) -> str:
    """The part of a reply its writer typed: the quoted earlier message (after "On ... wrote:", Outlook's separator
    and From:/Sent: block, or ``>`` lines) and the signature are cut. Never empty when ``text`` is not: a message that
    is all quote (a bare forward) is shown whole."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if _SIGNATURE.match(line.rstrip("\n")) or _OUTLOOK_RULE.match(line):
            break
        if _OUTLOOK_FROM.match(line) and any(_OUTLOOK_NEXT.match(n) for n in lines[index + 1:index + 4]):
            break
        if _WROTE.match(line):
            break
        # "On Mon, 7 Dec 2026 at 15:00, Sam <sam@example.com>" / "wrote:" wrapped over two lines.
        if index + 1 < len(lines) and _WROTE.match(f"{line} {lines[index + 1]}") and lines[index + 1].strip():
            break
        if line.lstrip().startswith(">"):
            # A quote in the middle (an inline answer) is kept up to here; the rest is the quote.
            if all(not rest.strip() or rest.lstrip().startswith(">") for rest in lines[index:]):
                break
            continue
        kept.append(line)
    shown = "\n".join(kept).strip()
    return shown or text.strip()


# Precedence values a list, a robot or an auto-responder writes (RFC 2076, RFC 3834's "auto_reply").
_AUTOMATED_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})


def automated_kind(headers: Mapping[str, str], *, content_type: str, report_type: str, sender: str) -> str:
    """"bounce" (a delivery status notification, or mail from a mailer daemon or with an empty return path),
    "auto_reply" (an out-of-office, a vacation responder, a list), or "" for mail a person wrote.

    ``headers`` is read case-insensitively by the caller's mapping (an email.message.Message is one); ``sender`` is the
    From address; ``report_type`` the report-type parameter of a multipart/report."""
    def header(name: str) -> str:
        return str(headers.get(name, "") or "").strip()

    return_path = header("Return-Path")
    local = sender.split("@", 1)[0].lower()
    if content_type == "multipart/report" and report_type.lower() == "delivery-status":
        return "bounce"
    if local in ("mailer-daemon", "postmaster") or return_path in ("<>", "<> "):
        return "bounce"
    auto_submitted = header("Auto-Submitted").lower()
    if auto_submitted and auto_submitted != "no":
        return "auto_reply"
    if header("X-Autoreply") or header("X-Autorespond") or header("X-Auto-Response-Suppress"):
        return "auto_reply"
    if header("Precedence").lower() in _AUTOMATED_PRECEDENCE:
        return "auto_reply"
    return ""
