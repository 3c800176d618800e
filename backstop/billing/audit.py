"""Every action on money leaves an audit entry: who, what, when, the state before and after."""

from __future__ import annotations

import logging
from typing import Any

from backstop.billing.models import (
    AuditEntry,
    PurchaseAttempt,
)

log = logging.getLogger(__name__)


def audit(*, actor: str, action: str, reference: str, payment_id: str = "", before: dict[str, Any] | None = None,
          after: dict[str, Any] | None = None) -> None:
    AuditEntry.objects.create(actor=actor[:200], action=action, reference=reference, payment_id=payment_id,
                              before=before or {}, after=after or {})


def attempt_snapshot(attempt: PurchaseAttempt) -> dict[str, Any]:
    return {"state": attempt.state, "payment_id": attempt.payment_id, "amount_cents": attempt.amount_cents,
            "currency": attempt.currency}
