"""django-anymail's inbound webhooks under one prefix, ``/inbound/<esp>/``: anymail checks the signature and parses the
ESP's payload; its ``inbound`` signal reaches ``support.inbound.receive_inbound_message``.

Around anymail, what it does not do: an ESP without its secret in settings is not mounted (404); bodies up to
``BACKSTOP_INBOUND_MAX_BODY_BYTES`` (other paths keep Django's limit), refused by Content-Length with 413 before
anything is read; a body anymail cannot parse, or a malformed message, is kept raw and answered 400 with what was wrong.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from io import BytesIO
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.http import HttpRequest, QueryDict
from django.utils import timezone
from django.utils.datastructures import MultiValueDict

from backstop.support import messages
from backstop.support.inbound import InboundResult, receive_inbound_message
from backstop.support.models import InboundKind, InboundMessage, InboundWebhookToken

# How far a signed timestamp may be from now: more than an ESP retries for (Mailgun: 8 hours), so a retry that keeps
# its first signature still passes, while a signature captured earlier is useless.
SIGNATURE_MAX_AGE = dt.timedelta(hours=24)

# Basic auth (anymail's WEBHOOK_SECRET) is the only check these ESPs offer; the others sign each request.
BASIC_AUTH = ("WEBHOOK_SECRET",)


@dataclass(frozen=True)
class InboundEsp:
    view: str
    # anymail settings that must all be set for the ESP's URL to exist.
    secrets: tuple[str, ...]
    # The signature covers a timestamp and a token, not the body (Mailgun): both are checked here (fresh, one body).
    signs_token: bool = False


INBOUND_ESPS: dict[str, InboundEsp] = {
    "mailgun": InboundEsp("anymail.webhooks.mailgun.MailgunInboundWebhookView", ("MAILGUN_WEBHOOK_SIGNING_KEY",),
                          signs_token=True),
    # Mailgun posts the raw MIME (``body-mime``) to a URL with "mime" in it, its parsed fields to any other.
    "mailgun_mime": InboundEsp("anymail.webhooks.mailgun.MailgunInboundWebhookView",
                               ("MAILGUN_WEBHOOK_SIGNING_KEY",), signs_token=True),
    "mailersend": InboundEsp("anymail.webhooks.mailersend.MailerSendInboundWebhookView",
                             ("MAILERSEND_INBOUND_SECRET",)),
    "postal": InboundEsp("anymail.webhooks.postal.PostalInboundWebhookView", ("POSTAL_WEBHOOK_KEY",)),
    "postmark": InboundEsp("anymail.webhooks.postmark.PostmarkInboundWebhookView", BASIC_AUTH),
    "sendgrid": InboundEsp("anymail.webhooks.sendgrid.SendGridInboundWebhookView", BASIC_AUTH),
    "mailjet": InboundEsp("anymail.webhooks.mailjet.MailjetInboundWebhookView", BASIC_AUTH),
    "sparkpost": InboundEsp("anymail.webhooks.sparkpost.SparkPostInboundWebhookView", BASIC_AUTH),
    "brevo": InboundEsp("anymail.webhooks.brevo.BrevoInboundWebhookView", BASIC_AUTH),
    "amazon_ses": InboundEsp("anymail.webhooks.amazon_ses.AmazonSESInboundWebhookView", BASIC_AUTH),
    "mailtrap": InboundEsp("anymail.webhooks.mailtrap.MailtrapInboundWebhookView", BASIC_AUTH),
}


@dataclass(frozen=True)
class Answer:
    status: int
    text: str




def is_configured(esp: str) -> bool:
    entry = INBOUND_ESPS.get(esp)
    return entry is not None and all(settings.ANYMAIL.get(name) for name in entry.secrets)


def _view_class(esp: str) -> Any:
    module, _, name = INBOUND_ESPS[esp].view.rpartition(".")
    return getattr(importlib.import_module(module), name)


def handle_inbound_request(request: HttpRequest, *, esp: str) -> Answer:
    """One POST to ``/inbound/<esp>/``: the answer's status and plain-text body."""
    if not is_configured(esp):
        return Answer(404, messages.INBOUND_NOT_CONFIGURED)
    if request.method == "HEAD":
        return Answer(200, "")
    limit = settings.INBOUND_MAX_BODY_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return Answer(413, messages.INBOUND_TOO_LARGE.format(limit=limit))
    body = request.read(limit + 1)
    if len(body) > limit:
        return Answer(413, messages.INBOUND_TOO_LARGE.format(limit=limit))
    if _too_many_parts(request, body):
        return Answer(400, messages.INBOUND_TOO_MANY_PARTS.format(limit=_max_parts()))
    _preload(request, body)
    from anymail.exceptions import AnymailWebhookValidationFailure

    view = _view_class(esp)()
    try:
        view.run_validators(request)
    except AnymailWebhookValidationFailure as error:
        return Answer(403, messages.INBOUND_REFUSED_SIGNATURE.format(why=error))
    if INBOUND_ESPS[esp].signs_token and (why := _reused_signature(request, body)):
        return Answer(403, messages.INBOUND_REFUSED_SIGNATURE.format(why=why))
    try:
        events = view.parse_events(request)
    except Exception as error:  # a payload anymail cannot read: kept as it came, nothing lost
        problem = f"the {esp} payload could not be read ({error.__class__.__name__}: {str(error)[:120]})"
        _keep_unreadable(esp=esp, body=body, problem=problem)
        return Answer(400, messages.INBOUND_MALFORMED.format(problem=problem))
    results: list[InboundResult] = []
    for event in events:
        # The signal anymail's own view sends; the desk's receiver answers with what it stored.
        for _, response in view.signal.send(sender=view.__class__, event=event, esp_name=view.esp_name):
            if isinstance(response, InboundResult):
                results.append(response)
    if problems := [r.problem for r in results if r.problem]:
        return Answer(400, messages.INBOUND_MALFORMED.format(problem="; ".join(problems)))
    if results and all(r.duplicate for r in results):
        return Answer(200, messages.INBOUND_DUPLICATE)
    return Answer(200, messages.INBOUND_STORED)


def on_inbound(sender: Any, event: Any, esp_name: str, **kwargs: Any) -> InboundResult:
    """anymail's ``inbound`` signal (connected in SupportConfig.ready): the message, as raw as the ESP gave it."""
    esp_event = event.esp_event
    raw: bytes | None = None
    post = getattr(esp_event, "POST", None)
    if post is not None and post.get("body-mime"):
        raw = str(post["body-mime"]).encode("utf-8", "surrogateescape")
    if raw is None:
        try:
            raw = event.message.as_bytes()
        except Exception:  # a message the policy cannot serialise again: what the ESP sent, as near as it gets
            raw = _esp_payload(esp_event)
    recipient = str(getattr(event.message, "envelope_recipient", "") or "")
    return receive_inbound_message(esp=esp_name.lower(), raw=raw, envelope_recipient=recipient)


def _esp_payload(esp_event: Any) -> bytes:
    """The ESP's own payload (its JSON, or the form anymail read), for a message that cannot be written out again:
    parsed as MIME it has no headers, so it is kept as unparseable with the payload in ``raw``."""
    if isinstance(esp_event, dict | list):
        return json.dumps(esp_event, default=str).encode()
    body = getattr(esp_event, "body", b"")
    return body if isinstance(body, bytes) else str(esp_event).encode("utf-8", "replace")


def _reused_signature(request: HttpRequest, body: bytes) -> str:
    """Why a valid signature over (timestamp, token) is not enough, or "": the timestamp is not within
    SIGNATURE_MAX_AGE of now, or the token already came with another body (a captured signature on a forged message).
    The same token with the same body is the ESP's retry: it passes, and the message's dedupe answers it."""
    if request.content_type == "application/json":
        try:
            block = json.loads(body.decode("utf-8"))["signature"]
            timestamp, token = str(block["timestamp"]), str(block["token"])
        except (KeyError, TypeError, ValueError):
            return messages.INBOUND_SIGNATURE_UNREADABLE
    else:
        timestamp, token = request.POST.get("timestamp", ""), request.POST.get("token", "")
    try:
        signed_at = dt.datetime.fromtimestamp(int(timestamp), tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return messages.INBOUND_SIGNATURE_UNREADABLE
    now = timezone.now()
    if abs(now - signed_at) > SIGNATURE_MAX_AGE:
        return messages.INBOUND_SIGNATURE_STALE
    digest = _payload_digest(request, body)
    try:
        with transaction.atomic():
            seen, created = InboundWebhookToken.objects.get_or_create(token=token[:200],
                                                                      defaults={"body_sha256": digest})
    except IntegrityError:  # the same token twice at once
        seen, created = InboundWebhookToken.objects.get(token=token[:200]), False
    if not created and seen.body_sha256 != digest:
        return messages.INBOUND_SIGNATURE_REUSED
    if created:  # tokens older than the window can no longer pass the timestamp check: forget them
        InboundWebhookToken.objects.filter(seen_at__lt=now - 2 * SIGNATURE_MAX_AGE).delete()
    return ""


def _payload_digest(request: HttpRequest, body: bytes) -> str:
    """What a token was signed with, as content: the form's fields and files (not its boundary, which a retry may
    change) or the JSON without its signature block; the signature fields themselves left out."""
    digest = hashlib.sha256()
    if request.content_type == "application/json":
        event = json.loads(body.decode("utf-8"))
        event.pop("signature", None)
        digest.update(json.dumps(event, sort_keys=True, default=str).encode())
        return digest.hexdigest()
    for name in sorted(set(request.POST) - {"timestamp", "token", "signature"}):
        for value in request.POST.getlist(name):
            digest.update(f"{len(name)}:{name}={len(value)}:".encode() + value.encode("utf-8", "surrogateescape"))
    for name in sorted(request.FILES):
        for upload in request.FILES.getlist(name):
            content = upload.read()
            upload.seek(0)
            digest.update(f"{len(name)}:{name}@{len(content)}:".encode() + content)
    return digest.hexdigest()


def _keep_unreadable(*, esp: str, body: bytes, problem: str) -> None:
    key = "sha256:" + hashlib.sha256(body).hexdigest()
    try:
        with transaction.atomic():
            InboundMessage.objects.get_or_create(
                dedupe_key=key, defaults={"esp": esp, "kind": InboundKind.UNPARSEABLE, "raw": body,
                                          "problem": problem[:300]})
    except IntegrityError:  # the same body, twice at once
        pass


def _max_parts() -> int:
    return int(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS or 1000) + int(settings.DATA_UPLOAD_MAX_NUMBER_FILES or 100)


def _too_many_parts(request: HttpRequest, body: bytes) -> bool:
    """A multipart form with more parts than Django allows a form, counted by its boundary before anything is parsed:
    the form is parsed before its signature can be checked, and Python's parser costs about a millisecond a part (an
    unsigned post of 200,000 tiny parts held a core for two minutes)."""
    if request.content_type != "multipart/form-data":
        return False
    boundary = (request.content_params or {}).get("boundary", "")
    if not boundary:
        return False
    return body.count(b"--" + boundary.encode("latin-1", "replace")) > _max_parts() + 1


def _preload(request: HttpRequest, body: bytes) -> None:
    """Hand anymail the body read here, and a multipart form parsed here: Django's own parser holds every field to
    DATA_UPLOAD_MAX_MEMORY_SIZE (the site's limit), and an ESP posts the whole message as one field."""
    request._body = body
    request._stream = BytesIO(body)
    if request.content_type != "multipart/form-data":
        return
    header = request.META.get("CONTENT_TYPE", "")
    form = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {header}\r\n\r\n".encode("latin-1") + body)
    post, files = QueryDict(mutable=True), MultiValueDict[str, Any]()
    if form.is_multipart():
        for part in form.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name:
                continue
            decoded = part.get_payload(decode=True)
            payload = decoded if isinstance(decoded, bytes) else b""
            filename = part.get_filename()
            if filename is not None:
                files.appendlist(str(name), SimpleUploadedFile(filename, payload, part.get_content_type()))
            else:
                charset = part.get_content_charset() or "utf-8"
                post.appendlist(str(name), payload.decode(charset, "surrogateescape"))
    post._mutable = False
    request._post, request._files = post, files  # type: ignore[attr-defined]
