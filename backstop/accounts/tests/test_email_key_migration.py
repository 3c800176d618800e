"""The email key's move to IDNA, run on real rows: accounts re-keyed, billing rows and messages given their keys, and
every row two customers could share left unlinked and written to the report, never merged."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.apps.registry import Apps
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from backstop.accounts.models import Account, EmailKeyCollision
from backstop.attention.models import AttentionKind, AttentionRecord, Harm
from backstop.billing.models import Entitlement, Order, Product, PurchaseAttempt
from backstop.lib.email_identity import email_key
from backstop.notify.models import LocalMailboxItem, Message
from backstop.support.automation import run_support_cycle
from backstop.support.models import Case, CaseState, Contact

BEFORE = [
    ("accounts", "0003_email_key_collision"), ("billing", "0004_buyer_email_key"), ("notify", "0004_recipient_key"),
    ("support", "0004_attention_kind_refund_partial"),
]


def _migrate(targets: list[tuple[str, str]]) -> Apps:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _latest() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.fixture
def before_idna(transactional_db: Any) -> Iterator[Apps]:
    """The database as it was before the three fills, with the models of that moment; migrated to the end after."""
    try:
        yield _migrate(BEFORE)
    finally:
        _migrate(_latest())


def _account(apps: Apps, email: str, old_key: str) -> Any:
    return apps.get_model("accounts", "Account").objects.create(
        email=email, email_key=old_key, name="Ann", company="Co", password="!")


def _purchase(apps: Apps, email: str, n: int, *, account: Any = None, paid: bool = False) -> Any:
    product = apps.get_model("billing", "Product").objects.get_or_create(
        code="migration-plan", defaults={"name": "Plan", "amount_cents": 100, "period_days": 30})[0]
    attempt = apps.get_model("billing", "PurchaseAttempt").objects.create(
        reference=f"BK-MIGRA-{n:05d}", idempotency_key=f"migration-{n}", request_fingerprint="x", product=product,
        amount_cents=100, currency="usd", email=email, account=account, payment_method="pm_card_visa")
    if paid:
        now = timezone.now()
        order = apps.get_model("billing", "Order").objects.create(
            reference=attempt.reference, attempt=attempt, product=product, email=email, account=account,
            amount_cents=100, currency="usd", payment_id=f"pi_migration_{n}", payment_created_at=now,
            fulfilled_by="checkout")
        apps.get_model("billing", "Entitlement").objects.create(
            order=order, product=product, email=email, account=account, starts_at=now,
            ends_at=now + dt.timedelta(days=30))
    return attempt


def test_it_rekeys_accounts_and_keys_billing_rows_and_reports_every_row_two_customers_share(
    before_idna: Apps,
) -> None:
    apps = before_idna
    # Two sign-ups that were two keys and are one customer under IDNA: a collision.
    unicode_form = _account(apps, "Anna@Bücher.example", "anna@bücher.example")
    ascii_form = _account(apps, "anna@xn--bcher-kva.example", "anna@xn--bcher-kva.example")
    # ß used to fold to "ss"; now the domain keeps it, in its ASCII form. Nobody else claims it: re-keyed.
    eszett = _account(apps, "post@straße.de", "post@strasse.de")
    plain = _account(apps, "Plain@Example.com", "plain@example.com")

    contested = _purchase(apps, "ANNA@bücher.example", 1, paid=True)
    of_eszett = _purchase(apps, "post@straße.de", 2, account=eszett, paid=True)
    of_plain = _purchase(apps, "PLAIN@example.COM", 3, paid=True)
    # Typed with "ss": one customer with post@straße.de under the old key, another under the new; nobody's now.
    ascii_strasse = _purchase(apps, "post@strasse.de", 4)
    message_model = apps.get_model("notify", "Message")
    contested_message = message_model.objects.create(
        key="migration:1", channel="email", kind="welcome", to="anna@bücher.example", text="hi")
    sms = message_model.objects.create(key="migration:2", channel="sms", kind="code", to="+14155550100", text="1")
    mailbox_item = apps.get_model("notify", "LocalMailboxItem").objects.create(
        channel="email", to="Anna@Bücher.example", text="hi")

    _migrate(_latest())

    keys = dict(Account.objects.values_list("pk", "email_key"))
    assert keys[unicode_form.pk] == "anna@bücher.example"  # kept: moving it would make it the other account
    assert keys[ascii_form.pk] == "anna@xn--bcher-kva.example"
    assert keys[eszett.pk] == "post@xn--strae-oqa.de"
    assert keys[plain.pk] == "plain@example.com"
    assert len(set(keys.values())) == len(keys)

    for model in (PurchaseAttempt, Order, Entitlement):
        assert model.objects.get(email__startswith="ANNA").email_key == ""  # unlinked, for a person
        assert model.objects.get(email="post@straße.de").email_key == "post@xn--strae-oqa.de"
        assert model.objects.get(email="PLAIN@example.COM").email_key == "plain@example.com"
    assert PurchaseAttempt.objects.get(pk=ascii_strasse.pk).email_key == "post@strasse.de"
    assert PurchaseAttempt.objects.get(pk=of_eszett.pk).account_id == eszett.pk
    assert Message.objects.get(pk=contested_message.pk).to_key == ""
    assert Message.objects.get(pk=sms.pk).to_key == "+14155550100"
    assert LocalMailboxItem.objects.get(pk=mailbox_item.pk).to_key == "anna@xn--bcher-kva.example"

    reported = {(row.table, row.row_id): row for row in EmailKeyCollision.objects.all()}
    contested_order = Order.objects.get(attempt_id=contested.pk)
    assert set(reported) == {
        ("accounts.Account", unicode_form.pk), ("accounts.Account", ascii_form.pk),
        ("billing.PurchaseAttempt", contested.pk), ("billing.Order", contested_order.pk),
        ("billing.Entitlement", Entitlement.objects.get(order=contested_order).pk),
        ("notify.Message", contested_message.pk),
    }
    for row in reported.values():
        assert row.account_ids == sorted([unicode_form.pk, ascii_form.pk])
        assert row.new_key == "anna@xn--bcher-kva.example"
        assert row.resolved_at is None
    assert ("billing.PurchaseAttempt", of_plain.pk) not in reported  # ids repeat across tables: compare both

    out = StringIO()
    with pytest.raises(SystemExit) as exit_code:
        call_command("email_key_collisions", stdout=out)
    assert exit_code.value.code == 1
    listing = out.getvalue()
    assert f"accounts.Account {unicode_form.pk} <Anna@Bücher.example>" in listing
    assert "6 listed, 6 unresolved" in listing


def test_it_leaves_no_report_when_no_two_customers_share_a_key(before_idna: Apps) -> None:
    _account(before_idna, "solo@bücher.example", "solo@bücher.example")
    _purchase(before_idna, "Solo@Bücher.example", 1, paid=True)

    _migrate(_latest())

    assert Account.objects.get().email_key == "solo@xn--bcher-kva.example"
    assert PurchaseAttempt.objects.get().email_key == "solo@xn--bcher-kva.example"
    assert not EmailKeyCollision.objects.exists()
    out = StringIO()
    call_command("email_key_collisions", stdout=out)
    assert "0 listed, 0 unresolved" in out.getvalue()


@pytest.mark.django_db
def test_it_keys_new_rows_as_they_are_written_whichever_form_the_domain_was_typed_in() -> None:
    product = Product.objects.create(code="keyed-plan", name="Plan", amount_cents=100, period_days=30)
    fields = {"request_fingerprint": "x", "product": product, "amount_cents": 100, "currency": "usd",
              "payment_method": "pm_card_visa"}
    saved = PurchaseAttempt.objects.create(idempotency_key="keyed-1", email="Anna@Bücher.example", **fields)
    PurchaseAttempt.objects.bulk_create([PurchaseAttempt(idempotency_key="keyed-2", email="ANNA@xn--bcher-kva.example",
                                                         **fields)])
    found = PurchaseAttempt.objects.filter(email_key=email_key("anna@XN--BCHER-KVA.example"))
    assert sorted(found.values_list("idempotency_key", flat=True)) == ["keyed-1", "keyed-2"]
    # A later save never recomputes the key: a row the migration left unlinked stays so.
    PurchaseAttempt.objects.filter(pk=saved.pk).update(email_key="")
    saved.refresh_from_db()
    saved.save()
    assert PurchaseAttempt.objects.get(pk=saved.pk).email_key == ""
    assert not PurchaseAttempt.objects.filter(email_key="").exclude(pk=saved.pk).exists()

    Message.objects.create(key="keyed:1", channel="email", kind="welcome", to="anna@bücher.example", text="hi")
    assert list(Message.objects.to_customer("ANNA@xn--bcher-kva.example").values_list("key", flat=True)) == ["keyed:1"]
    assert not Message.objects.to_customer("anna@strasse.example").exists()
    assert not Account.objects.filter(email_key=email_key("x@straße.de")).exists()


def test_it_rekeys_support_cases_but_never_makes_two_open_cases_one_customers(before_idna: Apps) -> None:
    apps = before_idna
    eszett = _account(apps, "post@straße.de", "post@strasse.de")
    case_model, contact_model = apps.get_model("support", "Case"), apps.get_model("support", "Contact")
    # Two open cases of addresses that were two customers and are one under IDNA: the desk keeps one open case per
    # customer, so the one that would move stays where it is, for a person.
    typed_unicode = case_model.objects.create(customer_key="zoe@bücher.example", email="zoe@bücher.example")
    typed_ascii = case_model.objects.create(customer_key="zoe@xn--bcher-kva.example", email="zoe@xn--bcher-kva.example")
    # A resolved one moves freely: no rule keeps one closed case per customer.
    resolved = case_model.objects.create(customer_key="old@bücher.example", email="old@bücher.example",
                                         state="resolved")
    of_account = case_model.objects.create(customer_key="post@strasse.de", email="post@straße.de", account=eszett)
    contact = contact_model.objects.create(
        case=of_account, email="POST@STRASSE.de", customer_key="post@strasse.de", account=eszett, text="hello",
        our_reference="S-MIGRATE1", public_reply="", private_reply="")
    unmatched = case_model.objects.create(customer_key="unmatched:7", email="")

    _migrate(_latest())

    keys = dict(Case.objects.values_list("pk", "customer_key"))
    assert keys[typed_unicode.pk] == "zoe@bücher.example"
    assert keys[typed_ascii.pk] == "zoe@xn--bcher-kva.example"
    assert keys[resolved.pk] == "old@xn--bcher-kva.example"
    assert keys[of_account.pk] == "post@xn--strae-oqa.de" == Account.objects.get(pk=eszett.pk).email_key
    assert keys[unmatched.pk] == "unmatched:7"
    # The contact stays with its account's case, whichever form of the address it was typed in.
    assert Contact.objects.get(pk=contact.pk).customer_key == "post@xn--strae-oqa.de"
    report = EmailKeyCollision.objects.get()
    assert (report.table, report.row_id, report.new_key) == ("support.Case", typed_unicode.pk,
                                                             "zoe@xn--bcher-kva.example")


def test_it_keeps_a_contact_with_its_case_when_the_case_keeps_its_old_key(before_idna: Apps) -> None:
    apps = before_idna
    case_model, contact_model = apps.get_model("support", "Case"), apps.get_model("support", "Contact")
    # Two people without an account wrote in, each typing the domain in one form: two open cases, one customer under
    # IDNA. The case that would be the second open one keeps its old key; what its customer wrote must stay on its
    # page (the desk lists a case's contacts by its customer key), not move to the other case's customer.
    kept = case_model.objects.create(customer_key="nobody@bücher.example", email="nobody@bücher.example")
    moved_to = case_model.objects.create(customer_key="nobody@xn--bcher-kva.example",
                                         email="NOBODY@xn--bcher-kva.example")
    wrote_kept = contact_model.objects.create(
        case=kept, email="nobody@bücher.example", customer_key="nobody@bücher.example", text="who am I",
        our_reference="S-MIGRATE2", public_reply="", private_reply="")
    wrote_other = contact_model.objects.create(
        case=moved_to, email="NOBODY@xn--bcher-kva.example", customer_key="nobody@xn--bcher-kva.example",
        text="again me", our_reference="S-MIGRATE3", public_reply="", private_reply="")

    _migrate(_latest())

    assert Case.objects.get(pk=kept.pk).customer_key == "nobody@bücher.example"
    assert Contact.objects.get(pk=wrote_kept.pk).customer_key == "nobody@bücher.example"
    assert Contact.objects.get(pk=wrote_other.pk).customer_key == "nobody@xn--bcher-kva.example"
    assert list(Contact.objects.filter(customer_key=Case.objects.get(pk=kept.pk).customer_key)
                .values_list("pk", flat=True)) == [wrote_kept.pk]


def test_it_puts_both_accounts_of_a_shared_key_on_the_desk_as_locked_out(before_idna: Apps) -> None:
    # Two sign-ups, one customer under IDNA: the one that keeps its old key can no longer be reached by typing it.
    unicode_form = _account(before_idna, "Gus@Bücher.example", "gus@bücher.example")
    ascii_form = _account(before_idna, "gus@xn--bcher-kva.example", "gus@xn--bcher-kva.example")
    lone = _account(before_idna, "Lone@Bücher.example", "lone@bücher.example")  # re-keyed, nobody else: no record

    _migrate(_latest())

    records = {record.account_id: record for record in AttentionRecord.objects.filter(
        kind=AttentionKind.EMAIL_KEY_SHARED, resolved_at__isnull=True)}
    assert set(records) == {unicode_form.pk, ascii_form.pk}
    assert lone.pk not in records
    record = records[unicode_form.pk]
    assert record.harm == Harm.LOCKED_OUT
    assert "gus@xn--bcher-kva.example" in record.summary and str(ascii_form.pk) in record.summary
    assert record.detail["other_accounts"] == [ascii_form.pk]

    run_support_cycle()  # the desk's catch-up joins records raised without a signal, as it does for any
    case = Case.objects.get(account_id=unicode_form.pk, state=CaseState.OPEN)
    assert case.harm == Harm.LOCKED_OUT
    assert case in Case.objects.queue()
