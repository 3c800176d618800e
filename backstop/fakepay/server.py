"""fakepay's HTTP face: a small WSGI app (served by waitress) that routes Stripe's v1 URLs to handlers.

Per request it does what Stripe's edge does before and after the endpoint runs: fault injection,
API-key check, form decoding, and idempotency keys with Stripe's semantics:

* every POST runs in one write transaction; with an ``Idempotency-Key`` header the saved response for
  that key is looked up inside it, so concurrent requests with one key run one at a time and the
  later ones replay the first one's answer (same status and body, ``Idempotent-Replayed: true``);
* the same key with different parameters (or another endpoint) is a 400 ``idempotency_error``;
* results are saved for 24 hours when the endpoint ran: successes and card declines, not requests
  rejected by validation or by an injected fault, so a corrected or later retry can still go through.

``/_fakepay/...`` holds local controls for tests and demos (health, faults, reset, redelivery); they
need no API key and never exist on Stripe.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.types import StartResponse, WSGIEnvironment

import waitress

from backstop.fakepay import payments, store
from backstop.fakepay.errors import ApiError, invalid_request
from backstop.fakepay.params import Params, decode_form
from backstop.fakepay.webhooks import WebhookDeliverer

log = logging.getLogger(__name__)

DEFAULT_THREADS = 8
IDEMPOTENCY_KEY_TTL_SECONDS = 24 * 60 * 60
IDEMPOTENCY_KEY_MAX_LENGTH = 255
TEST_KEY_PREFIX = "sk_test_"
FAULT_MODES = frozenset({"ok", "error", "timeout"})
TIMEOUT_FAULT_SECONDS = 30.0
MAX_BODY_BYTES = 1_000_000

Handler = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    body: bytes
    headers: dict[str, str]  # lower-case names

    @classmethod
    def from_environ(cls, environ: WSGIEnvironment) -> Request:
        headers = {
            name[5:].replace("_", "-").lower(): str(value)
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = str(environ["CONTENT_TYPE"])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            raise invalid_request("Request body too large.")
        body = environ["wsgi.input"].read(length) if length else b""
        return cls(
            method=str(environ["REQUEST_METHOD"]).upper(),
            path=str(environ.get("PATH_INFO") or "/"),
            query=parse_qsl(str(environ.get("QUERY_STRING") or ""), keep_blank_values=True),
            body=body,
            headers=headers,
        )

    def form(self) -> list[tuple[str, str]]:
        """Query-string pairs, then (for POST) the form body's pairs, as Stripe reads both."""
        if self.method != "POST" or not self.body:
            return self.query
        try:
            text = self.body.decode()
        except UnicodeDecodeError:
            raise invalid_request("Request body must be UTF-8 form data.") from None
        return self.query + parse_qsl(text, keep_blank_values=True)

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise invalid_request("Request body must be JSON.") from None


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
        return cls(status, json.dumps(payload).encode(), [("Content-Type", "application/json"), *headers])


class Faults:
    """The injected-failure switch for demos and tests: every /v1 call fails or hangs while it is on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.mode = "ok"
        self._changed = threading.Event()

    def set_mode(self, mode: str) -> None:
        with self._lock:
            self.mode = mode
            # Releases requests held by "timeout", so switching back to "ok" ends the outage at once.
            self._changed.set()
            self._changed = threading.Event()

    def interfere(self) -> Response | None:
        """The response an outage gives instead of the real one (after the hang, for "timeout")."""
        with self._lock:
            mode, changed = self.mode, self._changed
        if mode == "timeout":
            changed.wait(TIMEOUT_FAULT_SECONDS)
        elif mode == "error":
            error = ApiError(500, "fakepay fault injection: simulated processor outage.", error_type="api_error")
            return Response.json(500, error.body())
        return None


V1_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("POST", re.compile(r"/v1/payment_intents"), payments.create_payment_intent),
    ("GET", re.compile(r"/v1/payment_intents"), payments.list_payment_intents),
    ("GET", re.compile(r"/v1/payment_intents/([^/]+)"), payments.retrieve_payment_intent),
    ("POST", re.compile(r"/v1/payment_intents/([^/]+)/confirm"), payments.confirm_payment_intent),
    ("POST", re.compile(r"/v1/payment_intents/([^/]+)/cancel"), payments.cancel_payment_intent),
    ("POST", re.compile(r"/v1/refunds"), payments.create_refund),
    ("GET", re.compile(r"/v1/refunds"), payments.list_refunds),
    ("GET", re.compile(r"/v1/refunds/([^/]+)"), payments.retrieve_refund),
    ("GET", re.compile(r"/v1/charges/([^/]+)"), payments.retrieve_charge),
    ("GET", re.compile(r"/v1/events"), payments.list_events),
    ("GET", re.compile(r"/v1/events/([^/]+)"), payments.retrieve_event),
]
REDELIVER = re.compile(r"/_fakepay/events/([^/]+)/redeliver")


def _api_key(headers: dict[str, str]) -> str:
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return credential.strip()
    if scheme.lower() == "basic":  # `curl -u sk_test_...:`
        try:
            return base64.b64decode(credential).decode().partition(":")[0]
        except ValueError:
            return ""
    return ""


def _authentication_error(headers: dict[str, str]) -> ApiError | None:
    key = _api_key(headers)
    if not key:
        return ApiError(
            401,
            "You did not provide an API key. You need to provide your API key in the Authorization header, "
            "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        )
    if not key.startswith(TEST_KEY_PREFIX):
        masked = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
        return ApiError(401, f"Invalid API Key provided: {masked} (fakepay accepts only sk_test_ keys)")
    return None


def _fingerprint(request: Request, pairs: list[tuple[str, str]]) -> str:
    canonical = json.dumps([request.method, request.path, sorted(pairs)])
    return hashlib.sha256(canonical.encode()).hexdigest()


class FakePayApp:
    """The WSGI application."""

    def __init__(
        self,
        database: store.Database,
        deliverer: WebhookDeliverer,
        *,
        webhook_urls: tuple[str, ...],
        allow_reset: bool,
    ) -> None:
        self.database = database
        self.deliverer = deliverer
        self.webhook_urls = webhook_urls
        self.allow_reset = allow_reset
        self.faults = Faults()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        try:
            response = self.handle(Request.from_environ(environ))
        except ApiError as error:
            response = Response.json(error.status, error.body())
        except Exception:
            log.exception("fakepay request failed")
            response = Response.json(500, ApiError(500, "Internal fakepay error.", error_type="api_error").body())
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", response.headers)
        return [response.body]

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/_fakepay/"):
            return self._control(request)
        for method, pattern, handler in V1_ROUTES:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                return self._v1(request, handler, match.groups())
        raise ApiError(
            404, f"Unrecognized request URL ({request.method}: {request.path}).", error_type="invalid_request_error"
        )

    # --- Stripe's API ---------------------------------------------------------------------------------

    def _v1(self, request: Request, handler: Handler, object_ids: Sequence[str]) -> Response:
        outage = self.faults.interfere()
        if outage is not None:
            return outage
        auth_error = _authentication_error(request.headers)
        if auth_error is not None:
            raise auth_error
        request_id = store.new_id("req")
        # Stripe ignores idempotency keys on GET (reads are idempotent anyway); an empty key counts as none.
        idempotency_key = (request.headers.get("idempotency-key") or None) if request.method == "POST" else None
        pairs = request.form()
        ctx = payments.RequestContext(
            request_id=request_id,
            idempotency_key=idempotency_key,
            api_version=request.headers.get("stripe-version"),
            now=int(time.time()),
            webhook_urls=self.webhook_urls,
        )
        headers = [("Request-Id", request_id)]
        try:
            params = Params(decode_form(pairs))
            if request.method == "GET":
                with self.database.read() as conn:
                    return Response.json(200, handler(conn, ctx, params, *object_ids), headers)
            return self._post(request, handler, object_ids, ctx, params, _fingerprint(request, pairs))
        except ApiError as error:
            return Response.json(error.status, error.body(), headers)

    def _post(
        self,
        request: Request,
        handler: Handler,
        object_ids: Sequence[str],
        ctx: payments.RequestContext,
        params: Params,
        fingerprint: str,
    ) -> Response:
        key = ctx.idempotency_key
        headers = [("Request-Id", ctx.request_id)]
        if key is not None:
            if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
                raise invalid_request(
                    f"Invalid idempotency key: must be at most {IDEMPOTENCY_KEY_MAX_LENGTH} characters."
                )
            headers.append(("Idempotency-Key", key))
        now = time.time()
        with self.database.write() as conn:
            if key is not None:
                saved = store.saved_response(conn, key, not_before=now - IDEMPOTENCY_KEY_TTL_SECONDS)
                if saved is not None:
                    if saved["fingerprint"] != fingerprint:
                        raise ApiError(
                            400,
                            "Keys for idempotent requests can only be used with the same parameters they were "
                            f"first used with. Try using a key other than '{key}' if you meant to execute a "
                            "different request.",
                            error_type="idempotency_error",
                        )
                    replay_headers = [("Idempotent-Replayed", "true"), ("Original-Request", saved["request_id"])]
                    return Response(
                        saved["status"],
                        saved["body"].encode(),
                        [("Content-Type", "application/json"), *headers, *replay_headers],
                    )
            try:
                status, payload = 200, handler(conn, ctx, params, *object_ids)
            except ApiError as error:
                if not error.keeps_changes:
                    raise
                status, payload = error.status, error.body()
            body = json.dumps(payload)
            if key is not None:
                store.forget_responses_before(conn, now - IDEMPOTENCY_KEY_TTL_SECONDS)
                store.save_response(
                    conn,
                    key=key,
                    created=now,
                    fingerprint=fingerprint,
                    status=status,
                    body=body,
                    request_id=ctx.request_id,
                )
        self.deliverer.notify()
        return Response(status, body.encode(), [("Content-Type", "application/json"), *headers])

    # --- Local controls -------------------------------------------------------------------------------

    def _control(self, request: Request) -> Response:
        if request.path == "/_fakepay/health" and request.method == "GET":
            return Response.json(200, {"status": "ok", "faults": self.faults.mode})
        if request.path == "/_fakepay/faults" and request.method == "GET":
            return Response.json(200, {"mode": self.faults.mode})
        if request.path == "/_fakepay/faults" and request.method == "POST":
            payload = request.json()
            mode = payload.get("mode") if isinstance(payload, dict) else None
            if mode not in FAULT_MODES:
                raise invalid_request(f"mode must be one of {', '.join(sorted(FAULT_MODES))}", param="mode")
            self.faults.set_mode(mode)
            return Response.json(200, {"mode": mode})
        if request.path == "/_fakepay/reset" and request.method == "POST":
            if not self.allow_reset:
                raise ApiError(403, "Reset is disabled: start fakepay with --allow-reset to enable it.")
            with self.database.write() as conn:
                store.reset(conn)
            return Response.json(200, {"reset": True})
        redeliver = REDELIVER.fullmatch(request.path)
        if redeliver and request.method == "POST":
            event_id = redeliver.group(1)
            with self.database.write() as conn:
                if store.event(conn, event_id) is None:
                    raise ApiError(404, f"No such event: '{event_id}'", code="resource_missing", param="id")
                queued = store.enqueue_deliveries(conn, event_id, self.webhook_urls, time.time())
            self.deliverer.notify()
            return Response.json(202, {"event": event_id, "queued": queued})
        raise ApiError(404, f"Unrecognized request URL ({request.method}: {request.path}).")


def serve(
    *,
    host: str,
    port: int,
    db_path: Path | None,
    webhook_urls: Sequence[str],
    webhook_secret: str,
    allow_reset: bool,
    threads: int = DEFAULT_THREADS,
    listen_fd: int | None = None,
) -> None:
    """Run fakepay until the process is stopped; pending webhook deliveries resume on the next start.

    ``listen_fd``: a listening socket inherited from the parent (``backstop demo`` opens it on a free port, so
    the port is known before fakepay starts and nobody can take it meanwhile); ``host`` and ``port`` then unused."""
    for url in webhook_urls:
        if not url.startswith(("http://", "https://")):
            raise SystemExit(f"fakepay: webhook URL must start with http:// or https://, not {url!r}")
    if not webhook_secret:
        raise SystemExit("fakepay: the webhook secret must not be empty")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = (db_path or store.default_database_path()).resolve()
    store.migrate(path)
    database = store.Database(path)
    deliverer = WebhookDeliverer(database, webhook_secret)
    deliverer.start()
    app = FakePayApp(database, deliverer, webhook_urls=tuple(webhook_urls), allow_reset=allow_reset)
    where: dict[str, Any] = {"host": host, "port": port}
    if listen_fd is not None:
        inherited = socket.socket(fileno=listen_fd)
        host, port = inherited.getsockname()[:2]
        where = {"sockets": [inherited]}
    print(
        f"fakepay on http://{host}:{port}  (database {path}, webhook endpoints: {len(webhook_urls)})",
        flush=True,
    )
    try:
        waitress.serve(app, threads=threads, ident="fakepay", **where)
    finally:
        deliverer.stop()
