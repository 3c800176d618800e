from __future__ import annotations

import datetime as dt
import itertools

from django.utils import timezone

from backstop.accounts.models import Account, AccountState, SetupStep, StepName, StepStatus
from backstop.runtime.models import BreakerState, CircuitBreaker

_numbers = itertools.count(1)


def waiting_customer(*, step: str = StepName.WORKSPACE) -> Account:
    """A customer whose setup waits on the provider behind ``step`` (what setup leaves while the breaker is open)."""
    number = next(_numbers)
    email = f"waiting{number}@example.com"
    account = Account.objects.create(email=email, email_key=email, name=f"Customer {number}", company="Acme",
                                     state=AccountState.SETTING_UP)
    SetupStep.objects.create(account=account, name=step, status=StepStatus.WAITING, attempts=2,
                             last_error="the provider answered with an error")
    return account


def break_provider(provider: str, *, minutes_ago: float = 5, error: str = "503 from the provider") -> CircuitBreaker:
    now = timezone.now()
    breaker, _ = CircuitBreaker.objects.update_or_create(provider=provider, defaults={
        "state": BreakerState.OPEN, "consecutive_failures": 10, "last_error": error,
        "failing_since": now - dt.timedelta(minutes=minutes_ago + 1),
        "opened_at": now - dt.timedelta(minutes=minutes_ago), "retry_at": now + dt.timedelta(hours=1),
        "recovered_at": None, "updated_at": now})
    return breaker


def recover_provider(provider: str, *, seconds_ago: float = 0) -> None:
    now = timezone.now()
    CircuitBreaker.objects.filter(provider=provider).update(
        state=BreakerState.CLOSED, consecutive_failures=0, opened_at=None, retry_at=None,
        recovered_at=now - dt.timedelta(seconds=seconds_ago), updated_at=now)


def finish_waiting(account: Account) -> None:
    SetupStep.objects.filter(account=account).update(status=StepStatus.DONE, done_at=timezone.now())


def staff(email: str = "oncall@backstop.localhost") -> Account:
    from django.contrib.auth.models import Permission

    account = Account.objects.create(email=email, email_key=email, name="Ada Oncall", company="Backstop",
                                     state=AccountState.ACTIVE, is_staff=True)
    account.user_permissions.add(Permission.objects.get(content_type__app_label="incidents",
                                                        codename="change_incident"))
    return Account.objects.get(pk=account.pk)


def make_paying(account: Account) -> None:
    """The customer holds a paid annual plan (an order and its running entitlement), as checkout leaves it."""
    from backstop.billing.models import AttemptState, Entitlement, Order, PurchaseAttempt
    from backstop.billing.tests.conftest import annual_plan

    now = timezone.now()
    attempt = PurchaseAttempt.objects.create(
        idempotency_key=f"paying-{account.pk}", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email=account.email, payment_method="pm_card_visa", state=AttemptState.FULFILLED)
    order = Order.objects.create(reference=attempt.reference, attempt=attempt, product=attempt.product,
                                 email=account.email, account=account, amount_cents=24900, currency="usd",
                                 payment_id=f"pi_paying_{account.pk}", payment_created_at=now, fulfilled_by="checkout")
    Entitlement.objects.create(order=order, product=attempt.product, email=account.email, account=account,
                               starts_at=now, ends_at=now + dt.timedelta(days=365))
