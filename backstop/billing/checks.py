"""Payment misconfiguration is a system check, so `backstop serve` refuses to start with it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register


@register("backstop")
def check_payment_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    stripe_mode = settings.PAYMENTS_PROVIDER == "stripe"
    if stripe_mode and settings.STRIPE_API_KEY in ("", settings.FAKEPAY_API_KEY):
        problems.append(Error("BACKSTOP_PAYMENTS=stripe needs a real STRIPE_API_KEY",
                              hint="Set STRIPE_API_KEY to a secret key from the Stripe dashboard.", id="backstop.E101"))
    if stripe_mode and settings.STRIPE_WEBHOOK_SECRET in ("", settings.FAKEPAY_WEBHOOK_SECRET):
        problems.append(Error("BACKSTOP_PAYMENTS=stripe needs the webhook endpoint's STRIPE_WEBHOOK_SECRET",
                              hint="Copy the signing secret (whsec_...) of the endpoint /api/webhooks/payments.",
                              id="backstop.E102"))
    if settings.MODE == "production" and settings.STRIPE_API_KEY.startswith("sk_test_"):
        problems.append(Warning("payments use a test key in production",
                                hint="Set BACKSTOP_PAYMENTS=stripe and a live STRIPE_API_KEY.", id="backstop.W101"))
    return problems
