"""Raising and resolving attention records. Keyword-only, safe to call twice."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from backstop.attention import hooks
from backstop.attention.models import AttentionRecord

log = logging.getLogger(__name__)


def raise_once(
    *, kind: str, harm: int, cause: str, summary: str, detail: dict[str, Any], account: Any = None, subject: str = ""
) -> AttentionRecord:
    """Open a record unless one of this kind is already open for the account (or, given a ``subject`` such as
    "payment:pi_123", for that subject); either way the subscribers hear of it."""
    try:
        with transaction.atomic():
            record = AttentionRecord.objects.create(
                kind=kind, harm=harm, cause=cause, account=account, subject=subject, summary=summary, detail=detail
            )
    except IntegrityError:
        if subject:
            record = AttentionRecord.objects.get(kind=kind, subject=subject, resolved_at__isnull=True)
        else:
            record = AttentionRecord.objects.get(kind=kind, account=account, resolved_at__isnull=True)
    _tell_subscribers(record)
    return record


def _tell_subscribers(record: AttentionRecord) -> None:
    # A subscriber must never break the automation that raised the record: if one fails here, the support cycle
    # finds the record without a signal and joins it on its next pass.
    for callback in hooks.subscribers():
        try:
            with transaction.atomic():
                callback(record)
        except Exception:
            log.exception("subscriber %r failed on attention record %s; its catch-up will retry", callback, record.pk)


def resolve(*, kind: str, how: str, account_ids: Iterable[int] | None = None, subject: str | None = None) -> int:
    """Resolve the open records of ``kind`` for these accounts and/or this subject; returns how many."""
    if account_ids is None and subject is None:
        raise TypeError("resolve() needs account_ids or subject: it never resolves every record of a kind")
    records = AttentionRecord.objects.filter(kind=kind, resolved_at__isnull=True)
    if account_ids is not None:
        records = records.filter(account_id__in=list(account_ids))
    if subject is not None:
        records = records.filter(subject=subject)
    return records.update(resolved_at=timezone.now(), resolution=how)
