"""fakepay: a local stand-in for the part of Stripe's REST API that Backstop uses.

It runs as its own process with its own SQLite file, so demos and tests can exercise real payment
flows (the official SDK, idempotency keys, card declines, refunds, signed webhooks, outages) without
a network connection or a Stripe account. It deliberately does not touch Django: the app under test
must see it exactly as it would see Stripe, as a remote HTTP service.

Start it with ``backstop fakepay [--port 12111] [--db FILE] [--webhook-url URL ...]
[--webhook-secret whsec_...] [--allow-reset]`` and point the SDK at it::

    client = stripe.StripeClient("sk_test_anything", base_addresses={"api": "http://127.0.0.1:12111"})
    # or, with the SDK's global configuration:
    stripe.api_key, stripe.api_base = "sk_test_anything", "http://127.0.0.1:12111"

Stripe endpoints: ``POST/GET /v1/payment_intents``, ``GET /v1/payment_intents/{id}``,
``POST /v1/payment_intents/{id}/confirm`` and ``/cancel``, ``POST/GET /v1/refunds``, ``GET /v1/refunds/{id}``,
``GET /v1/charges/{id}``, ``GET /v1/events`` and ``/v1/events/{id}``.
Local controls: ``GET /_fakepay/health``, ``GET|POST /_fakepay/faults`` (``{"mode": "ok"|"error"|"timeout"}``),
``POST /_fakepay/reset`` (with ``--allow-reset``), ``POST /_fakepay/events/{id}/redeliver``.

Modules: ``server`` (HTTP, auth, idempotency, faults), ``payments`` (endpoint behaviour), ``params``
(form decoding and validation), ``store`` (SQLite, pagination, bulk seeding), ``webhooks`` (signing and
the delivery thread), ``errors`` (Stripe's error shape).
"""
