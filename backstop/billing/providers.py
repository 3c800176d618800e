"""The payment processor adapter: Stripe's API through the official SDK.

The same code talks to Stripe and to `backstop fakepay` (the SDK pointed at the local process), so the demo
and the tests exercise the real client. Every charge carries an idempotency key derived from the purchase
attempt: a retry after a timeout or a crash gets the processor's original answer instead of a second charge.

Listing (the payment and refund lists a reconciliation walks, 10,000 pages for 1,000,000 payments) is plain GETs with
urllib3 on pooled keep-alive connections, with the same key, API version and query shape as the SDK, whose request
path was half of the listing's CPU (docs/decisions.md). Every write (charges, refunds) and the single-payment lookup
stay on the SDK.
The adapter is built once per thread and settings (``payment_processor()``), not per call.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import requests
import stripe
import urllib3
from django.conf import settings

from backstop.lib.adapters import wrap_adapter
from backstop.lib.errors import ProviderError, ProviderTimeout, throttled

SUCCEEDED = "succeeded"
PAGE_SIZE = 100  # Stripe's largest page
# Stripe's 409 (the same idempotency key in flight) and 429 (rate limit) may succeed on a retry.
RETRYABLE_STATUSES = (409, 429)
STRIPE_API_HOST = "https://api.stripe.com"


class RequestRefused(Exception):
    """The processor refused the request itself (a 4xx other than a decline): it did nothing, retrying won't help."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class CardDeclined(Exception):
    """The processor refused the card: nothing was charged. ``code`` is Stripe's (e.g. insufficient_funds)."""

    def __init__(self, *, code: str, message: str, payment_id: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.payment_id = payment_id


@dataclass(frozen=True)
class ProcessorPayment:
    """A payment intent as reconciliation and fulfilment need it."""

    id: str
    status: str
    amount: int
    currency: str
    created: dt.datetime
    email: str
    metadata: dict[str, str] = field(default_factory=dict)
    amount_refunded: int = 0
    # Whether amount_refunded is the processor's word: a payment read with its charge expanded (a lookup), or one
    # without a charge. A listed payment, a charge's answer or a webhook's snapshot leave it unknown (False).
    refunds_known: bool = False
    # What the processor captured (Stripe's amount_received): what can be refunded, less what already was.
    amount_received: int = 0
    # Why the last charge of this payment failed (Stripe's decline code), empty when it didn't.
    failure_code: str = ""
    # True when the processor answered from its idempotency cache: this call charged nothing new.
    replayed: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    @property
    def attempt_id(self) -> int | None:
        value = self.metadata.get("attempt_id", "")
        return int(value) if value.isdigit() else None

    @property
    def refundable(self) -> int:
        """What is left to refund: captured less refunded (meaningful only when ``refunds_known``)."""
        return max((self.amount_received or (self.amount if self.succeeded else 0)) - self.amount_refunded, 0)


# A refund that failed or was canceled gave nothing back: the charge's refunded total no longer counts it.
VOID_REFUND_STATUSES = frozenset({"failed", "canceled"})


@dataclass(frozen=True)
class Refund:
    id: str
    amount: int
    status: str
    payment_id: str = ""
    created: dt.datetime | None = None

    @property
    def counts(self) -> bool:
        return self.status not in VOID_REFUND_STATUSES


class PaymentProcessor(Protocol):
    def charge(
        self, *, amount: int, currency: str, payment_method: str, email: str, description: str,
        metadata: dict[str, str], idempotency_key: str,
    ) -> ProcessorPayment: ...

    def retrieve(self, payment_id: str) -> ProcessorPayment: ...

    def list_pages(
        self, *, created_gte: dt.datetime | None, created_lte: dt.datetime | None
    ) -> Iterator[list[ProcessorPayment]]: ...

    def refund(self, *, payment_id: str, amount: int, idempotency_key: str) -> Refund: ...

    def list_refund_pages(self, *, created_gte: dt.datetime | None) -> Iterator[list[Refund]]: ...


def _epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def payment_from_object(data: Any, *, replayed: bool = False) -> ProcessorPayment:
    """A PaymentIntent (SDK object or the plain dict inside a webhook event) as a ProcessorPayment."""
    if not isinstance(data, dict):
        data = data.to_dict()
    charge = data.get("latest_charge")
    refunded = charge.get("amount_refunded", 0) if isinstance(charge, dict) else 0
    # No charge: nothing was captured, so nothing refunded either; a charge given by id alone says nothing.
    refunds_known = isinstance(charge, dict) or not charge
    metadata = data.get("metadata") or {}
    error = data.get("last_payment_error") or {}
    return ProcessorPayment(
        id=str(data["id"]),
        status=str(data["status"]),
        amount=int(data["amount"]),
        currency=str(data["currency"]),
        created=dt.datetime.fromtimestamp(int(data["created"]), tz=dt.UTC),
        email=str(data.get("receipt_email") or metadata.get("email") or ""),
        metadata={str(k): str(v) for k, v in dict(metadata).items()},
        amount_refunded=int(refunded or 0),
        refunds_known=refunds_known,
        amount_received=int(data.get("amount_received") or 0),
        failure_code=str(error.get("decline_code") or error.get("code") or ""),
        replayed=replayed,
    )


def _replayed(obj: Any) -> bool:
    response = getattr(obj, "last_response", None)
    headers = getattr(response, "headers", None) or {}
    return str(headers.get("Idempotent-Replayed", headers.get("idempotent-replayed", ""))).lower() == "true"


class StripePayments:
    """Stripe's REST API via the official SDK; errors become ProviderError/ProviderTimeout/CardDeclined."""

    def __init__(self, *, api_key: str, api_base: str, timeout: float) -> None:
        session = requests.Session()
        # Proxy settings are read from the environment once for our one host, not on every request: a full
        # reconciliation makes a request per 100 payments, and the per-request lookup was a tenth of its CPU.
        session.trust_env = False
        session.proxies = requests.utils.get_environ_proxies(api_base or STRIPE_API_HOST)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=stripe.RequestsClient(timeout=timeout, session=session),
            # Retries are the workflow's job: it repeats the call with the same idempotency key.
            max_network_retries=0,
        )
        self._timeout = timeout
        self._list_base = (api_base or STRIPE_API_HOST).rstrip("/")
        self._list_headers = {
            "Authorization": f"Bearer {api_key}", "Stripe-Version": stripe.api_version,
            "User-Agent": f"Stripe/v1 PythonBindings/{stripe.VERSION} backstop-list", "Accept": "application/json",
        }
        self._list_http = _list_pool(self._list_base, proxies=session.proxies, timeout=timeout)

    def _call(self, what: str, call: Any) -> Any:
        try:
            return call()
        except stripe.CardError as error:
            raw = error.json_body.get("error", {}) if isinstance(error.json_body, dict) else {}
            intent = raw.get("payment_intent") or {}
            raise CardDeclined(
                code=str(raw.get("decline_code") or error.code or "card_declined"),
                message=str(raw.get("message") or error.user_message or "The card was declined."),
                payment_id=str(intent.get("id", "")),
            ) from error
        except stripe.APIConnectionError as error:
            if "timed out" in str(error).lower() or "timeout" in str(error).lower():
                raise ProviderTimeout(
                    f"the payment processor did not answer {what} within {self._timeout:g} seconds"
                ) from error
            raise ProviderError(f"could not reach the payment processor for {what}") from error
        except stripe.StripeError as error:
            status = error.http_status or 0
            # Stripe's 429 (rate limit) or 503 with Retry-After: the breaker holds every call until then.
            if held := throttled(status, (error.headers or {}).get("Retry-After") or (error.headers or {}).get(
                    "retry-after"), f"the payment processor asked us to wait before {what} (HTTP {status})"):
                raise held from error
            if 400 <= status < 500 and status not in RETRYABLE_STATUSES:
                # Stripe's 4xx means the request was refused before it ran: nothing was charged.
                raise RequestRefused(f"the payment processor refused {what} (HTTP {status}: "
                                     f"{error.user_message or error})", code=str(error.code or "")) from error
            raise ProviderError(
                f"the payment processor failed {what} (HTTP {status or 'none'}: {error.user_message or error})"
            ) from error

    def charge(
        self, *, amount: int, currency: str, payment_method: str, email: str, description: str,
        metadata: dict[str, str], idempotency_key: str,
    ) -> ProcessorPayment:
        intent = self._call("the charge", lambda: self._client.v1.payment_intents.create(
            params={
                "amount": amount, "currency": currency, "payment_method": payment_method, "confirm": True,
                # A card charged server-side: no redirect-based methods, so no return_url to come back to.
                "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                "receipt_email": email, "description": description, "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        ))
        return payment_from_object(intent, replayed=_replayed(intent))

    def retrieve(self, payment_id: str) -> ProcessorPayment:
        """The payment with its charge expanded: its refunded total is the processor's word (``refunds_known``)."""
        return payment_from_object(self._call("a payment lookup", lambda: self._client.v1.payment_intents.retrieve(
            payment_id, params={"expand": ["latest_charge"]}
        )))

    def list_pages(
        self, *, created_gte: dt.datetime | None, created_lte: dt.datetime | None
    ) -> Iterator[list[ProcessorPayment]]:
        """Payments newest first, one page at a time: memory stays at one page whatever the total."""
        created: dict[str, int] = {}
        if created_gte is not None:
            created["gte"] = _epoch(created_gte)
        if created_lte is not None:
            created["lte"] = _epoch(created_lte)
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if created:
            params["created"] = created
        while True:
            # A plain GET (see the module's docstring), without a StripeObject per payment either.
            page = self._get_page("the payment list", "/v1/payment_intents", params)
            payments = [payment_from_object(item) for item in page["data"]]
            if payments:
                yield payments
            if not page.get("has_more") or not payments:
                return
            # The cursor, plus the window narrowed to the last creation time seen: the same rows, and a
            # processor that pages by an index on `created` can seek straight to them.
            params = {**params, "starting_after": payments[-1].id,
                      "created": {**created, "lte": _epoch(payments[-1].created)}}

    def _get_page(self, what: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """One page of a list endpoint; errors as ``_call`` makes them (a GET changes nothing: no key needed)."""
        url = f"{self._list_base}{path}?{urlencode(_form_fields(params))}"
        try:
            response = self._list_http.request("GET", url, headers=self._list_headers)
        except urllib3.exceptions.NewConnectionError as error:  # a subclass of the connect timeout, so first
            raise ProviderError(f"could not reach the payment processor for {what}") from error
        except urllib3.exceptions.TimeoutError as error:
            raise ProviderTimeout(
                f"the payment processor did not answer {what} within {self._timeout:g} seconds") from error
        except urllib3.exceptions.HTTPError as error:
            raise ProviderError(f"could not reach the payment processor for {what}") from error
        try:
            body = json.loads(response.data) if response.data else {}
        except ValueError:
            body = {}
        status = response.status
        if status < 400 and isinstance(body, dict) and isinstance(body.get("data"), list):
            return body
        raw = body.get("error", {}) if isinstance(body, dict) else {}
        raw = raw if isinstance(raw, dict) else {}
        message = raw.get("message") or "no message"
        if 400 <= status < 500 and status not in RETRYABLE_STATUSES:
            raise RequestRefused(f"the payment processor refused {what} (HTTP {status}: {message})",
                                 code=str(raw.get("code") or ""))
        raise ProviderError(f"the payment processor failed {what} (HTTP {status}: {message})")

    def refund(self, *, payment_id: str, amount: int, idempotency_key: str) -> Refund:
        refund = self._call("the refund", lambda: self._client.v1.refunds.create(
            params={"payment_intent": payment_id, "amount": amount, "reason": "requested_by_customer"},
            options={"idempotency_key": idempotency_key},
        ))
        return _refund_from_object(refund.to_dict())

    def list_refund_pages(self, *, created_gte: dt.datetime | None) -> Iterator[list[Refund]]:
        """Refunds newest first by their own creation time, a page at a time (few beside the payments)."""
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if created_gte is not None:
            params["created"] = {"gte": _epoch(created_gte)}
        while True:
            page = self._get_page("the refund list", "/v1/refunds", params)
            refunds = [_refund_from_object(item) for item in page["data"]]
            if refunds:
                yield refunds
            if not page.get("has_more") or not refunds:
                return
            params = {**params, "starting_after": refunds[-1].id}


def _refund_from_object(data: dict[str, Any]) -> Refund:
    intent = data.get("payment_intent")
    intent_id = intent.get("id") if isinstance(intent, dict) else intent
    created = data.get("created")
    return Refund(id=str(data["id"]), amount=int(data["amount"]), status=str(data.get("status") or ""),
                  payment_id=str(intent_id or ""),
                  created=dt.datetime.fromtimestamp(int(created), tz=dt.UTC) if created else None)


def _form_fields(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding of nested parameters: ``{"created": {"gte": 1}}`` -> ``created[gte]=1``."""
    fields: list[tuple[str, str]] = []
    for name, value in params.items():
        key = f"{prefix}[{name}]" if prefix else str(name)
        if isinstance(value, dict):
            fields.extend(_form_fields(value, key))
        elif value is not None:
            fields.append((key, str(value)))
    return fields


LIST_CONNECTIONS = 4  # a reconciliation lists from up to three threads at once (two halves and the refund list)


def _list_pool(base: str, *, proxies: dict[str, str], timeout: float) -> urllib3.PoolManager:
    """Keep-alive connections for the list GETs: a walk reuses one connection from page to page."""
    options: dict[str, Any] = {
        "maxsize": LIST_CONNECTIONS, "block": False, "retries": False,
        "timeout": urllib3.Timeout(connect=timeout, read=timeout), "ca_certs": stripe.ca_bundle_path,
    }
    proxy = proxies.get(urlsplit(base).scheme) or proxies.get("all")
    return urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)


_per_thread = threading.local()


def _stripe_payments() -> StripePayments:
    """This thread's adapter for the current settings: its HTTP sessions and connections outlive one call."""
    config = (settings.STRIPE_API_KEY, settings.STRIPE_API_BASE, settings.PAYMENT_TIMEOUT)
    cached: tuple[tuple[str, str, float], StripePayments] | None = getattr(_per_thread, "payments", None)
    if cached is None or cached[0] != config:
        cached = (config, StripePayments(api_key=config[0], api_base=config[1], timeout=config[2]))
        _per_thread.payments = cached
    return cached[1]


def payment_processor() -> PaymentProcessor:
    # The wrappers (the demo's faults) are put on per call: cheap, and they read their settings when they wrap.
    return wrap_adapter("payments", _stripe_payments(), timeout=settings.PAYMENT_TIMEOUT)
