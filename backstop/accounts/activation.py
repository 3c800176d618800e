"""Activating an account: its workspace is ready (made by setup, or by hand by support), so the account is active."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from backstop.accounts.models import Account, AccountEvent, AccountState
from backstop.accounts.timeline import timeline_entry
from backstop.notify import services as notify
from backstop.support.models import AttentionKind, AttentionRecord, Signal


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
    AttentionRecord.objects.resolve_for_accounts(account_ids=activated, kind=AttentionKind.SETUP_STALLED,
                                                 how="setup finished")
    waited = [account_id for account_id in activated if account_id in delayed]
    # Support's own "fixed" email, with the outage's times, tells those whose wait it has on a case.
    told_by_support = Signal.objects.accounts_waiting_on_workspace_in_a_case(waited)
    for account in Account.objects.filter(pk__in=set(waited) - told_by_support):
        _tell_owner_the_workspace_is_ready(account)
    return [timeline_entry(account_id, "activated", "Workspace ready: the account is active.")
            for account_id in activated]


def _tell_owner_the_workspace_is_ready(account: Account) -> None:
    message = notify.create_email(account=account, kind="account_ready", key=f"ready:{account.pk}", to=account.email,
                                  context={"account": account, "login_url": f"{settings.BASE_URL}/login"})
    notify.send_soon(message)

