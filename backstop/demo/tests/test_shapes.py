"""`backstop seed --shape production`: the messy data production holds, made on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.db.models.functions import Length, Lower
from django.test import override_settings

from backstop.accounts.models import Account, AccountEvent, AccountState, SetupStep, StepStatus
from backstop.billing.models import AttemptState, Entitlement, EntitlementState, Order, OrderStatus, PurchaseAttempt
from backstop.demo.shapes import seed_production_shape

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("orphans_removed_after")]


@pytest.fixture
def orphans_removed_after() -> Iterator[None]:
    """Django checks foreign keys before a test's transaction is rolled back: the orphans must go first."""
    yield
    ids = Account.objects.values("pk")
    SetupStep.objects.exclude(account_id__in=ids).delete()
    AccountEvent.objects.exclude(account_id__in=ids).delete()


def test_it_makes_the_mess_production_holds(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("seed", "--shape", "production", "--customers", "400")
    assert "seeded 400 production-shaped customers" in capsys.readouterr().out
    accounts = Account.objects.all()
    assert accounts.count() == 400
    # Case-only duplicates in company names, never in the unique email key.
    lowered = accounts.values(folded=Lower("company")).annotate(spellings=Count("company", distinct=True))
    assert lowered.filter(spellings__gt=1).exists()
    assert accounts.values("email_key").distinct().count() == 400
    # NULLs where old code left them.
    assert accounts.filter(state=AccountState.ACTIVE, email_verified_at__isnull=True).exists()
    assert PurchaseAttempt.objects.filter(account__isnull=True).exists()
    assert PurchaseAttempt.objects.filter(plan_claim__isnull=True).exists()
    # Long, right-to-left, emoji.
    assert accounts.annotate(length=Length("name")).filter(length=150).exists()
    assert any("\u05d0" <= char <= "\u05ea" for name in accounts.values_list("name", flat=True) for char in name)
    assert any(ord(char) >= 0x1F300 for name in accounts.values_list("company", flat=True) for char in name)
    # Every state.
    assert set(accounts.values_list("state", flat=True)) == set(AccountState.values)
    assert set(SetupStep.objects.values_list("status", flat=True)) == set(StepStatus.values)
    assert set(PurchaseAttempt.objects.values_list("state", flat=True)) == set(AttemptState.values)
    assert set(Order.objects.values_list("status", flat=True)) == set(OrderStatus.values)
    assert set(Entitlement.objects.values_list("state", flat=True)) == set(EntitlementState.values)
    # Orphans of a past bug: rows whose account is gone.
    ids = Account.objects.values("pk")
    assert SetupStep.objects.exclude(account_id__in=ids).count() == 3
    assert AccountEvent.objects.exclude(account_id__in=ids).count() == 3


def test_it_makes_the_same_data_from_the_same_seed_and_adds_to_what_is_there() -> None:
    seed_production_shape(customers=30, seed=7)
    columns = ("name", "company", "phone", "state", "email_verified_at")
    first = list(Account.objects.order_by("pk").values_list(*columns))
    seed_production_shape(customers=30, seed=7)
    again = list(Account.objects.order_by("pk").values_list(*columns))
    assert len(again) == 60 and [row[:4] for row in again[30:]] == [row[:4] for row in first]
    assert [row[4] is None for row in again[30:]] == [row[4] is None for row in first]


def test_it_never_seeds_production(settings: Any) -> None:
    with override_settings(MODE="production"), pytest.raises(CommandError, match="never runs"):
        call_command("seed", "--shape", "production", "--customers", "10")
    assert not Account.objects.exists()


def test_it_leaves_the_orphans_out_when_asked() -> None:
    call_command("seed", "--shape", "production", "--customers", "20", "--without-orphans")
    assert not SetupStep.objects.exclude(account_id__in=Account.objects.values("pk")).exists()
    assert SetupStep.objects.count() == 40
