"""The move of AttentionRecord out of support, and its new harm and cause, keep every row of an existing database."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from backstop.attention.models import AttentionKind, AttentionRecord, Harm


def _before_the_move() -> list[tuple[str, str | None]]:
    """The head of main before the attention app existed: every other app at its newest migration."""
    others = [node for node in _latest() if node[0] not in ("attention", "support")]
    return [*others, ("support", "0004_attention_kind_refund_partial"), ("attention", None)]


def _migrate(targets: list[tuple[str, str | None]]) -> Any:
    """Migrate the test database to ``targets``; returns the models as they were at that point."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state([(app, name) for app, name in targets if name is not None]).apps


def _latest() -> list[tuple[str, str | None]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_it_keeps_every_record_and_its_signal_through_the_move_and_fills_harm_and_cause() -> None:
    old = _migrate(_before_the_move())
    try:
        old_fields = {field.name for field in old.get_model("support", "AttentionRecord")._meta.get_fields()}
        assert "kind" in old_fields and not {"harm", "cause"} & old_fields
        account = old.get_model("accounts", "Account").objects.create(
            email="ann@example.com", email_key="ann@example.com", name="Ann", company="Annco")
        record = old.get_model("support", "AttentionRecord").objects
        stalled = record.create(kind="setup_stalled", account=account, summary="stalled", detail={"workspace": {}})
        undelivered = record.create(kind="email_undelivered", account=account, summary="undelivered", detail={})
        unmatched = record.create(kind="payment_unmatched", subject="payment:pi_1", summary="unmatched",
                                  detail={"email": "bo@example.com"})
        unresolved = record.create(kind="payment_unresolved", subject="checkout:BK-1", summary="unresolved",
                                   detail={}, resolution="settled", resolved_at="2026-01-02T03:04:05Z")
        no_payment = record.create(kind="order_without_payment", subject="order:BK-2", summary="no payment",
                                   detail={})
        partial = record.create(kind="refund_partial", subject="refund:pi_2:100", summary="partial",
                                detail={"provider": "payments"})
        case = old.get_model("support", "Case").objects.create(customer_key="ann@example.com",
                                                               email="ann@example.com", account=account)
        signal = old.get_model("support", "Signal").objects.create(
            case=case, kind="setup_stalled", summary="stalled", source=f"attention:{stalled.pk}", attention=stalled)
    finally:
        _migrate(_latest())

    moved = {r.pk: r for r in AttentionRecord.objects.all()}
    assert set(moved) == {stalled.pk, undelivered.pk, unmatched.pk, unresolved.pk, no_payment.pk, partial.pk}
    expected = {
        stalled.pk: (AttentionKind.SETUP_STALLED, Harm.LOCKED_OUT, "provider:workspace"),
        undelivered.pk: (AttentionKind.EMAIL_UNDELIVERED, Harm.DEGRADED, "provider:email"),
        unmatched.pk: (AttentionKind.PAYMENT_UNMATCHED, Harm.MONEY, ""),
        unresolved.pk: (AttentionKind.PAYMENT_UNRESOLVED, Harm.MONEY, ""),
        no_payment.pk: (AttentionKind.ORDER_WITHOUT_PAYMENT, Harm.DEGRADED, ""),
        partial.pk: (AttentionKind.REFUND_PARTIAL, Harm.DEGRADED, "provider:payments"),
    }
    assert {pk: (r.kind, r.harm, r.cause) for pk, r in moved.items()} == expected
    assert moved[stalled.pk].account_id == account.pk and moved[stalled.pk].detail == {"workspace": {}}
    assert moved[unmatched.pk].subject == "payment:pi_1" and moved[unmatched.pk].account_id is None
    assert moved[unresolved.pk].resolution == "settled" and moved[unresolved.pk].resolved_at is not None
    # Support's signal still points at the same row, now attention's model.
    assert apps.get_model("support", "Signal").objects.get(pk=signal.pk).attention == moved[stalled.pk]
    # The constraints came along: a second open record of a kind for the account is refused.
    with pytest.raises(IntegrityError), transaction.atomic():
        AttentionRecord.objects.create(kind=AttentionKind.SETUP_STALLED, harm=Harm.LOCKED_OUT, cause="",
                                       account_id=account.pk, summary="again", detail={})


@pytest.mark.django_db(transaction=True)
def test_it_can_go_back_to_before_the_move_with_the_rows() -> None:
    AttentionRecord.objects.create(kind=AttentionKind.PAYMENT_UNMATCHED, harm=Harm.MONEY, cause="",
                                   subject="payment:pi_9", summary="unmatched", detail={})
    try:
        old = _migrate(_before_the_move())
        rows = list(old.get_model("support", "AttentionRecord").objects.values_list("kind", "subject"))
        assert rows == [("payment_unmatched", "payment:pi_9")]
    finally:
        _migrate(_latest())
    assert AttentionRecord.objects.get().harm == Harm.MONEY
