"""Smaller rules: buying signed in, the crash fault's reach, payment settings checks, the progress bar."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.billing.checks import check_payment_settings
from backstop.billing.management.commands.reconcile import ProgressBar
from backstop.billing.models import AttemptState, Order, PurchaseAttempt
from backstop.billing.tests.conftest import annual_plan, settled
from backstop.demo.faults import parse_faults


def test_it_buys_for_the_signed_in_account(engine_db: str, processor: Any) -> None:
    annual_plan()
    account = Account.objects.create(email="Ann@Example.com", email_key="ann@example.com", name="Ann",
                                     company="Acme", state="active", activated_at=timezone.now())
    browser = Client()
    browser.force_login(account)

    answer = browser.post("/api/checkout", {"product": "annual", "email": "someone-else@example.com"},
                          content_type="application/json", HTTP_IDEMPOTENCY_KEY="signed-in-1")

    assert answer.status_code in (200, 202), answer.content
    attempt = settled(PurchaseAttempt.objects.get(), AttemptState.FULFILLED)
    assert (attempt.account_id, attempt.email) == (account.pk, "Ann@example.com")
    assert Order.objects.get(attempt=attempt).account_id == account.pk
    assert account.entitlements.filter(state="active").count() == 1


@pytest.mark.django_db
def test_it_answers_a_product_code_no_product_could_have_as_unknown() -> None:
    annual_plan()
    for code in ("annual\x00", "annual plan", "x" * 41):
        answer = Client().post("/api/checkout", {"product": code, "email": "ann@example.com"},
                               content_type="application/json", HTTP_IDEMPOTENCY_KEY=f"odd-code-{len(code)}")

        assert answer.status_code == 400, answer.content
        assert answer.json()["fields"]["product"] == "Choose a plan that's on sale."
    assert not PurchaseAttempt.objects.exists()


def test_it_offers_the_crash_fault_for_payments_only() -> None:
    assert parse_faults("payments=crash_after_charge") == {"payments": "crash_after_charge"}
    with pytest.raises(ValueError, match="unknown mode 'crash_after_charge' for email"):
        parse_faults("email=crash_after_charge")


def test_it_refuses_stripe_mode_without_real_keys() -> None:
    with override_settings(PAYMENTS_PROVIDER="stripe", STRIPE_API_KEY="sk_test_fakepay",
                           STRIPE_WEBHOOK_SECRET="whsec_fakepay_local"):
        ids = {problem.id for problem in check_payment_settings()}
    assert ids == {"backstop.E101", "backstop.E102"}
    with override_settings(PAYMENTS_PROVIDER="stripe", STRIPE_API_KEY="sk_live_real", STRIPE_WEBHOOK_SECRET="whsec_x"):
        assert check_payment_settings() == []
    assert check_payment_settings() == []  # fakepay with its own defaults is fine


def test_it_draws_how_far_back_reconciliation_has_read() -> None:
    stream = io.StringIO()
    until = dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
    bar = ProgressBar(stream, since=until - dt.timedelta(days=30), until=until)

    bar(100, until - dt.timedelta(days=15))
    bar.finish()

    line = stream.getvalue()
    assert line.startswith("\r[###############...............]  50%")
    assert "100 payments" in line and "back to 2026-01-16" in line
