"""Staff signing in land on the desk, not on the customer's home page (which is blank for them: no company, no
workspace, no link onward). Seen in the demo: the printed staff sign-in led to a page saying only "Backstop"."""

from __future__ import annotations

import pytest
from django.test import Client

from backstop.accounts.staff import ensure_staff_account
from backstop.accounts.tests.test_pages import ANN, PASSWORD, submit

pytestmark = pytest.mark.usefixtures("local_mailbox", "workflows_finish_before_cleanup")


@pytest.mark.django_db
def test_it_takes_staff_to_the_desk_after_signing_in() -> None:
    ensure_staff_account(email="agent@backstop.localhost", password=PASSWORD)
    staff = Client(enforce_csrf_checks=True)

    signed_in = submit(staff, "/login", {"email": "agent@backstop.localhost", "password": PASSWORD})

    assert signed_in.status_code == 302 and signed_in["Location"] == "/desk"
    assert staff.get("/").headers["Location"] == "/desk"
    assert staff.get("/desk").status_code == 200


@pytest.mark.django_db
def test_it_still_takes_a_customer_to_their_home_page() -> None:
    customer = Client(enforce_csrf_checks=True)
    assert submit(customer, "/signup", ANN).status_code == 302
    customer.logout()

    signed_in = submit(customer, "/login", {"email": ANN["email"], "password": PASSWORD})

    assert signed_in.status_code == 302 and signed_in["Location"] in ("/app", "/setup")
