"""Staff (and automation) actions on a case: each run once per click, audited with the state before and after."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from backstop.accounts.activation import WorkspaceIdTaken, complete_workspace_by_hand
from backstop.accounts.models import Account, SetupStep, StepStatus
from backstop.accounts.setup import retry_setup
from backstop.accounts.signin import send_sign_in_code
from backstop.accounts.timeline import record_event
from backstop.ratelimits.services import RateLimited
from backstop.support import messages, payments
from backstop.support.cases import clear_fixed_attention, refresh_case
from backstop.support.models import (
    ActionOutcome,
    AttentionRecord,
    Case,
    CaseState,
    Contact,
    Resolution,
    Signal,
    SupportAction,
)
from backstop.workspaces.models import Workspace

log = logging.getLogger(__name__)


class ActionRefused(Exception):
    """The action can't run on this case as asked; the text says why, in words staff can act on."""


STAFF_ACTIONS = ("retry_setup", "complete_workspace", "send_code_sms", "fulfil_from_charge", "refund", "grant_credit",
                 "merge", "close")


@dataclass(frozen=True)
class ActionResult:
    action: SupportAction
    repeated: bool

    @property
    def outcome(self) -> str:
        return self.action.outcome

    @property
    def note(self) -> str:
        return self.action.note


def snapshot(case_id: int) -> dict[str, Any]:
    """What the audit keeps before and after an action: the case, the account, its setup and its money."""
    case = Case.objects.select_related("account").get(pk=case_id)
    state: dict[str, Any] = {
        "case": {"state": case.state, "harm": case.harm, "kinds": case.kinds, "incident": case.incident_id},
    }
    account = case.account
    if account is not None:
        state["account"] = {"state": account.state, "setup_run": account.setup_run,
                            "email_verified": account.email_verified_at is not None}
        state["steps"] = dict(SetupStep.objects.filter(account=account).values_list("name", "status"))
        state["workspace"] = Workspace.objects.filter(account=account).values_list("external_id", flat=True).first()
    state.update(payments.snapshot(email=case.email, account=account))
    return state


def run_action(
    *, case_id: int, staff: Account | None, action: str, key: str, params: dict[str, Any] | None = None
) -> ActionResult:
    """Run one action once per ``key``, recording who, when, what, and the state before and after."""
    if action not in STAFF_ACTIONS:
        raise ActionRefused(messages.ACTION_NOT_AVAILABLE)
    params = params or {}
    scoped_key = f"staff:{staff.pk}:{key}" if staff is not None else f"auto:{key}"
    try:
        with transaction.atomic():
            record = SupportAction.objects.create(
                idempotency_key=scoped_key[:120], case_id=case_id, staff=staff, action=action, params=params,
                before=snapshot(case_id),
            )
    except IntegrityError:  # a double click, a resent form, or automation's second pass: the first one stands
        return ActionResult(SupportAction.objects.get(idempotency_key=scoped_key[:120]), repeated=True)
    if staff is not None:
        Case.objects.filter(pk=case_id, human_touched_at__isnull=True).update(human_touched_at=timezone.now())
    handler = _HANDLERS[action]
    try:
        outcome, note = handler(Case.objects.select_related("account").get(pk=case_id), staff,
                                params | {"action_key": record.idempotency_key})
    except ActionRefused as refused:
        outcome, note = ActionOutcome.FAILED, str(refused)
    except (RateLimited, payments.PaymentActionFailed) as error:
        outcome, note = ActionOutcome.FAILED, messages.ACTION_FAILED.format(error=error)
    except Exception:
        log.exception("support action #%s (%s on case %s) failed", record.pk, action, case_id)
        outcome, note = ActionOutcome.FAILED, messages.ACTION_BROKE.format(reference=record.pk)
    clear_fixed_attention(case_id=case_id)
    SupportAction.objects.filter(pk=record.pk).update(
        outcome=outcome, note=note[:500], after=snapshot(case_id), finished_at=timezone.now())
    refresh_case(case_id=case_id)
    record.refresh_from_db()
    return ActionResult(record, repeated=False)


Handler = Callable[[Case, Account | None, dict[str, Any]], tuple[str, str]]


def _require_account(case: Case) -> Account:
    if case.account is None:
        raise ActionRefused(messages.ACTION_NOT_AVAILABLE)
    return case.account


def _retry_setup(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    account = _require_account(case)
    text = messages.ACTIONS["retry_setup"]
    if not SetupStep.objects.filter(account=account).exclude(status=StepStatus.DONE).exists():
        return ActionOutcome.ALREADY_DONE, text.already
    who = f"support ({staff.email})" if staff is not None else "support automation"
    record_event(account, "support_retry", f"Setup retried by {who}.")
    retry_setup(account=account)
    return ActionOutcome.DONE, text.done


def _complete_workspace(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    """Record a workspace a person created by hand in the provider's console, and activate the account (accounts
    does both, safe against the setup workflow finishing at the same moment)."""
    account = _require_account(case)
    text = messages.ACTIONS["complete_workspace"]
    external_id = str(params.get("external_id", "")).strip()
    if not external_id:
        raise ActionRefused(messages.WORKSPACE_ID_REQUIRED)
    who = staff.email if staff is not None else "support automation"
    try:
        done = complete_workspace_by_hand(account=account, external_id=external_id, by=who)
    except WorkspaceIdTaken as error:
        raise ActionRefused(messages.WORKSPACE_ID_TAKEN) from error
    return (ActionOutcome.DONE, text.done) if done else (ActionOutcome.ALREADY_DONE, text.already)


def _send_code_sms(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    account = _require_account(case)
    text = messages.ACTIONS["send_code_sms"]
    if not account.phone:
        return ActionOutcome.FAILED, text.already
    who = f"support:{staff.pk}" if staff is not None else "support:automation"
    send_sign_in_code(email=account.email, ip=who)
    return ActionOutcome.DONE, text.done


def _fulfil_from_charge(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["fulfil_from_charge"]
    done = payments.fulfil_from_charge(case=case, staff=staff, payment_id=str(params.get("payment_id", "")))
    return (ActionOutcome.DONE, text.done) if done else (ActionOutcome.ALREADY_DONE, text.already)


def _refund(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["refund"]
    done = payments.refund(case=case, staff=staff, reference=str(params.get("reference", "")),
                           reason=str(params.get("reason", "")))
    return (ActionOutcome.DONE, text.done) if done else (ActionOutcome.ALREADY_DONE, text.already)


def _grant_credit(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["grant_credit"]
    done = payments.grant_credit(case=case, staff=staff, days=int(params.get("days") or 0),
                                 reason=str(params.get("reason", "")), key=f"support:{params['action_key']}")
    return (ActionOutcome.DONE, text.done) if done else (ActionOutcome.ALREADY_DONE, text.already)


def _merge(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["merge"]
    try:
        target_id = int(str(params.get("target", "")).strip().lstrip("#"))
    except ValueError:
        raise ActionRefused(messages.MERGE_TARGET_INVALID) from None
    if target_id == case.pk:
        raise ActionRefused(messages.MERGE_TARGET_INVALID)
    now = timezone.now()
    with transaction.atomic():
        if not Case.objects.filter(pk=target_id, state=CaseState.OPEN).update(version=F("version") + 1,
                                                                               updated_at=now):
            raise ActionRefused(messages.MERGE_TARGET_INVALID)
        if not Case.objects.filter(pk=case.pk, state=CaseState.OPEN).update(
            state=CaseState.RESOLVED, resolution=Resolution.MERGED, merged_into_id=target_id, resolved_at=now,
            resolution_seconds=case.seconds_open(now),
            resolved_by=staff, resolution_note=f"merged into case {target_id}",
        ):
            return ActionOutcome.ALREADY_DONE, text.already
        Signal.objects.filter(case=case).update(case_id=target_id)
        Contact.objects.filter(case=case).update(case_id=target_id)
        refresh_case(case_id=target_id)
    return ActionOutcome.DONE, text.done.format(target=target_id)


def _close(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["close"]
    now = timezone.now()
    note = str(params.get("note", "")).strip()
    with transaction.atomic():
        if not Case.objects.filter(pk=case.pk, state=CaseState.OPEN).update(
            state=CaseState.RESOLVED, resolution=Resolution.STAFF, resolved_at=now, resolved_by=staff,
            resolution_seconds=case.seconds_open(now),
            resolution_note=(note or "closed by staff")[:500],
        ):
            resolved_at = Case.objects.filter(pk=case.pk).values_list("resolved_at", flat=True).first()
            return ActionOutcome.ALREADY_DONE, text.already.format(when=f"{resolved_at:%H:%M UTC}")
        open_signals = Signal.objects.filter(case=case, cleared_at__isnull=True)
        AttentionRecord.objects.filter(pk__in=open_signals.exclude(attention=None).values("attention_id"),
                                       resolved_at__isnull=True).update(resolved_at=now, resolution="closed by support")
        open_signals.update(cleared_at=now, cleared_how="closed by staff")
    return ActionOutcome.DONE, text.done


_HANDLERS: dict[str, Handler] = {
    "retry_setup": _retry_setup, "complete_workspace": _complete_workspace, "send_code_sms": _send_code_sms,
    "fulfil_from_charge": _fulfil_from_charge, "refund": _refund, "grant_credit": _grant_credit, "merge": _merge,
    "close": _close,
}


