"""Builders shared by the support tests: accounts in each state, staff, and a signed-in desk client."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from backstop.accounts import signup
from backstop.accounts.models import Account, AccountState, SetupStep, StepName, StepStatus
from backstop.accounts.validation import clean_signup
from backstop.attention import services as attention
from backstop.attention.models import AttentionKind, Harm, provider_cause
from backstop.runtime.models import BreakerState, CircuitBreaker
from backstop.support.models import Case
from backstop.workspaces.providers import LocalProvisioner

_numbers = itertools.count(1)


def new_account(email: str, *, name: str = "Ann Lee", phone: str = "+1 415 555 0100") -> Account:
    """An account exactly as signup writes it; with the workflow engine running, its setup starts on commit."""
    data = clean_signup(name=name, email=email, phone=phone, company="Acme", password="correct horse battery")
    return signup._create_account(data, make_password(None))


def stalled_account(email: str, *, error: str = "the workspace provider answered with an error") -> Account:
    """An account whose setup ran out of retries, written directly (no workflow): needs_attention, record raised."""
    account = Account.objects.create(email=email, email_key=email.lower(), name="Bob Stone", company="Bobco",
                                     phone="+1 415 555 0101", state=AccountState.NEEDS_ATTENTION)
    SetupStep.objects.create(account=account, name=StepName.WORKSPACE, status=StepStatus.FAILED, attempts=4,
                             last_error=error)
    SetupStep.objects.create(account=account, name=StepName.WELCOME_EMAIL, status=StepStatus.DONE, attempts=1,
                             done_at=timezone.now())
    attention.raise_once(
        kind=AttentionKind.SETUP_STALLED, harm=Harm.LOCKED_OUT, cause=provider_cause("workspace"), account=account,
        detail={"workspace": {"attempts": 4, "last_error": error}},
        summary=f"Workspace for {email} could not be created after 4 attempts: {error}",
    )
    return account


def finish_setup(account: Account) -> None:
    """What the setup workflow leaves behind when it finally succeeds (for tests that run no workflow)."""
    now = timezone.now()
    SetupStep.objects.filter(account=account).update(status=StepStatus.DONE, done_at=now, last_error="")
    Account.objects.filter(pk=account.pk).update(state=AccountState.ACTIVE, activated_at=now)
    attention.resolve(kind=AttentionKind.SETUP_STALLED, account_ids=[account.pk], how="setup finished")


def staff_account(*, email: str = "agent@backstop.localhost", name: str = "Sam Agent",
                  permissions: tuple[str, ...] = ("view_case", "change_case"), is_staff: bool = True) -> Account:
    account = Account.objects.create(email=email, email_key=email.lower(), name=name, company="Backstop",
                                     state=AccountState.ACTIVE, is_staff=is_staff)
    account.user_permissions.add(*Permission.objects.filter(content_type__app_label="support",
                                                            codename__in=permissions))
    return Account.objects.get(pk=account.pk)  # fresh: no cached permissions


class DeskClient(Client):
    """A signed-in staff browser. A desk action's form carries the version of the case its page showed; a test that
    names a click (``idempotency_key``, as the older tests do) stands for the page it was made on: the first post of
    that name takes the case's version at that moment, a repeat of the name (a double click, a second tab of that
    page) posts the same version again."""

    def __init__(self) -> None:
        super().__init__()
        self.pages: dict[tuple[str, str], int] = {}

    def post(self, path: str, data: Any = None, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if path.endswith("/act") and isinstance(data, dict) and "idempotency_key" in data:
            data = dict(data)
            click = str(data.pop("idempotency_key"))
            if "case_version" not in data:
                case_id = int(path.rstrip("/").split("/")[-2])
                data["case_version"] = self.pages.setdefault(
                    (path, click), Case.objects.filter(pk=case_id).values_list("version", flat=True).first() or 0)
        return super().post(path, data, *args, **kwargs)


def desk_client(staff: Account) -> Client:
    client = DeskClient()
    client.force_login(staff, backend="django.contrib.auth.backends.ModelBackend")
    return client


def unique_email(prefix: str = "customer") -> str:
    return f"{prefix}{next(_numbers)}@example.com"


def open_breaker(provider: str, *, error: str = "the workspace provider answered with an error",
                 minutes_ago: float = 5) -> CircuitBreaker:
    """A provider down: its breaker open since ``minutes_ago``, next probe far away (no call gets through)."""
    now = timezone.now()
    breaker, _ = CircuitBreaker.objects.update_or_create(provider=provider, defaults={
        "state": BreakerState.OPEN, "consecutive_failures": 10, "last_error": error,
        "opened_at": now - dt.timedelta(minutes=minutes_ago), "retry_at": now + dt.timedelta(hours=1),
        "updated_at": now})
    return breaker


def close_breaker(provider: str) -> None:
    CircuitBreaker.objects.filter(provider=provider).update(state=BreakerState.CLOSED, consecutive_failures=0,
                                                            opened_at=None, retry_at=None)


def suggested_action(page: str) -> str:
    """The action behind the case page's one-click "Suggested" button."""
    match = re.search(r'id="suggested".*?data-action="(\w+)"', page, re.DOTALL)
    assert match, "no suggested action with a button"
    return match.group(1)


def steps_of(account: Account) -> dict[str, str]:
    return dict(SetupStep.objects.filter(account=account).values_list("name", "status"))


def workspace_made_in_the_console(name: str = "Made by hand") -> str:
    """A workspace a person created in the provisioner's own console (the local fake's): its id, as they'd copy it."""
    return LocalProvisioner().provision(idempotency_key=f"console:{name}:{next(_numbers)}", name=name)


def contacts_answered(timeout: float = 30) -> None:
    """Wait until every contact's workflow has answered it (the request only writes the contact down); a test that
    runs no workflow engine does the workflow's work itself."""
    from backstop.runtime import engine
    from backstop.support.contact import answer_contact
    from backstop.support.models import Contact
    from conftest import wait_for

    if not engine.is_running():
        for contact_id in Contact.objects.filter(answered_at__isnull=True).values_list("pk", flat=True):
            answer_contact(contact_id=contact_id)
        return
    wait_for(lambda: not Contact.objects.filter(answered_at__isnull=True).exists(), timeout=timeout,
             message="a contact was not answered by its workflow")
