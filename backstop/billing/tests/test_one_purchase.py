"""One purchase per intent over real HTTP, against `backstop serve` and a real fakepay: checkouts of one plan for
one buyer with different idempotency keys charge once, at the same moment or one after another; a declined or
refunded purchase does not stand in the way of the next; an extension is its own action, charged once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from django.conf import settings

from backstop.billing import messages
from backstop.billing.claims import TELL_OWNER_EVERY_SECONDS
from backstop.billing.providers import StripePayments
from conftest import wait_for

PASSWORD = "correct horse battery"


def _start(server_factory: Any, fakepay: Any) -> Any:
    server = server_factory()
    fakepay.start(webhook_url=f"{server.url}/api/webhooks/payments")
    return server.start(STRIPE_API_BASE=fakepay.url, BACKSTOP_BASE_URL=server.url)


def _at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(calls))
    answers: list[httpx.Response | None] = [None] * len(calls)

    def run(n: int) -> None:
        barrier.wait(timeout=30)
        answers[n] = calls[n]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def _final(base_url: str, status_url: str) -> dict[str, Any]:
    def look() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(f"{base_url}{status_url}", timeout=30).json()
        return body if body["final"] else None

    return dict(wait_for(look, timeout=60, message=f"{status_url} never became final"))


def _window() -> int:
    return int(time.time() // TELL_OWNER_EVERY_SECONDS)


def test_it_charges_once_when_one_buyer_checks_out_twice_at_the_same_moment(
    server_factory: Any, fakepay: Any, smtp_sink: Any
) -> None:
    server = _start(server_factory, fakepay)

    def pay(key: str, email: str = "ann@example.com") -> Callable[[], httpx.Response]:
        return lambda: httpx.post(f"{server.url}/api/checkout", json={"product": "annual", "email": email},
                                  headers={"Idempotency-Key": key}, timeout=60)

    window = _window()
    answers = _at_once([pay(f"tab-{n}") for n in range(4)])
    later = pay("another-device", "ANN@Example.com")()
    same_window = window == _window()

    bought = [answer for answer in answers if answer.status_code in (200, 202)]
    refused = [answer for answer in [*answers, later] if answer.status_code == 409]
    assert len(bought) == 1 and len(refused) == 4, [(a.status_code, a.text) for a in answers]
    reference = bought[0].json()["reference"]
    for answer in refused:
        body = answer.json()
        # A stranger may have typed the address: the answer names no order, no state, no date.
        assert body["code"] == messages.ALREADY_PURCHASED
        assert body["existing"] is None and body["status_url"] is None
        assert reference not in answer.text and "until" not in body["message"]
        assert "emailed" in body["message"]
    assert _final(server.url, bought[0].json()["status_url"])["outcome"] == messages.PAID

    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(1,)]
    database = server.database
    assert database.scalar("SELECT COUNT(*) FROM billing_purchaseattempt") == 1
    assert database.scalar("SELECT COUNT(*) FROM billing_order") == 1
    # The owner hears of it by email, with the link, once for all four tries (in one 15-minute window).
    notices = wait_for(lambda: [m for m in smtp_sink.to("ann@example.com") if reference in str(m["Subject"])
                                and "Someone, probably you" in str(m)], timeout=30, message="the owner was not told")
    wait_for(lambda: len(smtp_sink.to("ann@example.com")) >= 2, timeout=30, message="no confirmation email")
    time.sleep(1)  # a second notice would be right behind the first
    notices = [m for m in smtp_sink.to("ann@example.com") if "Someone, probably you" in str(m)]
    assert len(notices) == 1 if same_window else len(notices) <= 2
    assert f"/checkout/{reference}" in str(notices[0])


def test_it_lets_the_buyer_pay_again_after_a_decline_and_after_a_refund(
    server_factory: Any, fakepay: Any, smtp_sink: Any
) -> None:
    server = _start(server_factory, fakepay)

    def pay(key: str, card: str) -> dict[str, Any]:
        answer = httpx.post(f"{server.url}/api/checkout", timeout=60, headers={"Idempotency-Key": key},
                            json={"product": "annual", "email": "bob@example.com", "payment_method": card})
        assert answer.status_code in (200, 202), answer.text
        return _final(server.url, answer.json()["status_url"])

    assert pay("declined", "pm_card_chargeDeclined")["outcome"] == messages.DECLINED
    first = pay("paid", "pm_card_visa")
    assert first["outcome"] == messages.PAID
    refused = httpx.post(f"{server.url}/api/checkout", json={"product": "annual", "email": "bob@example.com"},
                         headers={"Idempotency-Key": "too-soon"}, timeout=60)
    assert refused.status_code == 409

    # Refunded at the processor (its dashboard): the webhook tells us, and the plan may be bought again.
    [(payment_id,)] = fakepay.query("SELECT id FROM payment_intents WHERE status = 'succeeded'")
    StripePayments(api_key=settings.STRIPE_API_KEY, api_base=fakepay.url, timeout=10).refund(
        payment_id=payment_id, amount=24900, idempotency_key="dashboard-refund")
    wait_for(lambda: server.database.scalar("SELECT status FROM billing_order") == "refunded", timeout=30,
             message="the refund never reached the order")

    second = pay("after-refund", "pm_card_visa")
    assert second["outcome"] == messages.PAID and second["reference"] != first["reference"]
    assert fakepay.query("SELECT status, COUNT(*) FROM payment_intents GROUP BY status ORDER BY status") == [
        ("requires_payment_method", 1), ("succeeded", 2)]
    released = server.database.query(
        "SELECT actor, after FROM billing_auditentry WHERE action = 'plan_claim_released' ORDER BY id")
    # The decline is settled by whichever comes first, the checkout's answer or the processor's event; the refund
    # only by the webhook. One release each.
    assert len(released) == 2
    assert released[0][0] in ("system:checkout", "system:webhook") and released[1][0] == "system:webhook"


def test_it_extends_a_signed_in_customers_plan_once(server_factory: Any, fakepay: Any, smtp_sink: Any) -> None:
    server = _start(server_factory, fakepay)
    browser = httpx.Client(base_url=server.url, timeout=60)
    signup = browser.post("/api/signup", json={"name": "Cy Young", "email": "cy@example.com", "company": "Acme",
                                               "phone": "+1 415 555 0100", "password": PASSWORD})
    assert signup.status_code == 201, signup.text
    csrf = {"X-CSRFToken": browser.cookies["csrftoken"]}

    def pay(key: str, **extra: Any) -> httpx.Response:
        return browser.post("/api/checkout", json={"product": "annual", **extra},
                            headers={"Idempotency-Key": key, **csrf})

    bought = pay("buy")
    assert bought.status_code in (200, 202), bought.text
    paid = _final(server.url, bought.json()["status_url"])

    # Buying again, signed in: the answer is the order held, with its status.
    again = pay("buy-again")
    assert again.status_code == 409
    body = again.json()
    assert body["code"] == messages.ALREADY_PURCHASED
    assert body["existing"]["reference"] == paid["reference"] and body["status_url"] == paid["status_url"]
    assert body["message"].startswith("You already have Backstop annual plan until ")
    page = browser.get("/checkout")
    assert "Extend by a year for $249" in page.text and messages.ALREADY_TITLES["paid"] in page.text

    # "Extend" twice at once (two tabs): one charge, one extension.
    answers = _at_once([lambda: pay("extend-1", renewal=True), lambda: pay("extend-2", renewal=True)])
    codes = sorted(answer.status_code for answer in answers)
    assert codes in ([200, 409], [202, 409]), [a.text for a in answers]
    extension = next(a for a in answers if a.status_code != 409).json()
    other = next(a for a in answers if a.status_code == 409).json()
    assert other["existing"]["reference"] == extension["reference"]
    assert _final(server.url, extension["status_url"])["outcome"] == messages.PAID
    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(2,)]

    entitlement = ("SELECT e.{} FROM billing_entitlement e JOIN billing_order o ON o.id = e.order_id "
                   "WHERE o.reference = ?")
    first_end = server.database.scalar(entitlement.format("ends_at"), (paid["reference"],))
    # No overlapping years: the extension starts when the plan it extends ends.
    assert server.database.scalar(entitlement.format("starts_at"), (extension["reference"],)) == first_end
    mails = wait_for(lambda: [m for m in smtp_sink.to("cy@example.com") if "extended until" in str(m["Subject"])],
                     timeout=30, message="no confirmation of the extension")
    assert extension["reference"] in str(mails[0]["Subject"])

    # Back after extending, or the page reloaded: the page now names the next period, and the extension just bought
    # is the answer, not a second charge. Another year is asked for in so many words.
    page = browser.get("/checkout")
    assert "Extend by another year for $249" in page.text and 'name="again" value="1"' in page.text
    back = pay("extend-3", renewal=True)
    assert back.status_code == 409 and back.json()["existing"]["reference"] == extension["reference"]
    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(2,)]
    another = pay("extend-4", renewal=True, again=True)
    assert another.status_code in (200, 202), another.text
    assert _final(server.url, another.json()["status_url"])["outcome"] == messages.PAID
    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(3,)]
