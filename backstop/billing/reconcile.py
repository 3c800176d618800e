"""Reconciliation: our books against the processor's, in both directions.

1. Checkouts that never settled (in doubt, or whose workflow died mid-charge) are looked up at the processor
   and settled: charged -> fulfilled (with the apologetic email), failed or never charged -> the buyer is told.
2. Processor payments and local orders are walked together, newest first, grouped by the payment's creation
   second. Memory holds a few pages of payments, one second's worth of orders, and a bounded queue of
   discrepancies, which a second thread fixes while the walk goes on:
   - a succeeded payment with no order is fulfilled when its metadata names our checkout, otherwise support
     gets an attention record with the amount, email, payment id and time;
   - an order whose payment the processor doesn't have is flagged for support.
3. Refunded totals, both ways, from the processor's refund list (by the refunds' own creation time, so a refund of
   an old payment is found by the run after it): the processor refunded more than our books say -> applied (the
   order mirrors it, or the total waits for its order); our books say more than the processor -> an attention
   record for a person, never undone by a machine. Each suspect payment is looked up before anything changes.

Incremental runs start at the stored watermark minus an overlap (late writes on either side are caught on
the next run); payments younger than RECONCILE_SETTLE_SECONDS are left to their own checkout and webhook.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, connections
from django.db.models import Min
from django.utils import timezone

from backstop.attention import services as attention
from backstop.attention.models import AttentionKind, Harm
from backstop.billing import charging, checkout, fulfilment, processor_status, refunds
from backstop.billing.messages import REFUND_UNCONFIRMED_SUMMARY
from backstop.billing.models import (
    AttemptState,
    FulfilledBy,
    KnownRefund,
    LearntFrom,
    Order,
    PurchaseAttempt,
    ReconciliationWatermark,
    purchase_workflow_id,
)
from backstop.billing.outcome import money
from backstop.billing.providers import PaymentProcessor, ProcessorPayment, payment_processor
from backstop.lib.errors import ProviderError
from backstop.runtime import dispatch
from backstop.runtime.guarded import Attention, raise_attention_record

log = logging.getLogger(__name__)

WATERMARK = "payments"
LOCAL_CHUNK = 2000
PREFETCH_PAGES = 4
FIX_QUEUE = 1000
# A window shorter than this is walked in one piece (the second walk would not pay for itself).
MIN_SLICED_WINDOW = dt.timedelta(seconds=30)
FAILED_PAYMENT_STATUSES = {"requires_payment_method", "canceled"}

ProgressCallback = Callable[[int, dt.datetime | None], None]


@dataclass
class ReconcileSummary:
    mode: str
    since: dt.datetime | None
    until: dt.datetime
    payments_seen: int = 0
    orders_matched: int = 0
    orders_recreated: int = 0
    payments_unmatched: int = 0
    orders_without_payment: int = 0
    refunds_applied: int = 0
    refunds_unconfirmed: int = 0
    in_doubt_charged: int = 0
    in_doubt_declined: int = 0
    in_doubt_not_charged: int = 0
    workflows_restarted: int = 0
    still_unresolved: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        data["until"] = self.until.isoformat()
        return data

    def needs_a_person(self) -> list[str]:
        """What this run found and could not fix by itself, in words (empty when the books agree)."""
        found = [(self.payments_unmatched, "payment{s} matching no checkout"),
                 (self.orders_without_payment, "order{s} without a payment"),
                 (self.still_unresolved, "checkout{s} still unsettled")]
        return [f"{count:,} {what.format(s='' if count == 1 else 's')}" for count, what in found if count]

    def lines(self) -> list[str]:
        window = f"{self.since:%Y-%m-%d %H:%M:%S} UTC" if self.since else "the beginning"
        lines = [
            f"Reconciled payments created from {window} to {self.until:%Y-%m-%d %H:%M:%S} UTC "
            f"({self.mode}) in {self.seconds:.1f} s.",
            f"  processor payments checked:             {self.payments_seen:,}",
            f"  orders matching a payment:              {self.orders_matched:,}",
            f"  paid without an order, now fulfilled:   {self.orders_recreated:,}",
            f"  payments matching no checkout (support): {self.payments_unmatched:,}",
            f"  orders with no payment (support):       {self.orders_without_payment:,}",
            f"  refunds at the processor, now applied:  {self.refunds_applied:,}",
            f"  refunded here, not at processor (support): {self.refunds_unconfirmed:,}",
            f"  in-doubt checkouts charged -> fulfilled: {self.in_doubt_charged:,}",
            f"  in-doubt checkouts declined:            {self.in_doubt_declined:,}",
            f"  in-doubt checkouts never charged:       {self.in_doubt_not_charged:,}",
            f"  stalled checkouts restarted:            {self.workflows_restarted:,}",
            f"  checkouts still unsettled:              {self.still_unresolved:,}",
        ]
        lines += [f"  problem: {problem}" for problem in self.problems]
        return lines


def reconcile_payments(
    *, actor: str, full: bool = False, since: dt.datetime | None = None, progress: ProgressCallback | None = None,
    processor: PaymentProcessor | None = None,
) -> ReconcileSummary:
    """One reconciliation run; safe alongside others, the checkout workflow and webhooks."""
    started = time.monotonic()
    processor = processor or payment_processor()
    now = timezone.now()
    until = now - dt.timedelta(seconds=settings.RECONCILE_SETTLE_SECONDS)
    mode = "full" if full else ("since" if since is not None else "incremental")
    if not full and since is None:
        watermark = ReconciliationWatermark.objects.reconciled_until(WATERMARK)
        since = watermark - dt.timedelta(seconds=settings.RECONCILE_OVERLAP_SECONDS) if watermark else None
    summary = ReconcileSummary(mode=mode, since=None if full else since, until=until)
    _settle_open_checkouts(summary, processor, now=now, actor=actor)
    try:
        _compare_books(summary, processor, actor=actor, progress=progress)
    except ProviderError as error:
        summary.problems.append(f"the processor's payment list failed: {error}; the watermark did not move")
    else:
        ReconciliationWatermark.objects.advance(WATERMARK, until=until, summary=summary.as_dict())
    summary.seconds = time.monotonic() - started
    return summary


# --- 1. Checkouts that never settled ---------------------------------------------------------------------

def _settle_open_checkouts(summary: ReconcileSummary, processor: PaymentProcessor, *, now: dt.datetime,
                           actor: str) -> None:
    stuck_before = now - dt.timedelta(seconds=settings.RECONCILE_STUCK_AFTER_SECONDS)
    candidates = list(PurchaseAttempt.objects.filter(state=AttemptState.IN_DOUBT).order_by("id")[:1000])
    candidates += list(PurchaseAttempt.objects.stuck(before=stuck_before).exclude(state=AttemptState.IN_DOUBT)[:1000])
    for attempt in candidates:
        try:
            _settle(attempt, summary, processor, now=now, actor=actor)
        except ProviderError as error:
            summary.still_unresolved += 1
            _escalate_if_overdue(attempt, now=now, error=str(error))


def _settle(attempt: PurchaseAttempt, summary: ReconcileSummary, processor: PaymentProcessor, *, now: dt.datetime,
            actor: str) -> None:
    workflow = dispatch.workflow_status(purchase_workflow_id(attempt.pk))
    if attempt.state != AttemptState.IN_DOUBT:
        if workflow in dispatch.LIVE_WORKFLOW_STATUSES:
            return  # still working on it (e.g. retrying a slow processor)
        if attempt.state == AttemptState.RECORDED and attempt.charge_calls == 0:
            # Never reached the processor: let the checkout run (the unstarted-purchases sweep does the same sooner,
            # where the engine runs; this run may be a command's, without it).
            checkout.enqueue_purchase(attempt.pk)
            summary.workflows_restarted += 1
            return
        # Its workflow died between the charge and the order: what happened is for the processor to say.
        charging.mark_in_doubt(attempt_id=attempt.pk)
        attempt.refresh_from_db()
    payment = processor_status.find_payment_of_attempt(attempt, processor, now=now)
    if payment is None:
        processor_status.record_no_payment(attempt_id=attempt.pk, payment_id=attempt.payment_id,
                                           learnt_from=LearntFrom.RECONCILIATION)
    else:
        processor_status.record_payment(payment=payment, learnt_from=LearntFrom.RECONCILIATION, attempt_id=attempt.pk)
    if payment is not None and payment.succeeded:
        fulfilment.fulfil_payment(payment=payment, source=FulfilledBy.RECONCILIATION, actor=actor,
                                  attempt_id=attempt.pk)
        summary.in_doubt_charged += 1
    elif payment is not None and payment.status in FAILED_PAYMENT_STATUSES:
        fulfilment.settle_declined_payment(payment=payment, actor=actor)
        summary.in_doubt_declined += 1
    elif payment is None and _long_enough_to_be_sure(attempt, now=now):
        fulfilment.settle_not_charged(attempt_id=attempt.pk, actor=actor)
        summary.in_doubt_not_charged += 1
    else:
        summary.still_unresolved += 1
        _escalate_if_overdue(attempt, now=now, error=f"the payment is {payment.status}" if payment else
                             "no payment found yet")


def _long_enough_to_be_sure(attempt: PurchaseAttempt, *, now: dt.datetime) -> bool:
    # A request the processor was still holding could land late: give it the settle time before saying "no".
    since = attempt.in_doubt_since or attempt.updated_at
    return (now - since).total_seconds() >= settings.RECONCILE_SETTLE_SECONDS


def _escalate_if_overdue(attempt: PurchaseAttempt, *, now: dt.datetime, error: str) -> None:
    """We promised an answer within IN_DOUBT_REPLY_MINUTES: past that, a person takes over."""
    since = attempt.in_doubt_since or attempt.updated_at
    if (now - since).total_seconds() < settings.IN_DOUBT_REPLY_MINUTES * 60:
        return
    # The purchase's give-up, told as every guarded operation tells it (harm money: the buyer may have paid).
    raise_attention_record(Attention(
        kind=AttentionKind.PAYMENT_UNRESOLVED, harm=Harm.MONEY, cause="",
        subject=f"checkout:{attempt.reference}", account=attempt.account,
        summary=f"Checkout {attempt.reference} ({money(attempt.amount_cents, attempt.currency)}, {attempt.email}) "
                f"is unsettled since {since:%Y-%m-%d %H:%M} UTC: {error}. The buyer was promised an email.",
        detail={"reference": attempt.reference, "email": attempt.email, "amount_cents": attempt.amount_cents,
                "currency": attempt.currency, "state": attempt.state, "since": since.isoformat(), "error": error},
    ))


# --- 2. Processor payments against local orders ------------------------------------------------------------

class LocalOrder(NamedTuple):
    payment_id: str
    reference: str
    created: dt.datetime


def _second(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def _local_orders(since: dt.datetime | None, until: dt.datetime) -> Iterator[LocalOrder]:
    """Orders newest payment first, a chunk of rows at a time (a server-side cursor on PostgreSQL).

    Read with a plain cursor: Django's per-row converters would cost more than the rest of the walk.
    """
    orders = Order.objects.filter(payment_created_at__lte=until)
    if since is not None:
        orders = orders.filter(payment_created_at__gte=since)
    rows = orders.order_by("-payment_created_at").values_list("payment_id", "reference", "payment_created_at")
    sql, params = rows.query.sql_with_params()
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(LOCAL_CHUNK):
            for payment_id, reference, created in chunk:
                yield LocalOrder(payment_id, reference, _as_utc(created))


def _as_utc(value: dt.datetime | str) -> dt.datetime:
    """PostgreSQL gives an aware datetime; SQLite the text Django stored (naive UTC)."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _prefetched(
    pages: Iterator[list[ProcessorPayment]], depth: int = PREFETCH_PAGES
) -> Iterator[list[ProcessorPayment]]:
    """Fetch the next pages on a thread while this one is compared: the processor works while we do.

    At most ``depth`` pages wait in memory; an error on the fetching thread is raised here, in order.
    """
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    abandoned = threading.Event()

    def fetch() -> None:
        try:
            for page in pages:
                while not abandoned.is_set():
                    try:
                        buffer.put(("page", page), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if abandoned.is_set():
                    return
            buffer.put(("end", None))
        except BaseException as error:  # handed to the consumer below
            buffer.put(("error", error))

    fetcher = threading.Thread(target=fetch, name="backstop-reconcile-fetch", daemon=True)
    fetcher.start()
    try:
        while True:
            kind, value = buffer.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        abandoned.set()


class RefundCheck(NamedTuple):
    """A payment whose refunded total may differ between the processor and our books."""

    payment_id: str


def _queue_refund_checks(summary: ReconcileSummary, processor: PaymentProcessor, fixer: _Fixer) -> None:
    """The payments whose refunded totals may disagree, for the fixer to look up and settle.

    A full pass lists every refund there is (a few beside the payments), adds them up per payment and checks only the
    payments whose sum differs from our books. A windowed pass sees only the refunds made since its start, whose sum
    proves nothing about older ones, so it checks every payment refunded in the window on either side.
    """
    since = summary.since
    listed: dict[str, int] = {}
    for page in processor.list_refund_pages(created_gte=since):
        for refund in page:
            if refund.counts and refund.payment_id:
                listed[refund.payment_id] = listed.get(refund.payment_id, 0) + refund.amount
    orders = Order.objects.filter(refunded_at__isnull=False)
    known = KnownRefund.objects.all()
    if since is not None:
        orders, known = orders.filter(refunded_at__gte=since), known.filter(updated_at__gte=since)
    ours = dict(known.values_list("payment_id", "amount_refunded"))
    ours.update(orders.values_list("payment_id", "refunded_cents"))  # the order's own total, where there is one
    if since is None:
        suspects = {p for p in listed.keys() | ours.keys() if listed.get(p, 0) != ours.get(p, 0)}
    else:
        suspects = listed.keys() | ours.keys()
    for payment_id in sorted(suspects):
        fixer.work.put(RefundCheck(payment_id))


class _Fixer:
    """Fixes discrepancies on its own thread (and database connection) while the walk goes on.

    SQLite in WAL mode lets this writer commit while the walk's cursor keeps reading its snapshot; the
    queue is bounded, so a flood of discrepancies slows the walk down instead of filling memory.
    """

    def __init__(self, summary: ReconcileSummary, processor: PaymentProcessor, *, actor: str) -> None:
        self.summary = summary
        self.processor = processor
        self.actor = actor
        self.late_matches = 0
        self.failures: list[BaseException] = []
        self.work: queue.Queue[ProcessorPayment | LocalOrder | RefundCheck | None] = queue.Queue(maxsize=FIX_QUEUE)
        self.thread = threading.Thread(target=self._run, name="backstop-reconcile-fix", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (item := self.work.get()) is not None:
                if self.failures:
                    continue  # drain, so the walk never blocks on a dead fixer
                try:
                    if isinstance(item, LocalOrder):
                        self.late_matches += _check_order_payment(item, self.summary, self.processor)
                    elif isinstance(item, RefundCheck):
                        _check_refunded_total(item.payment_id, self.summary, self.processor, actor=self.actor)
                    else:
                        self.late_matches += _fulfil_or_report(item, self.summary, actor=self.actor)
                except BaseException as error:  # raised on the walking thread by finish()
                    self.failures.append(error)
        finally:
            connections.close_all()

    def finish(self) -> None:
        self.work.put(None)
        self.thread.join()
        self.summary.orders_matched += self.late_matches
        if self.failures:
            raise self.failures[0]


def _compare_books(summary: ReconcileSummary, processor: PaymentProcessor, *, actor: str,
                   progress: ProgressCallback | None) -> None:
    fixer = _Fixer(summary, processor, actor=actor)
    slices = _slices(summary.since, summary.until)
    walked = _Progress(summary, progress, until=summary.until)
    try:
        # First, so a refund made before its order existed is on our books (KnownRefund) by the time the walk's
        # fixes make that order: the fixer works through its queue in order.
        _queue_refund_checks(summary, processor, fixer)
        if len(slices) == 1:
            _walk(*slices[0], fixer=fixer, processor=processor, progress=walked)
            return
        # Two walks at once: while one waits on the processor's next page, the other compares (see decisions).
        with ThreadPoolExecutor(max_workers=len(slices) - 1, thread_name_prefix="backstop-reconcile-walk") as pool:
            older = [pool.submit(_walk_on_thread, since, until, fixer=fixer, processor=processor, progress=walked)
                     for since, until in slices[1:]]
            _walk(*slices[0], fixer=fixer, processor=processor, progress=walked)
            for walk in older:
                walk.result()
    finally:
        fixer.finish()


def _slices(since: dt.datetime | None, until: dt.datetime) -> list[tuple[dt.datetime | None, dt.datetime]]:
    """The window cut in two at a whole second, newest half first, when it is long enough to be worth it.

    The halves are split by time between the oldest local order in the window and its end; payments older than
    every order fall in the older half.
    """
    oldest = since
    if oldest is None:
        oldest = Order.objects.filter(payment_created_at__lte=until).aggregate(
            oldest=Min("payment_created_at"))["oldest"]
    if oldest is None or until - oldest < MIN_SLICED_WINDOW:
        return [(since, until)]
    edge = dt.datetime.fromtimestamp(_second(oldest + (until - oldest) / 2), tz=dt.UTC)
    # Both sides hold whole-second creation times: the older half ends just before the edge's second.
    return [(edge, until), (since, edge - dt.timedelta(microseconds=1))]


class _Progress:
    """Counts from every walk into the summary (under a lock) and tells the caller how far back the walks are.

    "How far back" is the window's end minus the time all walks have covered together, so a progress bar moves
    steadily from the newest payment to the oldest however many walks there are.
    """

    def __init__(self, summary: ReconcileSummary, callback: ProgressCallback | None, *, until: dt.datetime) -> None:
        self.summary = summary
        self.callback = callback
        self.until = until
        self.lock = threading.Lock()
        self.covered: dict[int, dt.timedelta] = {}

    def page(self, walk: int, count: int, top: dt.datetime, reached: dt.datetime) -> None:
        with self.lock:
            self.summary.payments_seen += count
            self.covered[walk] = top - reached
            if self.callback is not None:
                self.callback(count, self.until - sum(self.covered.values(), dt.timedelta()))

    def matched(self, count: int) -> None:
        with self.lock:
            self.summary.orders_matched += count


def _walk_on_thread(since: dt.datetime | None, until: dt.datetime, **kwargs: Any) -> None:
    try:
        _walk(since, until, **kwargs)
    finally:
        connections.close_all()


def _walk(since: dt.datetime | None, until: dt.datetime, *, fixer: _Fixer, processor: PaymentProcessor,
          progress: _Progress) -> None:
    walk = threading.get_ident()

    def counted(pages: Iterable[list[ProcessorPayment]]) -> Iterator[ProcessorPayment]:
        for page in pages:
            progress.page(walk, len(page), until, page[-1].created)
            yield from (payment for payment in page if payment.succeeded)

    payments = counted(_prefetched(processor.list_pages(created_gte=since, created_lte=until)))
    remote = itertools.groupby(payments, key=lambda payment: _second(payment.created))
    local = itertools.groupby(_local_orders(since, until), key=lambda order: _second(order.created))
    remote_group = next(remote, None)
    local_group = next(local, None)
    matched = 0
    try:
        # Both sides come newest first: a merge join on the creation second, one second in memory at a time.
        while remote_group is not None or local_group is not None:
            if local_group is None or (remote_group is not None and remote_group[0] > local_group[0]):
                assert remote_group is not None
                for payment in remote_group[1]:
                    fixer.work.put(payment)
                remote_group = next(remote, None)
            elif remote_group is None or local_group[0] > remote_group[0]:
                for order in local_group[1]:
                    fixer.work.put(order)
                local_group = next(local, None)
            else:
                by_id = {payment.id: payment for payment in remote_group[1]}
                for order in local_group[1]:
                    if by_id.pop(order.payment_id, None) is None:
                        fixer.work.put(order)
                    else:
                        matched += 1
                for payment in by_id.values():
                    fixer.work.put(payment)
                remote_group, local_group = next(remote, None), next(local, None)
    finally:
        progress.matched(matched)


def _fulfil_or_report(payment: ProcessorPayment, summary: ReconcileSummary, *, actor: str) -> int:
    """Returns 1 when another path had already made the order (a late match), else 0."""
    # Recorded for the payments that differ only: one write per listed payment would double a full run's time.
    processor_status.record_payment(payment=payment, learnt_from=LearntFrom.RECONCILIATION)
    try:
        filled = fulfilment.fulfil_payment(payment=payment, source=FulfilledBy.RECONCILIATION, actor=actor)
    except fulfilment.UnmatchedPayment:
        fulfilment.report_unmatched_payment(payment=payment)
        summary.payments_unmatched += 1
        return 0
    if filled.created:
        summary.orders_recreated += 1
    elif filled.order is None or filled.problem:
        summary.payments_unmatched += 1
    else:
        return 1  # another path finished it while we were walking
    return 0


def _check_order_payment(order: LocalOrder, summary: ReconcileSummary, processor: PaymentProcessor) -> int:
    """Returns 1 when the payment is there after all (listed under another second), else 0."""
    try:
        payment = processor_status.retrieve_or_none(processor, order.payment_id)
    except ProviderError as error:
        summary.problems.append(f"could not look up the payment of order {order.reference}: {error}")
        return 0
    if payment is None:
        processor_status.record_no_payment(payment_id=order.payment_id, learnt_from=LearntFrom.RECONCILIATION)
    else:
        processor_status.record_payment(payment=payment, learnt_from=LearntFrom.RECONCILIATION)
    if payment is not None and payment.succeeded:
        return 1
    summary.orders_without_payment += 1
    status = payment.status if payment is not None else "not found at the processor"
    owner = Order.objects.select_related("account").get(reference=order.reference)
    # An order without a payment hurts us, not the customer: it ranks as degraded.
    attention.raise_once(
        kind=AttentionKind.ORDER_WITHOUT_PAYMENT, harm=Harm.DEGRADED, cause="",
        subject=f"order:{order.reference}", account=owner.account,
        summary=f"Order {order.reference} has no succeeded payment at the processor (payment {order.payment_id}: "
                f"{status}). Check before the customer keeps access unpaid.",
        detail={"reference": order.reference, "payment_id": order.payment_id, "payment_status": status,
                "payment_created_at": order.created.isoformat(), "email": owner.email},
    )
    return 0


def _check_refunded_total(payment_id: str, summary: ReconcileSummary, processor: PaymentProcessor, *,
                          actor: str) -> None:
    """Look the payment up (its charge expanded: the processor's refunded total) and settle any difference."""
    try:
        payment = processor_status.retrieve_or_none(processor, payment_id)
    except ProviderError as error:
        summary.problems.append(f"could not look up the refunds of payment {payment_id}: {error}")
        return
    if payment is None or not payment.refunds_known:
        return  # not a payment the processor has (an order without one is flagged by the walk)
    order = Order.objects.select_related("account").filter(payment_id=payment_id).first()
    ours = order.refunded_cents if order is not None else KnownRefund.objects.refunded_cents(payment_id)
    if payment.amount_refunded > ours:
        if refunds.record_refund_from_processor(payment_id=payment_id, amount_refunded=payment.amount_refunded,
                                                actor=actor) != "unchanged":
            summary.refunds_applied += 1
    elif order is not None and payment.amount_refunded < order.refunded_cents:
        summary.refunds_unconfirmed += 1
        # Harm money: the customer may have been told of a refund they never got, and their access has ended.
        attention.raise_once(
            kind=AttentionKind.REFUND_UNCONFIRMED, harm=Harm.MONEY, cause="",
            subject=f"refund:{payment_id}:{order.refunded_cents}", account=order.account,
            summary=REFUND_UNCONFIRMED_SUMMARY.format(
                reference=order.reference, amount=money(order.amount_cents, order.currency), email=order.email,
                ours=money(order.refunded_cents, order.currency), payment_id=payment_id,
                theirs=money(payment.amount_refunded, payment.currency)),
            detail={"reference": order.reference, "payment_id": payment_id, "email": order.email,
                    "amount_cents": order.amount_cents, "currency": order.currency,
                    "amount": money(order.amount_cents, order.currency),
                    "our_refunded_cents": order.refunded_cents, "processor_refunded_cents": payment.amount_refunded},
        )
