"""Webhooks as Stripe sends them: signed JSON POSTs from a persisted outbox, retried with backoff.

Signing follows Stripe's scheme, so ``stripe.Webhook.construct_event(payload, sig_header, secret)``
accepts what we send: ``Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<payload>">``
keyed with the whole endpoint secret (``whsec_...`` included). Each attempt is signed afresh with the
current time, as Stripe does, so a late retry still passes the receiver's timestamp tolerance.

Deliveries are rows in ``webhook_deliveries``, written in the transaction that made the event, and a
single background thread works through the due ones. A crash or restart loses nothing: the rows are
still pending when the server comes back. A delivery is retried until the endpoint answers 2xx or
MAX_ATTEMPTS is spent; the last status or error stays on the row for inspection.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass

import httpx

from backstop.fakepay import store
from backstop.lib.backoff import backoff_delay

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 8
RETRY_BASE_SECONDS = 1.0
RETRY_CAP_SECONDS = 60.0
IDLE_POLL_SECONDS = 1.0  # a backstop for wake-ups: deliveries also start right after each commit
BATCH_SIZE = 20
USER_AGENT = "Stripe/1.0 (+fakepay)"


def signature_header(payload: str, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.{payload}".encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class Attempt:
    status: int | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookDeliverer:
    """The background thread that empties the outbox."""

    def __init__(self, database: store.Database, secret: str) -> None:
        self._database = database
        self._secret = secret
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fakepay-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=DELIVERY_TIMEOUT_SECONDS + 1)

    def notify(self) -> None:
        """New deliveries may be due: look now instead of at the next poll."""
        self._wake.set()

    def _run(self) -> None:
        with httpx.Client(timeout=DELIVERY_TIMEOUT_SECONDS, trust_env=False) as client:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    next_due = self._deliver_due(client)
                except Exception:
                    log.exception("webhook delivery pass failed")
                    next_due = None
                wait = IDLE_POLL_SECONDS if next_due is None else next_due - time.time()
                self._wake.wait(timeout=min(IDLE_POLL_SECONDS, max(0.0, wait)))

    def _deliver_due(self, client: httpx.Client) -> float | None:
        """Send every due delivery; return when the next pending one falls due (None if none are)."""
        conn = self._database.connection()
        while not self._stopping.is_set():
            due = store.due_deliveries(conn, time.time(), BATCH_SIZE)
            if not due:
                break
            for delivery in due:
                attempt = self._post(client, delivery["url"], delivery["body"])
                attempts = delivery["attempts"] + 1
                state: store.DeliveryState
                if attempt.succeeded:
                    state, next_attempt_at = "delivered", time.time()
                elif attempts >= MAX_ATTEMPTS:
                    state, next_attempt_at = "failed", time.time()
                    log.warning("webhook %s to %s abandoned after %d attempts", delivery["event_id"],
                                delivery["url"], attempts)
                else:
                    state = "pending"
                    next_attempt_at = time.time() + backoff_delay(
                        attempts, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS
                    )
                with self._database.write() as write_conn:
                    store.record_delivery_attempt(
                        write_conn,
                        delivery["seq"],
                        state=state,
                        attempts=attempts,
                        next_attempt_at=next_attempt_at,
                        status=attempt.status,
                        error=attempt.error,
                    )
        return store.next_delivery_at(conn)

    def _post(self, client: httpx.Client, url: str, payload: str) -> Attempt:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": signature_header(payload, self._secret, int(time.time())),
        }
        try:
            response = client.post(url, content=payload.encode(), headers=headers)
        except httpx.HTTPError as error:
            return Attempt(status=None, error=f"{type(error).__name__}: {error}"[:500])
        return Attempt(status=response.status_code, error=None if response.is_success else response.text[:500])
