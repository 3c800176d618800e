"""Email the customer sent us, through an ESP's inbound webhook (support.inbound_webhooks): written down as it came
(the intent), then threaded onto its case.

Threading: by our reply address first (``case+<id>.<token>@``, the token must verify), then by In-Reply-To/References
naming a Message-ID we made (its MAC must verify). A customer's reply joins the case as a contact: it reopens a
resolved case, wakes one put aside (the ``wake`` action, as automation) and is ranked by harm like any contact.
Automatic replies and bounces are kept on the case's timeline and do nothing else: no reopening, no answer (no mail
loops); they thread by headers only when a bounce or sent from the case's customer. A person's mail that threads
nowhere joins the sender's own case (opened if none), unanswered by email: a reply to a stranger's address could be
backscatter. Nothing received is ever acknowledged by email.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from email import errors as email_errors
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.html import strip_tags

from backstop.accounts.models import Account
from backstop.attention.models import Harm
from backstop.lib.email_identity import email_key
from backstop.lib.email_replies import automated_kind, visible_text
from backstop.support import messages
from backstop.support.actions import snapshot
from backstop.support.cases import _join
from backstop.support.models import (
    ActionOutcome,
    Case,
    CaseState,
    InboundAttachment,
    InboundKind,
    InboundMessage,
    InboundThreading,
    Resolution,
    SignalKind,
    SupportAction,
)
from backstop.support.reply_addresses import case_of_address, case_of_message_id
from backstop.support.search import index_case

EXCERPT_LENGTH = 160
# Defects of Python's parser that mean the structure cannot be trusted (a missing closing boundary, common and
# harmless, is not one).
_BROKEN = (
    email_errors.NoBoundaryInMultipartDefect, email_errors.StartBoundaryNotFoundDefect,
    email_errors.MultipartInvariantViolationDefect, email_errors.MissingHeaderBodySeparatorDefect,
    email_errors.InvalidMultipartContentTransferEncodingDefect, email_errors.FirstHeaderLineIsContinuationDefect,
)
_MESSAGE_IDS = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True)
class InboundResult:
    message: InboundMessage
    duplicate: bool
    # Non-empty when the message was malformed: kept raw, and the webhook's answer says this.
    problem: str = ""


def receive_inbound_message(*, esp: str, raw: bytes, envelope_recipient: str = "") -> InboundResult:
    """One email from an ESP: stored once (by Message-ID, or a hash of the raw message), attachments within the
    limits, then threaded. A malformed one is stored raw as "unparseable" and comes back with its ``problem``."""
    parsed, problem = _parse(raw)
    fields = _fields(parsed, envelope_recipient) if parsed is not None and not problem else {}
    if parsed is not None and not problem and not fields["from_email"]:
        problem = "it has no From address"
    if problem:
        fields = {"kind": InboundKind.UNPARSEABLE, "problem": problem[:300],
                  "subject": _safe_header(parsed, "Subject")[:300] if parsed is not None else ""}
        key = "sha256:" + hashlib.sha256(raw).hexdigest()
    else:
        key = str(fields.pop("dedupe_key"))
    earlier = InboundMessage.objects.filter(dedupe_key=key).first()
    if earlier is not None:
        return InboundResult(earlier, duplicate=True, problem=earlier.problem)
    try:
        with transaction.atomic():
            row = InboundMessage.objects.create(dedupe_key=key, esp=esp[:30], raw=raw, **fields)
            if parsed is not None and not problem:
                _store_attachments(row, parsed)
    except IntegrityError:  # the same message, delivered twice at once: the other request stored it
        return InboundResult(InboundMessage.objects.get(dedupe_key=key), duplicate=True, problem=problem)
    if not problem:
        thread_inbound_message(message_id=row.pk)
    return InboundResult(row, duplicate=False, problem=problem)


def _parse(raw: bytes) -> tuple[EmailMessage | None, str]:
    try:
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as error:  # the parser is lenient; anything it raises is a message we cannot read
        return None, f"the message could not be parsed ({error.__class__.__name__})"
    assert isinstance(parsed, EmailMessage)
    for part in parsed.walk():
        for defect in part.defects:
            if isinstance(defect, _BROKEN):
                return parsed, f"its MIME structure is broken ({defect.__class__.__name__})"
    if not parsed.keys():
        return parsed, "it has no headers"
    try:
        _texts(parsed)
    except Exception as error:  # a part whose charset or transfer encoding cannot be decoded
        return parsed, f"a text part cannot be decoded ({error.__class__.__name__})"
    return parsed, ""


def _safe_header(parsed: EmailMessage, name: str) -> str:
    try:
        return str(parsed.get(name, "") or "")
    except Exception:  # a header the policy cannot parse
        raw = parsed.get_all(name, failobj=[]) if hasattr(parsed, "get_all") else []
        return str(raw[0]) if raw else ""


def _texts(parsed: EmailMessage) -> tuple[str, str]:
    plain = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    html_text = str(html.get_content()) if html is not None else ""
    text = str(plain.get_content()) if plain is not None else strip_tags(html_text)
    return text, html_text


def _fields(parsed: EmailMessage, envelope_recipient: str) -> dict[str, object]:
    name, sender = parseaddr(_safe_header(parsed, "From"))
    text, html = _texts(parsed)
    recipients = [addr for _, addr in getaddresses(
        [_safe_header(parsed, h) for h in ("To", "Cc", "Delivered-To", "X-Original-To")] + [envelope_recipient])
        if addr]
    message_id = _safe_header(parsed, "Message-ID").strip()
    content_type = parsed.get_content_type()
    kind = automated_kind(
        {h: _safe_header(parsed, h) for h in ("Return-Path", "Auto-Submitted", "X-Autoreply", "X-Autorespond",
                                              "X-Auto-Response-Suppress", "Precedence")},
        content_type=content_type, report_type=str(parsed.get_param("report-type", "") or ""), sender=sender)
    raw_key = hashlib.sha256(parsed.as_bytes()).hexdigest() if not message_id else ""
    return {
        "dedupe_key": f"mid:{message_id}"[:200] if message_id else f"sha256:{raw_key}",
        "kind": kind or InboundKind.REPLY, "message_id": message_id[:300],
        "in_reply_to": _safe_header(parsed, "In-Reply-To").strip()[:300],
        "references": _safe_header(parsed, "References").strip(),
        "from_email": sender[:320], "from_name": name[:200], "to": ", ".join(dict.fromkeys(recipients)),
        "subject": " ".join(_safe_header(parsed, "Subject").split())[:300],
        "text": text, "visible_text": visible_text(text), "html": html,
    }


def _store_attachments(row: InboundMessage, parsed: EmailMessage) -> None:
    """Each attachment kept, or listed by name with why not: the type is not on the allow-list, it is larger than a
    file may be, or the message's kept files would pass the total."""
    total = 0
    for part in parsed.iter_attachments():
        filename = (part.get_filename() or "attachment")[:255]
        content_type = part.get_content_type()
        try:
            payload = part.get_payload(decode=True)
        except Exception:
            payload = None
        content = payload if isinstance(payload, bytes) else (part.as_bytes() if content_type.startswith("message/")
                                                              else b"")
        size = len(content)
        refused = ""
        if content_type not in settings.INBOUND_ATTACHMENT_TYPES:
            refused = messages.INBOUND_ATTACHMENT_REFUSED_TYPE.format(content_type=content_type)
        elif size > settings.INBOUND_ATTACHMENT_MAX_BYTES:
            refused = messages.INBOUND_ATTACHMENT_REFUSED_SIZE.format(limit=settings.INBOUND_ATTACHMENT_MAX_BYTES)
        elif total + size > settings.INBOUND_ATTACHMENTS_MAX_TOTAL_BYTES:
            refused = messages.INBOUND_ATTACHMENT_REFUSED_TOTAL.format(
                limit=settings.INBOUND_ATTACHMENTS_MAX_TOTAL_BYTES)
        else:
            total += size
        InboundAttachment.objects.create(message=row, filename=filename, content_type=content_type[:100], size=size,
                                         content=None if refused else content, refused=refused)


def _case_by_address(recipients: str) -> int | None:
    for address in recipients.split(","):
        if (case_id := case_of_address(address)) is not None:
            return case_id
    return None


def _case_by_headers(row: InboundMessage) -> int | None:
    for message_id in _MESSAGE_IDS.findall(f"{row.in_reply_to} {row.references}"):
        if (case_id := case_of_message_id(message_id)) is not None:
            return case_id
    return None


def _find_case(row: InboundMessage) -> tuple[Case | None, str]:
    case_id, how = _case_by_address(row.to), InboundThreading.ADDRESS
    if case_id is None:
        case_id, how = _case_by_headers(row), InboundThreading.HEADERS
    case = Case.objects.select_related("account").filter(pk=case_id).first() if case_id is not None else None
    if case is None:
        return None, InboundThreading.NONE
    if case.resolution == Resolution.MERGED and case.merged_into_id is not None:
        case = Case.objects.select_related("account").get(pk=case.merged_into_id)
    if (how == InboundThreading.HEADERS and row.kind == InboundKind.AUTO_REPLY
            and email_key(row.from_email) != case.customer_key):
        # Someone else's robot quoting our Message-ID (a list, a forward's out-of-office): not this case's.
        return None, InboundThreading.NONE
    return case, how


def thread_inbound_message(*, message_id: int) -> None:
    """Put a stored message on its case (once). Safe to run again: a threaded message is left alone."""
    row = InboundMessage.objects.get(pk=message_id)
    if row.threaded_at is not None or row.kind == InboundKind.UNPARSEABLE:
        return
    case, how = _find_case(row)
    with transaction.atomic():
        if row.is_automated:
            # On the timeline as what it is; nothing reopens, wakes or answers.
            InboundMessage.objects.filter(pk=row.pk).update(
                case=case, threaded_by=how, threaded_at=timezone.now())
            if case is not None:
                index_case(case_id=case.pk)
            return
        if case is None:
            key = email_key(row.from_email)
            account = Account.objects.by_email_key(key) if key else None
            if not key:
                InboundMessage.objects.filter(pk=row.pk).update(threaded_by=InboundThreading.NONE,
                                                                threaded_at=timezone.now())
                return
            customer_key, email, summary = key, (account.email if account else row.from_email), \
                messages.SIGNAL_INBOUND_NEW
            how = InboundThreading.SENDER
        else:
            _reopen(case, row)
            customer_key, email, account, summary = case.customer_key, case.email, case.account, \
                messages.SIGNAL_INBOUND_REPLY
        signal = _join(
            customer_key=customer_key, email=email, account=account, kind=SignalKind.CONTACT, cause="",
            harm=Harm.QUESTION, summary=summary.format(excerpt=_excerpt(row.visible_text or row.subject)),
            detail={"inbound": row.pk, "subject": row.subject}, source=f"inbound:{row.pk}",
        )
        InboundMessage.objects.filter(pk=row.pk).update(case_id=signal.case_id, threaded_by=how,
                                                        threaded_at=timezone.now())
        index_case(case_id=signal.case_id)


def _reopen(case: Case, row: InboundMessage) -> None:
    """A resolved case the customer answers is open again, unless they already have another open case (that one
    gets the reply: one open case per customer)."""
    if case.state != CaseState.RESOLVED or Case.objects.open_for(case.customer_key) is not None:
        return
    before = snapshot(case.pk)
    try:
        with transaction.atomic():
            reopened = Case.objects.filter(pk=case.pk, state=CaseState.RESOLVED).update(
                state=CaseState.OPEN, resolved_at=None, resolution_seconds=None, resolution="", resolved_by=None,
                resolution_note="", updated_at=timezone.now())
    except IntegrityError:  # another signal opened a case for them a moment ago
        return
    if reopened:
        after = snapshot(case.pk)
        SupportAction.objects.get_or_create(
            idempotency_key=f"reopen:inbound:{row.pk}",
            defaults={"case": case, "staff": None, "action": "reopen", "outcome": ActionOutcome.DONE,
                      "note": messages.REOPENED_BY_REPLY, "params": {"inbound": row.pk}, "before": before,
                      "after": after, "finished_at": timezone.now()})


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_LENGTH else flat[: EXCERPT_LENGTH - 1] + "…"


def thread_stranded_inbound(*, grace_seconds: float) -> int:
    """The safety net: messages stored but never threaded (the process stopped in between) are threaded now."""
    before = timezone.now() - dt.timedelta(seconds=grace_seconds)
    stranded = list(InboundMessage.objects.filter(threaded_at__isnull=True, received_at__lt=before)
                    .exclude(kind=InboundKind.UNPARSEABLE).values_list("pk", flat=True)[:200])
    for pk in stranded:
        thread_inbound_message(message_id=pk)
    return len(stranded)


def caseless_inbound(*, limit: int = 20) -> list[InboundMessage]:
    """What the desk lists under "Email not on any case": malformed messages and mail that threaded nowhere."""
    return list(InboundMessage.objects.filter(Q(threaded_at__isnull=False) | Q(kind=InboundKind.UNPARSEABLE),
                                              case__isnull=True)
                .defer("raw", "html").order_by("-received_at")[:limit])
