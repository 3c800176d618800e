"""Staff (and automation) actions on a case: each run once per click, audited with the state before and after.

Every action is one entry of STAFF_ACTIONS, at the end of this module: its name, its handler, the parameters it takes
and when it can apply to a case. Its texts are messages.ACTIONS[name]. The desk's buttons and their inputs, the form
that checks what was typed, and run_action's dispatch all read the registry: adding an action is an entry here and
its texts in messages.py.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from backstop.accounts.activation import WorkspaceIdTaken, complete_workspace_by_hand
from backstop.accounts.models import Account, SetupStep, StepStatus
from backstop.accounts.setup import retry_setup
from backstop.accounts.signin import send_sign_in_code
from backstop.accounts.timeline import record_event
from backstop.attention.models import AttentionRecord
from backstop.lib.errors import ProviderError
from backstop.ratelimits.services import RateLimited
from backstop.support import messages, payments, working_states
from backstop.support.cases import clear_fixed_attention, refresh_case
from backstop.support.models import (
    ActionOutcome,
    Case,
    CaseState,
    Commitment,
    Contact,
    Resolution,
    Signal,
    SupportAction,
)
from backstop.workspaces.models import Workspace
from backstop.workspaces.services import workspace_exists_at_provisioner

log = logging.getLogger(__name__)


class ActionRefused(Exception):
    """The action can't run on this case as asked; the text says why, in words staff can act on."""


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
    case = Case.objects.select_related("account", "assigned_to").get(pk=case_id)
    state: dict[str, Any] = {
        "case": {"state": case.state, "harm": case.harm, "kinds": case.kinds, "incident": case.incident_id,
                 "assigned_to": case.assigned_to.email if case.assigned_to else None,
                 "waiting_since": case.waiting_since.isoformat() if case.waiting_since else None,
                 "snoozed_until": case.snoozed_until.isoformat() if case.snoozed_until else None},
    }
    account = case.account
    if account is not None:
        state["account"] = {"state": account.state, "setup_run": account.setup_run,
                            "email_verified": account.email_verified_at is not None}
        state["steps"] = dict(SetupStep.objects.filter(account=account).values_list("name", "status"))
        state["workspace"] = Workspace.objects.filter(account=account).values_list("external_id", flat=True).first()
    state.update(payments.snapshot(email=case.email, account=account))
    return state


def desk_action_key(*, case_id: int, action: str, case_version: int) -> str:
    """The intent of a desk click: this action on this case as it stood when the page was drawn. Two tabs (or two
    colleagues) clicking it on the same version are one intent, so one effect; every action that runs bumps the
    version, so a page drawn after it offers the action again as a new intent. A refused click (nothing changed)
    gives the intent back: the same page, with what was typed corrected, can still make it."""
    return f"desk:{case_id}:{action}:v{case_version}"


def reply_key(*, case_id: int, click: str, case_version: int | None, subject: str, body: str) -> str:
    """The intent of a reply: this text to this case as it stood when the page was drawn (two tabs sending the same
    words are one email; different words are two replies). Without the version (an old form), the click's own key."""
    if case_version is None:
        return f"reply:{click}"
    digest = hashlib.sha256(f"{subject.strip()}\n{body.strip()}".encode()).hexdigest()[:24]
    return f"reply:{case_id}:v{case_version}:{digest}"


def run_action(
    *, case_id: int, staff: Account | None, action: str, key: str = "", case_version: int | None = None,
    params: dict[str, Any] | None = None,
) -> ActionResult:
    """Run one action once per intent, recording who, when, what, and the state before and after.

    Staff give ``case_version`` (the version their page showed): the key is the intent (desk_action_key), whoever
    clicks. Automation gives its own ``key``. A repeat returns the first run (``repeated``), not a second effect.
    """
    if action not in STAFF_ACTIONS:
        raise ActionRefused(messages.ACTION_NOT_AVAILABLE)
    params = params or {}
    if staff is not None:
        if case_version is None:
            raise ActionRefused(messages.ACTION_NOT_AVAILABLE)
        scoped_key = desk_action_key(case_id=case_id, action=action, case_version=case_version)
    else:
        scoped_key = f"auto:{key}"
    scoped_key = scoped_key[:120]
    earlier = SupportAction.objects.filter(idempotency_key=scoped_key).first()
    if earlier is not None:  # the other tab's click: told what happened, nothing run again
        return ActionResult(earlier, repeated=True)
    if staff is not None:
        _refuse_if_it_no_longer_applies(case_id=case_id, action=STAFF_ACTIONS[action])
    try:
        with transaction.atomic():
            record = SupportAction.objects.create(
                idempotency_key=scoped_key, case_id=case_id, staff=staff, action=action, params=params,
                before=snapshot(case_id),
            )
    except IntegrityError:  # a double click, a second tab, or automation's second pass: the first one stands
        return ActionResult(SupportAction.objects.get(idempotency_key=scoped_key), repeated=True)
    if staff is not None:
        Case.objects.filter(pk=case_id, human_touched_at__isnull=True).update(human_touched_at=timezone.now())
    handler = STAFF_ACTIONS[action].handler
    try:
        outcome, note = handler(Case.objects.select_related("account").get(pk=case_id), staff,
                                params | {"action_key": record.idempotency_key})
    except ActionRefused as refused:
        if staff is not None:
            return _record_refusal(record, note=str(refused))
        outcome, note = ActionOutcome.FAILED, str(refused)
    except (RateLimited, payments.PaymentActionFailed) as error:
        outcome, note = ActionOutcome.FAILED, messages.ACTION_FAILED.format(error=str(error).rstrip("."))
    except Exception:
        log.exception("support action #%s (%s on case %s) failed", record.pk, action, case_id)
        outcome, note = ActionOutcome.FAILED, messages.ACTION_BROKE.format(reference=record.pk)
    clear_fixed_attention(case_id=case_id)
    SupportAction.objects.filter(pk=record.pk).update(
        outcome=outcome, note=note[:500], after=snapshot(case_id), finished_at=timezone.now())
    if staff is not None:
        # It ran: a page drawn from now on is a new intent. A page drawn while it ran shows the case as it was before
        # (the old version), so its click of this action is this intent, told what happened, not a second run.
        Case.objects.filter(pk=case_id).update(version=F("version") + 1)
    refresh_case(case_id=case_id)
    record.refresh_from_db()
    return ActionResult(record, repeated=False)


def _record_refusal(record: SupportAction, *, note: str) -> ActionResult:
    """A person's click the handler refused before changing anything (an id the provisioner doesn't know, the
    provider unreachable to check it...): kept for the audit as a refusal, but it gives the intent's key back and
    leaves the case's version alone. The same page's next click, with what was typed corrected, runs (a second tab
    is not told "already done" when nothing was), and colleagues' open pages stay current."""
    SupportAction.objects.filter(pk=record.pk).update(
        idempotency_key=f"refused:{record.pk}", outcome=ActionOutcome.REFUSED, note=note[:500],
        after=record.before, finished_at=timezone.now())
    record.refresh_from_db()
    return ActionResult(record, repeated=False)


def _refuse_if_it_no_longer_applies(*, case_id: int, action: StaffAction) -> None:
    """A person may only run what the desk offers on the case as it is now (the registry's ``applies``), not what a
    stale page or a hand-made request still shows."""
    case = Case.objects.select_related("account", "resolved_by").get(pk=case_id)
    if not case.is_open:
        by = f" by {case.resolved_by.email}" if case.resolved_by is not None else " by automation"
        when = f"{case.resolved_at:%H:%M UTC}" if case.resolved_at else "an earlier moment"
        raise ActionRefused(messages.ACTION_CASE_RESOLVED.format(when=when, by=by))
    if not action.applies(case):
        raise ActionRefused(messages.ACTION_NO_LONGER_APPLIES.format(label=action.text.label))


def repeat_text(result: ActionResult) -> str:
    """What the second tab is told: who ran this intent, when, and how it ended (not an error, not a second run)."""
    first = result.action
    who = first.staff.email if first.staff is not None else "support automation"
    when = f"{first.created_at:%H:%M:%S UTC}"
    if first.finished_at is None:
        return messages.ACTION_ALREADY_STARTED_BY.format(who=who, when=when)
    return messages.ACTION_ALREADY_DONE_BY.format(who=who, when=when, result=first.note)


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
    # An id the provisioner never made would activate an account nothing will ever provision, and the reply would
    # say "it's working now": it is checked at the provisioner first, and refused unless it is known there.
    try:
        known = workspace_exists_at_provisioner(external_id=external_id)
    except ProviderError as error:
        raise ActionRefused(messages.WORKSPACE_ID_UNCHECKED.format(external_id=external_id,
                                                                   error=str(error).rstrip("."))) from error
    if not known:
        raise ActionRefused(messages.WORKSPACE_ID_UNKNOWN.format(external_id=external_id))
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


def _check_processor(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    """Ask the processor now (the desk's page never does) and record what it says beside our own state."""
    text = messages.ACTIONS["check_processor"]
    answers = payments.check_with_processor(case=case, named=str(params.get("payment_id", "")))
    return (ActionOutcome.DONE, text.done.format(answers=answers)) if answers else (ActionOutcome.ALREADY_DONE,
                                                                                    text.already)


def _refund(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["refund"]
    done = payments.refund(case=case, staff=staff, reference=str(params.get("reference", "")),
                           reason=str(params.get("reason", "")))
    return (ActionOutcome.DONE, text.done) if done else (ActionOutcome.ALREADY_DONE, text.already)


def _refund_payment(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["refund_payment"]
    done = payments.refund_payment(case=case, staff=staff, payment_id=str(params.get("payment_id", "")),
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
        Commitment.objects.filter(case=case).update(case_id=target_id)  # what we promised goes with the case
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


# --- The registry ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """A parameter an action takes: the form field that checks what staff typed (the handler says what is missing or
    wrong in its own words), and whether the desk's input asks for it before the form can be sent."""

    name: str
    field: forms.Field
    asked: bool = False


@dataclass(frozen=True)
class FormInput:
    """One input of an action's form on the case page, with its texts."""

    name: str
    placeholder: str
    label: str
    required: bool
    number: bool
    min_value: int | None
    max_length: int | None


@dataclass(frozen=True)
class StaffAction:
    name: str
    handler: Handler
    # Whether the desk offers it on this case (open cases only). run_action refuses a person's click when it no
    # longer applies; automation runs actions the desk would not offer (its handler refuses in its own words).
    applies: Callable[[Case], bool]
    params: tuple[Param, ...] = ()
    # Whether it can finish what "a person will finish it" promised (a setup, a payment's access or its return).
    finishes: bool = False

    @property
    def text(self) -> messages.ActionText:
        return messages.ACTIONS[self.name]

    @property
    def inputs(self) -> list[FormInput]:
        texts = self.text.inputs
        return [FormInput(name=p.name, placeholder=texts[p.name].placeholder, label=texts[p.name].label,
                          required=p.asked, number=isinstance(p.field, forms.IntegerField),
                          min_value=getattr(p.field, "min_value", None),
                          max_length=getattr(p.field, "max_length", None)) for p in self.params]


def _has_unfinished_setup(case: Case) -> bool:
    # Through the account's relation: the case page has its steps prefetched (its setup panel lists them).
    return case.account is not None and any(step.status != StepStatus.DONE for step in case.account.setup_steps.all())


def _has_no_workspace(case: Case) -> bool:
    return case.account is not None and not _fact(
        "has_workspace", lambda: Workspace.objects.filter(account=case.account).exists())


def _has_phone(case: Case) -> bool:
    return case.account is not None and bool(case.account.phone)


# The facts about the customer that more than one predicate asks, answered once while the desk decides what to offer
# on one case (``offered_on``); outside it (run_action's check of one action) each predicate asks for itself.
_page_facts: ContextVar[dict[str, Any] | None] = ContextVar("desk_page_facts", default=None)


def _fact(name: str, ask: Callable[[], bool]) -> bool:
    facts = _page_facts.get()
    if facts is None:
        return ask()
    if name not in facts:
        facts[name] = ask()
    return bool(facts[name])


def _checkouts(case: Case) -> payments.CheckoutFacts:
    facts = _page_facts.get()
    if facts is None:
        return payments.checkout_facts(email=case.email, account=case.account)
    if "checkouts" not in facts:
        facts["checkouts"] = payments.checkout_facts(email=case.email, account=case.account)
    return facts["checkouts"]


def _charge_without_order(case: Case) -> bool:
    return _checkouts(case).charge_without_order


def _has_charge_without_access(case: Case) -> bool:
    return payments.is_about_money(case) or _charge_without_order(case)


def _has_payment_at_processor(case: Case) -> bool:
    return payments.is_about_money(case) or _checkouts(case).payment_at_processor


def _has_paid_order(case: Case) -> bool:
    # A paid order, partly refunded or not: the rest of it can be refunded. A payment without one is refund_payment's.
    return _checkouts(case).paid_order


def _has_payment_to_return(case: Case) -> bool:
    return payments.names_refundable_payment(case) or _charge_without_order(case)


def _has_active_plan(case: Case) -> bool:
    return payments.has_active_plan(email=case.email, account=case.account)


def _has_another_open_case(case: Case) -> bool:
    return case.is_open and Case.objects.filter(state=CaseState.OPEN).exclude(pk=case.pk).exists()


def _is_open(case: Case) -> bool:
    return case.is_open


# As long as the ids we keep (a longer one could not be the provisioner's); checked before anything is asked.
WORKSPACE_ID_MAX_LENGTH: int = Workspace._meta.get_field("external_id").max_length or 100


def _text(**options: Any) -> forms.CharField:
    return forms.CharField(required=False, **options)


STAFF_ACTIONS: dict[str, StaffAction] = {action.name: action for action in (
    StaffAction("retry_setup", _retry_setup, applies=_has_unfinished_setup, finishes=True),
    StaffAction("complete_workspace", _complete_workspace, applies=_has_no_workspace, finishes=True, params=(Param(
        "external_id", _text(max_length=WORKSPACE_ID_MAX_LENGTH,
                             error_messages={"max_length": messages.WORKSPACE_ID_TOO_LONG}), asked=True),)),
    StaffAction("send_code_sms", _send_code_sms, applies=_has_phone),
    StaffAction("fulfil_from_charge", _fulfil_from_charge, applies=_has_charge_without_access, finishes=True,
                params=(Param("payment_id", _text()),)),
    StaffAction("check_processor", _check_processor, applies=_has_payment_at_processor,
                params=(Param("payment_id", _text()),)),
    StaffAction("refund", _refund, applies=_has_paid_order, finishes=True,
                params=(Param("reference", _text()), Param("reason", _text()))),
    StaffAction("refund_payment", _refund_payment, applies=_has_payment_to_return, finishes=True,
                params=(Param("payment_id", _text()), Param("reason", _text()))),
    StaffAction("grant_credit", _grant_credit, applies=_has_active_plan, params=(
        Param("days", forms.IntegerField(required=False, min_value=1, max_value=3650), asked=True),
        Param("reason", _text()))),
    StaffAction("merge", _merge, applies=_has_another_open_case, params=(Param("target", _text(), asked=True),)),
    StaffAction("close", _close, applies=_is_open, params=(Param("note", _text()),)),
    StaffAction("assign_to_me", working_states.assign_to_me, applies=working_states.applies_assign),
    StaffAction("wait_on_customer", working_states.wait_on_customer, applies=working_states.applies_put_aside),
    StaffAction("snooze", working_states.snooze, applies=working_states.applies_put_aside, params=(
        Param("hours", forms.IntegerField(required=False, min_value=1, max_value=working_states.MAX_SNOOZE_HOURS)),)),
    StaffAction("wake", working_states.wake, applies=working_states.applies_wake),
)}


def finishing_actions() -> list[str]:
    """The names of the actions that can finish what a person promised to finish."""
    return [action.name for action in STAFF_ACTIONS.values() if action.finishes]


def offered_on(case: Case, *, known: dict[str, bool] | None = None) -> list[StaffAction]:
    """The actions the desk offers on the case: on an open case, those that can apply to it, in registry order.
    ``known``: facts the page has read already (``has_workspace``), not asked again."""
    if not case.is_open:
        return []
    token = _page_facts.set(dict(known or {}))
    try:
        return [action for action in STAFF_ACTIONS.values() if action.applies(case)]
    finally:
        _page_facts.reset(token)
