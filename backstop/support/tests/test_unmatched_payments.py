"""A payment that matches none of our checkouts, from an address of an existing account: the desk finds the account
by email identity (case, Unicode or ASCII domain), not by the raw text the buyer typed at the processor."""

from __future__ import annotations

import html

import pytest

from backstop.accounts.models import Account, AccountState
from backstop.billing.reconcile import reconcile_payments
from backstop.billing.tests.conftest import processor, stripe_client  # noqa: F401
from backstop.lib.email_identity import email_key
from backstop.support.models import Case
from backstop.support.tests.helpers import desk_client, staff_account

pytestmark = pytest.mark.usefixtures("engine_db", "processor")


def test_it_finds_the_account_of_an_unmatched_payment_by_email_identity() -> None:
    account = Account.objects.create(email="Hal@Bücher.example", email_key=email_key("Hal@Bücher.example"),
                                     name="Hal Berg", company="Bücher GmbH", state=AccountState.ACTIVE)
    stripe_client().charge(
        amount=4900, currency="usd", payment_method="pm_card_visa", email="HAL@xn--bcher-kva.example",
        description="made in the processor's dashboard", idempotency_key="dashboard-hal", metadata={})
    reconcile_payments(actor="test", full=True)  # no checkout explains it: a record, and a case, for a person

    case = Case.objects.get()
    assert case.account == account and case.customer_key == account.email_key
    page = html.unescape(desk_client(staff_account()).get(f"/desk/cases/{case.pk}").content.decode())
    assert "No account for this address" not in page
    assert "Hal Berg" in page and "Bücher GmbH" in page
