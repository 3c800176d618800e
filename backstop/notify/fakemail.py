"""A local fake of an email provider's HTTP API, with a rate limit, an outage switch and idempotency keys.

It speaks enough of Resend's API (``POST /emails``, ``GET /domains``) for anymail's Resend backend, which Backstop
uses through ``providers.ResendEmailBackend`` (that backend adds the ``Idempotency-Key`` header Resend honours). It
chose Resend because it is the anymail-supported ESP that deduplicates a resend by key: Postmark, SendGrid and Mailgun
have no such header, so a send whose answer was lost is delivered twice there (docs/decisions.md).

What it enforces, as the real one does:

- ``rate`` sends per second (a token bucket holding one second's worth): beyond it, 429 with ``Retry-After`` (whole
  seconds, at least 1) and Resend's ``ratelimit-*`` headers;
- ``mode``: ``up``; ``down`` answers 503 (with ``Retry-After`` only when ``down_retry_after`` is set: an outage's 503
  usually says nothing); ``hang`` holds each request open until the mode changes or ``hang_seconds`` pass;
- ``Idempotency-Key``: a second send with a key already delivered answers the first send's id and delivers nothing.

It counts what it was asked while down, the 429s it gave, and what it delivered. Tests, the demo and
``bench/outage_drain.py`` drive it in-process (``FakeMail``) or over its control API on the same port
(``GET /_fakemail/state``, ``POST /_fakemail/config`` with ``{"mode", "rate", "down_retry_after"}``,
``GET /_fakemail/messages``, ``POST /_fakemail/reset``). Loopback only; no authentication beyond a bearer token
being present. Run alone: ``python -m backstop.notify.fakemail --port 0 --rate 10``.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("up", "down", "hang")


@dataclass
class Counts:
    sends: int = 0  # POST /emails received, whatever the answer
    probes: int = 0  # GET /domains received
    delivered: int = 0
    replayed: int = 0  # a send with a key already delivered: answered, not delivered again
    throttled: int = 0  # 429s given
    refused_down: int = 0  # 503s given (or hung requests) while down
    calls_while_down: int = 0  # every API call (send or probe) that arrived while not up
    unauthorized: int = 0


@dataclass
class FakeMailState:
    mode: str = "up"
    rate: float | None = None  # sends per second; None: no limit
    down_retry_after: int | None = None
    hang_seconds: float = 30.0
    counts: Counts = field(default_factory=Counts)
    messages: list[dict[str, Any]] = field(default_factory=list)
    by_key: dict[str, str] = field(default_factory=dict)  # idempotency key -> the id its first send was given
    tokens: float = 0.0
    refilled_at: float = field(default_factory=time.monotonic)


class FakeMail:
    """The fake provider on a free loopback port (or ``port``), served from daemon threads of this process."""

    def __init__(self, *, rate: float | None = None, port: int = 0) -> None:
        self.state = FakeMailState(rate=rate, tokens=_capacity(rate))
        self.lock = threading.Lock()
        self.mode_changed = threading.Condition(self.lock)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self.server.daemon_threads = True
        self.server.request_queue_size = 128
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread: threading.Thread | None = None

    def start(self) -> FakeMail:
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fakemail", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.set(mode="up")  # releases hung requests
        self.server.shutdown()
        self.server.server_close()

    def set(self, *, mode: str | None = None, rate: float | str | None = "keep",
            down_retry_after: int | str | None = "keep") -> None:
        with self.lock:
            if mode is not None:
                if mode not in MODES:
                    raise ValueError(f"mode must be one of {', '.join(MODES)}")
                self.state.mode = mode
            if rate != "keep":
                self.state.rate = None if rate is None else float(rate)
                self.state.tokens, self.state.refilled_at = _capacity(self.state.rate), time.monotonic()
            if down_retry_after != "keep":
                self.state.down_retry_after = None if down_retry_after is None else int(down_retry_after)
            self.mode_changed.notify_all()

    def reset(self) -> None:
        with self.lock:
            self.state.counts = Counts()
            self.state.messages.clear()
            self.state.by_key.clear()

    @property
    def counts(self) -> Counts:
        with self.lock:
            return Counts(**vars(self.state.counts))

    def delivered(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.state.messages)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"mode": self.state.mode, "rate": self.state.rate, "down_retry_after": self.state.down_retry_after,
                    "counts": vars(self.state.counts).copy()}

    # --- the API, called with the lock not held --------------------------------------------------------

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, Any] | list[Any], dict[str, str]]:
        if path.startswith("/_fakemail/"):
            return self._control(method, path, body)
        if path not in ("/emails", "/domains"):
            return 404, {"name": "not_found", "message": "The requested endpoint does not exist."}, {}
        with self.lock:
            state = self.state
            if path == "/emails":
                state.counts.sends += 1
            else:
                state.counts.probes += 1
            if state.mode != "up":
                state.counts.calls_while_down += 1
                state.counts.refused_down += 1
                if state.mode == "hang":
                    self.mode_changed.wait_for(lambda: state.mode != "hang", timeout=state.hang_seconds)
                extra = {} if state.down_retry_after is None else {"Retry-After": str(state.down_retry_after)}
                return 503, {"name": "service_unavailable", "message": "Down for the test."}, extra
            if not headers.get("authorization", "").startswith("Bearer "):
                state.counts.unauthorized += 1
                return 401, {"name": "missing_api_key", "message": "Missing API key in the authorization header."}, {}
            wait = self._take_token()
            if wait is not None:
                state.counts.throttled += 1
                return 429, {"name": "rate_limit_exceeded", "message": "Too many requests."}, {
                    "Retry-After": str(wait), "ratelimit-limit": str(math.ceil(state.rate or 0)),
                    "ratelimit-remaining": "0", "ratelimit-reset": str(wait)}
            if path == "/domains":
                return 200, {"data": []}, {}
            return self._deliver(headers, body)

    def _take_token(self) -> int | None:
        """None when a send may go ahead now (one token taken); else the whole seconds until one is back."""
        state = self.state
        if state.rate is None:
            return None
        now = time.monotonic()
        state.tokens = min(_capacity(state.rate), state.tokens + (now - state.refilled_at) * state.rate)
        state.refilled_at = now
        if state.tokens >= 1:
            state.tokens -= 1
            return None
        return max(1, math.ceil((1 - state.tokens) / state.rate))

    def _deliver(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        state = self.state
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return 422, {"name": "validation_error", "message": "The body is not JSON."}, {}
        if not isinstance(data, dict) or not data.get("to") or not data.get("from"):
            return 422, {"name": "validation_error", "message": "Missing `to` or `from` field."}, {}
        key = headers.get("idempotency-key", "")
        if key and key in state.by_key:
            state.counts.replayed += 1
            return 200, {"id": state.by_key[key]}, {}
        message_id = str(uuid.uuid4())
        if key:
            state.by_key[key] = message_id
        to = data["to"] if isinstance(data["to"], list) else [data["to"]]
        state.messages.append({"id": message_id, "idempotency_key": key, "from": data["from"], "to": to,
                               "subject": data.get("subject", ""), "text": data.get("text", ""),
                               "html": data.get("html", ""), "headers": data.get("headers", {}),
                               "at": time.time()})
        state.counts.delivered += 1
        return 200, {"id": message_id}, {}

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any] | list[Any], dict[str, str]]:
        if path == "/_fakemail/state":
            return 200, self.snapshot(), {}
        if path == "/_fakemail/messages":
            return 200, self.delivered(), {}
        if path == "/_fakemail/reset" and method == "POST":
            self.reset()
            return 200, self.snapshot(), {}
        if path == "/_fakemail/config" and method == "POST":
            try:
                wanted = json.loads(body or b"{}")
                self.set(mode=wanted.get("mode"), rate=wanted.get("rate", "keep"),
                         down_retry_after=wanted.get("down_retry_after", "keep"))
            except (ValueError, TypeError, AttributeError) as error:
                return 400, {"message": str(error)}, {}
            return 200, self.snapshot(), {}
        return 404, {"message": "no such control"}, {}


def _capacity(rate: float | None) -> float:
    return max(1.0, rate or 0.0)


def _handler_for(fake: FakeMail) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as anymail's requests session expects of a real API

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, payload, extra = fake.answer(self.command, self.path.split("?", 1)[0], headers, body)
            raw = json.dumps(payload).encode()
            try:
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a hang outlasting its timeout)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--rate", type=float, default=None, help="sends per second (default: no limit)")
    options = parser.parse_args()
    fake = FakeMail(rate=options.rate, port=options.port).start()
    print(f"fakemail listening on {fake.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
