"""Test helpers for fakepay: the real server in a child process and a webhook receiver, both on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import stripe

from conftest import ROOT, free_port

WEBHOOK_SECRET = "whsec_fakepay_tests"
API_KEY = "sk_test_fakepay_tests"
FAIL_ONCE = "fail-once"  # metadata[webhook] value: the receiver answers 500 to that event's first delivery


@dataclass
class ReceivedWebhook:
    payload: str
    signature: str

    @property
    def event(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.payload)
        return body


@dataclass
class WebhookReceiver:
    """A tiny HTTP endpoint that records every webhook POST (including the ones it refuses)."""

    port: int = 0
    received: list[ReceivedWebhook] = field(default_factory=list)
    refusing: bool = False  # answer 500 to everything, like an endpoint that is down
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/stripe"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                received = ReceivedWebhook(payload, self.headers.get("Stripe-Signature", ""))
                with receiver._lock:
                    earlier = [w for w in receiver.received if w.event["id"] == received.event["id"]]
                    receiver.received.append(received)
                metadata = received.event["data"]["object"].get("metadata") or {}
                refuse = receiver.refusing or (metadata.get("webhook") == FAIL_ONCE and not earlier)
                self.send_response(500 if refuse else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def deliveries_of(self, event_id: str) -> list[ReceivedWebhook]:
        with self._lock:
            return [w for w in self.received if w.event["id"] == event_id]

    def events_about(self, object_id: str) -> list[ReceivedWebhook]:
        with self._lock:
            return [w for w in self.received if w.event["data"]["object"]["id"] == object_id]


@dataclass
class FakePayProcess:
    """`backstop fakepay` in a child process."""

    db_path: Path
    webhook_urls: list[str] = field(default_factory=list)
    allow_reset: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.db_path.with_suffix(".log")

    def start(self) -> FakePayProcess:
        args = [sys.executable, "-m", "backstop.cli", "fakepay", "--port", str(self.port), "--db", str(self.db_path)]
        args += ["--webhook-secret", WEBHOOK_SECRET]
        for url in self.webhook_urls:
            args += ["--webhook-url", url]
        if self.allow_reset:
            args.append("--allow-reset")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"fakepay exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/_fakepay/health", timeout=1, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"fakepay did not come up:\n{self.log_path.read_text()}")

    def control(self, path: str, payload: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}/_fakepay/{path}", json=payload or {}, timeout=10, trust_env=False)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def charge_id(intent: stripe.PaymentIntent) -> str:
    """The id of a paid intent's charge (``latest_charge`` when it is not expanded)."""
    assert isinstance(intent.latest_charge, str), intent.latest_charge
    return intent.latest_charge


def declined_intent_id(declined: stripe.CardError) -> str:
    """The payment intent a 402 card error is about (Stripe puts it in the error body)."""
    assert declined.error is not None and declined.error.payment_intent is not None
    return declined.error.payment_intent.id
