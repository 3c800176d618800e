"""The desk's search box: customers and cases by a fragment of their address, their name, company, phone, an order
reference, a payment id or words of their messages; ranked; kept current by the services that write. In-process, on
whichever database the run uses (FTS5 on SQLite, full-text search and pg_trgm on PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.billing.models import FulfilledBy, Order, PurchaseAttempt
from backstop.billing.tests.conftest import annual_plan
from backstop.support import messages
from backstop.support.actions import run_action
from backstop.support.case_notes import add_case_note
from backstop.support.checks import check_search_indexes
from backstop.support.contact import answer_contact, receive_contact
from backstop.support.models import Case, CaseSearchEntry
from backstop.support.search import reindex_all, search_cases, trigram_index_missing
from backstop.support.tests.helpers import desk_client, staff_account, stalled_account


def _found(query: str) -> list[str]:
    return [hit.case.email for hit in search_cases(query=query).hits]


def _paid_order(email: str, reference: str, payment_id: str) -> Order:
    attempt = PurchaseAttempt.objects.create(
        idempotency_key=f"attempt-{reference}", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email=email, payment_method="pm_card_visa", reference=f"A{reference}")
    return Order.objects.create(
        reference=reference, attempt=attempt, product=attempt.product, email=email, amount_cents=24900,
        currency="usd", payment_id=payment_id, payment_created_at=timezone.now(), fulfilled_by=FulfilledBy.CHECKOUT)


@pytest.mark.django_db
def test_it_finds_a_customer_by_a_fragment_of_their_address_name_company_and_phone() -> None:
    stalled_account("Bob.Stone@Example.com")
    stalled_account("ann.stonewall@example.org")

    assert _found("stone@exa") == ["Bob.Stone@Example.com"]
    assert _found("STONE@EXAMPLE") == ["Bob.Stone@Example.com"]  # case-folded
    assert set(_found("stone")) == {"Bob.Stone@Example.com", "ann.stonewall@example.org"}
    assert "Bob.Stone@Example.com" in _found("Bobco")
    assert "Bob.Stone@Example.com" in _found("bob ston")  # the name, as typed
    assert "Bob.Stone@Example.com" in _found("4155550101")  # the phone without its spaces
    assert _found("nobody-like-this") == []
    assert search_cases(query="nobody-like-this").note == messages.SEARCH_NOTHING.format(query="nobody-like-this")
    assert search_cases(query="bo").note == messages.SEARCH_TOO_SHORT.format(count=3)


@pytest.mark.django_db
def test_it_ranks_the_very_address_first_then_identity_then_open_cases() -> None:
    stalled_account("lee@example.com")
    other = stalled_account("carla@example.com")
    add_case_note(case_id=Case.objects.get(account=other).pk, staff=staff_account(), key="n1",
                  body="Talked to lee@example.com's colleague about the invoice")

    # Both match ("lee@example.com" is in Carla's note), the customer whose address it is comes first.
    assert _found("lee@example.com") == ["lee@example.com", "carla@example.com"]


@pytest.mark.django_db
def test_it_finds_a_case_by_order_reference_and_payment_id_recorded_after_it_opened(
    django_capture_on_commit_callbacks: Any,
) -> None:
    stalled_account("dana@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        _paid_order("Dana@Example.com", "BK-7H2K9Q", "pi_3Nq8ZtQ")

    assert _found("bk-7h2k9q") == ["dana@example.com"]
    assert _found("7H2K") == ["dana@example.com"]
    assert _found("pi_3Nq8Z") == ["dana@example.com"]
    assert search_cases(query="BK-7H2K9Q").hits[0].matched == "bk-7h2k9q"


@pytest.mark.django_db
def test_it_finds_words_in_their_messages_and_notes_and_says_where() -> None:
    stalled_account("eve@example.com")
    contact = receive_contact(email="eve@example.com", text="My invoice shows the wrong company address.",
                              ip="127.0.0.1").contact
    answer_contact(contact_id=contact.pk)  # the contact's workflow, run here: it joins the case
    case = Case.objects.get(customer_key="eve@example.com", state="open")
    add_case_note(case_id=case.pk, staff=staff_account(), key="n1", body="Promised a corrected PDF by Friday")

    hits = search_cases(query="invoice").hits
    assert [hit.case.pk for hit in hits] == [case.pk]
    assert "invoice shows the wrong company" in hits[0].matched
    assert _found("corrected pdf") == ["eve@example.com"]
    assert _found(contact.our_reference) == ["eve@example.com"]  # the reference we gave them


@pytest.mark.django_db
def test_it_finds_resolved_cases_with_their_outcome() -> None:
    account = stalled_account("finn@example.com")
    case = Case.objects.get(account=account)
    result = run_action(case_id=case.pk, staff=staff_account(), action="close", case_version=case.version,
                        params={"note": "Refunded by hand"})
    assert Case.objects.get(pk=case.pk).state == "resolved", result.note

    hit = search_cases(query="finn@").hits[0]
    assert hit.case.pk == case.pk
    assert hit.outcome.startswith("Resolved ") and "closed by staff" in hit.outcome
    assert "Refunded by hand" in hit.outcome
    assert _found("refunded by hand") == ["finn@example.com"]  # the closing note is searched too


@pytest.mark.django_db
def test_it_rebuilds_every_entry_and_finds_the_same() -> None:
    stalled_account("gus@example.com")
    CaseSearchEntry.objects.all().delete()
    assert _found("gus@") == []
    assert reindex_all() == 1
    assert _found("gus@") == ["gus@example.com"]
    assert not trigram_index_missing()  # on PostgreSQL the migration created pg_trgm and its index


@pytest.mark.django_db
def test_it_answers_the_page_and_the_typing_box_to_staff_only() -> None:
    stalled_account("hana@example.com")
    staff = desk_client(staff_account())

    partial = staff.get("/desk/search", {"q": "hana@", "partial": "1"})
    assert partial.status_code == 200
    assert b"hana@example.com" in partial.content and b"<html" not in partial.content
    page = staff.get("/desk/search", {"q": "<b>hana"})
    assert page.status_code == 200 and b'id="desk-search-q"' in page.content
    assert b"<b>hana" not in page.content  # the query is escaped where it is shown
    for path in ("/desk", f"/desk/cases/{Case.objects.get().pk}"):
        assert b'id="desk-search-q"' in staff.get(path).content  # one box on every desk page

    customer = desk_client(Account.objects.get(email="hana@example.com"))
    assert customer.get("/desk/search", {"q": "hana@"}).status_code == 403


@pytest.mark.django_db
def test_it_warns_when_postgresql_has_no_trigram_index() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the trigram index is PostgreSQL's; SQLite searches through FTS5")
    assert check_search_indexes(databases=["default"]) == []
    with connection.cursor() as cursor:  # rolled back with the test's transaction (PostgreSQL's DDL is transactional)
        cursor.execute("DROP INDEX support_casesearch_identity_trgm")
    assert [warning.id for warning in check_search_indexes(databases=["default"])] == ["backstop.W201"]
    stalled_account("ivy@example.com")
    assert _found("ivy@exa") == ["ivy@example.com"]  # still found, by a scan
