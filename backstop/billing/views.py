"""The checkout page and the result page: a form, one service call, a redirect, a page that keeps itself true."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from backstop.accounts.models import Account
from backstop.billing import checkout, claims, messages
from backstop.billing.claims import ExistingPurchase
from backstop.billing.models import Product, PurchaseAttempt
from backstop.billing.outcome import already_answer, money, note_error_shown, shown_to_buyer
from backstop.lib.errors import InvalidInput
from backstop.lib.http import client_ip
from backstop.ratelimits.services import RateLimited
from backstop.web.pages import form_page, note_rate_limited

log = logging.getLogger(__name__)
DEFAULT_PRODUCT = "annual"


def purchase_error_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Whatever fails in the purchase path, the buyer gets the truth and a reference, never a bare 500."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Exception:
            error_reference = uuid.uuid4().hex[:12]
            log.exception("purchase page failed, error reference %s", error_reference)
            # The checkout this page was about, if it got as far as being recorded: its buyer saw this error.
            note_error_shown(reference=str(kwargs.get("reference", "")),
                             idempotency_key=str(request.POST.get("idempotency_key", "")).strip()
                             if request.method == "POST" else "")
            text = messages.PURCHASE_ERROR.text.format(error_reference=error_reference,
                                                       minutes=settings.IN_DOUBT_REPLY_MINUTES)
            return render(request, "billing/error.html", {
                "title": messages.PURCHASE_ERROR_TITLE, "text": text, "error_reference": error_reference,
                "error_reference_label": messages.ERROR_REFERENCE_LABEL,
                "status_url": request.session.get("last_checkout_url", ""), "status_link": messages.STATUS_LINK,
            }, status=500)

    return guarded


def _form_context(request: HttpRequest, product: Product, account: Account | None, **extra: Any) -> dict[str, Any]:
    amount = money(product.amount_cents, product.currency)
    return {
        "product": product,
        "title": messages.CHECKOUT_TITLE.format(product=product.name),
        "intro": messages.CHECKOUT_INTRO.format(amount=amount, product=product.name),
        "button": messages.CHECKOUT_BUTTON.format(amount=amount),
        "email_label": messages.CHECKOUT_EMAIL_LABEL,
        "card_label": messages.CHECKOUT_CARD_LABEL,
        "cards": messages.TEST_CARDS,
        "signed_in_as": messages.CHECKOUT_SIGNED_IN_AS.format(email=account.email) if account else "",
        # One key per rendering of the form: a double click or a resubmitted form is one purchase.
        "idempotency_key": request.POST.get("idempotency_key") or uuid.uuid4().hex,
        "email": request.POST.get("email", ""),
        "card": request.POST.get("payment_method", messages.TEST_CARDS[0][0]),
        "errors": {},
        "problem": "",
        "already": None,
        "extend": None,
        **extra,
    }


@purchase_error_page
def checkout_page(request: HttpRequest) -> HttpResponse:
    product = Product.objects.for_sale(request.GET.get("product", DEFAULT_PRODUCT))
    if product is None:
        return render(request, "billing/outcome_missing.html", {"text": messages.PRODUCT_NOT_FOUND.text}, status=404)
    account = Account.objects.signed_in(request.user) if request.user.is_authenticated else None
    context = _form_context(request, product, account)
    if request.method == "POST":
        try:
            result = checkout.start_checkout(
                product=product.code, email=request.POST.get("email", ""), account=account,
                payment_method=request.POST.get("payment_method", ""),
                idempotency_key=request.POST.get("idempotency_key", ""), ip=client_ip(request),
                renewal=request.POST.get("renewal") == "1", renews=request.POST.get("renews", ""),
                again=request.POST.get("again") == "1",
                shown_references=request.session.get(BOUGHT_HERE, []),
            )
        except InvalidInput as error:
            context.update(errors=error.errors, problem=" ".join(error.errors.values()))
        except checkout.IdempotencyKeyReused:
            context.update(problem=messages.IDEMPOTENCY_KEY_REUSED.text, idempotency_key=uuid.uuid4().hex)
        except RateLimited as error:
            note_rate_limited(context, error)
        else:
            if result.already is not None:
                # Nothing recorded under this form's key: a fresh one, should the buyer correct the address.
                context.update(idempotency_key=uuid.uuid4().hex,
                               **_already_context(result.already, product, account, request.POST.get("email", "")))
                return _no_store(render(request, "billing/checkout.html", context))
            page_url = f"/checkout/{result.attempt.reference}"
            request.session["last_checkout_url"] = page_url
            # This browser may see this purchase again when it is the reason a later checkout charges nothing.
            request.session[BOUGHT_HERE] = [*request.session.get(BOUGHT_HERE, []), result.attempt.reference][-20:]
            return redirect(page_url)
    if account is not None:
        held = claims.held_purchase(account=account, product=product)
        if held is not None:
            context.update(_already_context(held, product, account, account.email))
    return _no_store(form_page(request, "billing/checkout.html", context))


# The references this browser's checkouts recorded (the session's): the one purchase a later checkout from the same
# browser may name without the buyer being signed in.
BOUGHT_HERE = "checkouts"


def _already_context(held: ExistingPurchase, product: Product, account: Account | None, email: str) -> dict[str, Any]:
    """The purchase the customer already has, its link, and for a signed-in holder the extension on offer."""
    answer = already_answer(held, email=email.strip())
    extend = None
    plan = claims.extension_offer(account=account, product=product) if account is not None else None
    if plan is not None and answer.kind in ("paid", "renewed"):
        amount = money(product.amount_cents, product.currency)
        new_until = plan.ends_at + dt.timedelta(days=product.period_days)
        again = answer.kind == "renewed"  # extended moments ago: another year is asked for in so many words
        extend = {"intro": messages.EXTEND_INTRO.format(new_until=f"{new_until:%B %-d, %Y}", amount=amount),
                  "button": (messages.EXTEND_AGAIN_BUTTON if again else messages.EXTEND_BUTTON).format(amount=amount),
                  "renews": claims.period_of(plan), "again": again}
    return {"already": answer, "already_link": messages.ALREADY_LINK, "extend": extend}


def _no_store(response: HttpResponse) -> HttpResponse:
    # Back after paying must show the form as it is now (a new key, or what is already held), not a cached copy.
    response["Cache-Control"] = "no-store"
    return response


@purchase_error_page
def outcome_page(request: HttpRequest, reference: str) -> HttpResponse:
    attempt = PurchaseAttempt.objects.by_reference(reference)
    if attempt is None:
        return render(request, "billing/outcome_missing.html", {"text": messages.ORDER_NOT_FOUND.text}, status=404)
    outcome = shown_to_buyer(attempt)
    return render(request, "billing/outcome.html", {
        "outcome": outcome, "offline": messages.OFFLINE, "reference_label": messages.REFERENCE_LABEL,
        "try_again": messages.TRY_AGAIN_LINK, "checkout_url": f"/checkout?product={attempt.product.code}",
    })
