"""Activating an account: its workspace is ready (made by setup, or by hand by support), so the account is active."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backstop.accounts.models import Account, AccountEvent, AccountState, SetupStep, StepName, StepStatus
from backstop.accounts.timeline import record_event, timeline_entry
from backstop.attention import hooks as attention_hooks
from backstop.attention import services as attention
from backstop.attention.models import AttentionKind
from backstop.notify import services as notify
from backstop.workspaces.models import Workspace


class WorkspaceIdTaken(Exception):
    """The workspace id given by hand already belongs to another account's workspace."""


def _activate(account_ids: list[int], *, delayed: set[int]) -> list[AccountEvent]:
    """Make the accounts active that are not yet; returns the timeline entries to record with it.

    The ``delayed`` accounts (their workspace was not done at its first look) get the "ready" email the setup page
    promises: their owners were told to wait and may have left the page.
    """
    # Rows locked (PostgreSQL) or the write lock held (SQLite): the accounts read here are the ones updated.
    activated = sorted(Account.objects.select_for_update().filter(
        pk__in=account_ids, state__in=(AccountState.SETTING_UP, AccountState.NEEDS_ATTENTION)
    ).values_list("pk", flat=True))
    if not activated:
        return []
    Account.objects.filter(pk__in=activated).update(state=AccountState.ACTIVE, activated_at=timezone.now())
    attention.resolve(kind=AttentionKind.SETUP_STALLED, account_ids=activated, how="setup finished")
    waited = [account_id for account_id in activated if account_id in delayed]
    # Support's own "fixed" email, with the outage's times, tells those whose wait it has on a case.
    told_by_support = attention_hooks.customers_told_by_a_person(waited)
    for account in Account.objects.filter(pk__in=set(waited) - told_by_support):
        _tell_owner_the_workspace_is_ready(account)
    return [timeline_entry(account_id, "activated", "Workspace ready: the account is active.")
            for account_id in activated]


def _tell_owner_the_workspace_is_ready(account: Account) -> None:
    message = notify.create_email(account=account, kind="account_ready", key=f"ready:{account.pk}", to=account.email,
                                  context={"account": account, "login_url": f"{settings.BASE_URL}/login"})
    notify.send_soon(message)


def complete_workspace_by_hand(*, account: Account, external_id: str, by: str) -> bool:
    """Record a workspace a person created by hand in the provider's console, and activate the account.

    True when this call recorded it; False when the account already had its workspace (nothing changed). ``by``: who
    did it, as the timeline says it. Raises WorkspaceIdTaken when the id is another account's workspace.

    Safe against the setup workflow finishing at the same moment: one workspace per account (unique), and every
    state change below only moves rows that have not moved yet.
    """
    now = timezone.now()
    with transaction.atomic():
        if Workspace.objects.filter(account=account).exists():
            return False
        try:
            with transaction.atomic():
                Workspace.objects.create(account=account, name=account.company, external_id=external_id)
        except IntegrityError as error:
            if Workspace.objects.filter(account=account).exists():
                return False
            raise WorkspaceIdTaken(external_id) from error
        SetupStep.objects.filter(account=account, name=StepName.WORKSPACE).exclude(status=StepStatus.DONE).update(
            status=StepStatus.DONE, done_at=now, next_attempt_at=None, last_error="", updated_at=now)
        record_event(account, "workspace_by_hand", f"Workspace {external_id} created by hand by {by}.")
        if Account.objects.filter(pk=account.pk, state__in=(AccountState.SETTING_UP, AccountState.NEEDS_ATTENTION)
                                  ).update(state=AccountState.ACTIVE, activated_at=now):
            record_event(account, "activated", "Workspace ready: the account is active.")
        attention.resolve(kind=AttentionKind.SETUP_STALLED, account_ids=[account.pk],
                          how="workspace completed by hand by support")
    return True
