"""A double click, a retry, a refresh: one idempotency key is one purchase and one charge, over real HTTP."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from backstop.billing import messages
from conftest import wait_for

BUY = {"product": "annual", "email": "ann@example.com"}


def test_it_charges_once_for_many_submits_with_one_key(server_factory: Any, fakepay: Any, smtp_sink: Any) -> None:
    server = server_factory()
    fakepay.start(webhook_url=f"{server.url}/api/webhooks/payments")
    server.start(STRIPE_API_BASE=fakepay.url)

    def submit(_: int) -> httpx.Response:
        return httpx.post(f"{server.url}/api/checkout", json=BUY, headers={"Idempotency-Key": "double-1"}, timeout=30)

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(submit, range(6)))
    assert {answer.status_code for answer in answers} <= {200, 202}, [a.text for a in answers]
    assert len({answer.json()["reference"] for answer in answers}) == 1
    assert sum(answer.headers.get("Idempotent-Replayed") == "true" for answer in answers) == 5
    reference = answers[0].json()["reference"]

    # A later retry with the key answers the same purchase, now paid.
    wait_for(lambda: submit(0).json()["outcome"] == messages.PAID, timeout=30, message="never paid")
    # The same key for a different purchase is refused, not silently mixed up.
    other = httpx.post(f"{server.url}/api/checkout", json={**BUY, "email": "bob@example.com"},
                       headers={"Idempotency-Key": "double-1"}, timeout=30)
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"

    # The page: the form carries its own key, so submitting it twice (a double click) is one purchase.
    browser = httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)
    form = browser.get("/checkout")
    assert form.status_code == 200
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form.text)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert key and token
    fields = {"csrfmiddlewaretoken": token.group(1), "idempotency_key": key.group(1), "email": "cat@example.com",
              "payment_method": "pm_card_visa"}
    first, second = browser.post("/checkout", data=fields), browser.post("/checkout", data=fields)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    page = browser.get(first.headers["Location"])
    assert page.status_code == 200
    assert "BK-" in page.text

    database = server.database
    assert database.scalar("SELECT COUNT(*) FROM billing_purchaseattempt") == 2
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM billing_order") == 2, timeout=30)
    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(2,)]
    assert database.scalar("SELECT reference FROM billing_order WHERE email = ?", ("ann@example.com",)) == reference
    # Each buyer's confirmation is its own delivery: cat's can arrive before ann's.
    wait_for(lambda: smtp_sink.to("cat@example.com") and smtp_sink.to("ann@example.com"), timeout=30,
             message="a confirmation never came")
    assert len(smtp_sink.to("ann@example.com")) == 1
