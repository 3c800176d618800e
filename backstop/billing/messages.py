"""Every sentence the checkout says to a buyer, in one place.

Each outcome says what happened, what we are doing, and what the buyer can do; a buyer who may have paid is
always told not to pay again. Placeholders ({reference}, {email}, {minutes}...) are filled by outcome.py.
"""

from __future__ import annotations

from backstop.lib.site_messages import Notice

# The page and the API both speak in these outcomes (see outcome.py for how an attempt maps to one).
PROCESSING = "processing"
FINISHING = "finishing"
PAID = "paid"
REFUNDED = "refunded"
DECLINED = "declined"
NOT_CHARGED = "not_charged"
IN_DOUBT = "in_doubt"
# Not an outcome of its own (the API still says "processing"): its words once the usual few seconds are over.
PROCESSING_LATE = "processing_late"

TITLES = {
    PROCESSING: "We're taking your payment",
    PROCESSING_LATE: "Your payment is taking longer than usual",
    FINISHING: "Payment received: finishing your order",
    PAID: "Paid: your plan is active",
    REFUNDED: "Refunded",
    DECLINED: "Your card was declined",
    NOT_CHARGED: "You were not charged",
    IN_DOUBT: "We're checking your payment",
}

OUTCOMES = {
    PROCESSING: Notice(
        "We're charging your card for {product} ({amount}). This usually takes a few seconds.",
        "Your order reference is {reference}. This page updates by itself.",
        "Please don't pay again: if you leave this page, we still finish your order and email {email}.",
    ),
    PROCESSING_LATE: Notice(
        "Your payment for {product} ({amount}) is taking longer than usual: our payment processor hasn't given us "
        "its final answer yet.",
        "We keep at it until it does, always for this one payment, so you can't be charged twice, and we finish your "
        "order the moment it answers. Your order reference is {reference}; this page updates by itself.",
        "Please don't pay again. You don't need to stay here: if you leave this page, we still finish your order and "
        "email {email}.",
    ),
    FINISHING: Notice(
        "We received your payment of {amount}. You do not need to pay again.",
        "We're activating {product} now; your reference is {reference}. This page updates by itself, "
        "and a confirmation email to {email} will follow.",
        "You don't need to do anything. If this page closes, your order still finishes.",
    ),
    PAID: Notice(
        "Thank you: your payment of {amount} went through and {product} is active until {ends_on}.",
        "{confirmation} Your order reference is {reference}.",
        "You don't need to do anything else.",
    ),
    REFUNDED: Notice(
        "We refunded {refunded} to your card on {refunded_on}; {product} has ended.",
        "Refunds usually reach the card within 5 to 10 business days. Your order reference is {reference}.",
        "If it hasn't arrived after 10 business days, write to us with the reference.",
    ),
    DECLINED: Notice(
        "Your card was declined: {reason} Nothing was charged.",
        "",
        "You can try again with another card.",
    ),
    NOT_CHARGED: Notice(
        "We checked with our payment processor: your card was not charged for {product}.",
        "Nothing else will happen with this order ({reference}).",
        "You can try again whenever you like.",
    ),
    IN_DOUBT: Notice(
        "We didn't get a clear answer from our payment processor, so your card may or may not have been "
        "charged. Please do not pay again.",
        "We are checking with the processor and will email {email} within {minutes} minutes with the result. "
        "If you were charged, your order ({reference}) will be finished automatically; you will never be "
        "charged twice for it.",
        "You don't need to do anything. This page updates by itself.",
    ),
}
# The paid outcome of an extension (an order whose plan starts where the previous one ends).
RENEWAL_PAID = Notice(
    "Thank you: your payment of {amount} went through and {product} is extended until {ends_on}.",
    "{confirmation} Your order reference is {reference}.",
    "You don't need to do anything else.",
)
# The paid notices' word on the confirmation email: "sent" only once it went (an email outage holds it, queued).
CONFIRMATION_SENT = "We've sent a confirmation to {email}."
CONFIRMATION_COMING = "A confirmation email to {email} will follow."
# A payment refunded in full before its order was made: the plan never started.
REFUNDED_BEFORE_ACCESS = Notice(
    "Your payment of {amount} was refunded to your card in full on {refunded_on}, before your order was finished, so "
    "{product} was not activated.",
    "Refunds usually reach the card within 5 to 10 business days. Your order reference is {reference}.",
    "If you still want {product}, you can buy it again.",
)
# Added to the "paid" message when part of the payment has been refunded.
PARTLY_REFUNDED = "{refunded} of {amount} was refunded to your card on {refunded_on}."
DECLINE_REASONS = {
    "insufficient_funds": "the bank says there aren't enough funds.",
    "expired_card": "the card has expired.",
    "incorrect_cvc": "the security code doesn't match.",
    "lost_card": "the bank refused the card.",
    "stolen_card": "the bank refused the card.",
    "processing_error": "the bank had a processing error.",
    "resource_missing": "we couldn't use that card.",
}
DECLINE_REASON_DEFAULT = "the bank refused the payment."

# The confirmation email of a buyer who was told something went wrong names it (purchase_recovered's
# "what_happened"); BuyerSaw value -> the rest of "When you paid on <date> at <time> UTC, ...".
APOLOGY_FOR = {
    "late": "your payment took much longer than usual to go through, and our order page told you so while you waited.",
    "in_doubt": "we didn't get a clear answer from our payment processor, and our order page told you we were still "
                "checking whether your card had been charged.",
    "offline": "our order page lost contact with our server and told you it couldn't reach it.",
    "error": "something went wrong on our side and our checkout showed you an error page instead of your order.",
}
# When we can't tell what the buyer saw, only that the checkout did not go straight through (a crash, a restart).
APOLOGY_DEFAULT = (
    "something went wrong on our side before we could finish your order, so you may have seen an error, a page that "
    "never finished, or no confirmation at all."
)

# Shown by the result page's script when it cannot reach us (e.g. while the server restarts).
OFFLINE = (
    "We can't reach our server right now. If you paid, your payment is safe and your order will be finished: "
    "please don't pay again. This page keeps trying by itself."
)

# Any unexpected error in the purchase path: never a bare 500, always this page with a reference.
PURCHASE_ERROR = Notice(
    "Something went wrong on our side while we were handling your order (error reference {error_reference}).",
    "If your card was charged, we finish your order automatically and email you; you will never be "
    "charged twice for one order.",
    "Please don't pay again for now. If you have no email from us within {minutes} minutes, write to us and "
    "quote the error reference.",
)
PURCHASE_ERROR_TITLE = "Something went wrong on our side"
ORDER_NOT_FOUND = Notice(
    "We couldn't find an order with that reference.",
    "",
    "Check the reference in your confirmation email, or write to us and we'll look it up.",
)
PRODUCT_NOT_FOUND = Notice("That plan isn't on sale.", "Nothing was charged.", "Check the link, or write to us.")
IDEMPOTENCY_KEY_REUSED = Notice(
    "This checkout was already submitted with different details.",
    "Nothing new was charged.",
    "Reload the checkout page to start a new purchase.",
)
CREDIT_NO_ACTIVE_PLAN = "This customer has no active plan to add days to. Nothing was changed."
CREDIT_DAYS_OUT_OF_RANGE = "A credit is between 1 and {max_days} days. Nothing was changed."
# For the support desk: a refund made in the processor's dashboard that we cannot interpret on our own.
REFUND_PARTIAL_SUMMARY = (
    "{refunded} of order {reference} ({amount}, {email}) was refunded at the processor. The order shows the partial "
    "refund and keeps full access: decide what access it keeps and tell the customer."
)
# Reconciliation: our books say refunded, the processor does not. Never undone by a machine: a person looks.
REFUND_UNCONFIRMED_SUMMARY = (
    "Order {reference} ({amount}, {email}) shows {ours} refunded, but the processor says {theirs} of payment "
    "{payment_id} was refunded. The customer may have been told of a refund they did not get: check at the processor, "
    "and refund the payment from the case if it is owed."
)
NOTHING_CAPTURED = "payment {payment_id} captured nothing to refund (its status is {status})"
NOT_REFUNDABLE = "The payment processor refused to refund this order ({error}). Nothing changed here."
REFUND_FAILED = "The payment processor didn't refund this order: {error} Nothing changed; try again later."
CSRF_FAILED = "This request came without our page's security token. Reload the checkout page and try again."
STAFF_ONLY = "Only staff can do this. Sign in with a staff account."
WEBHOOK_BAD_SIGNATURE = "The Stripe-Signature header is missing, invalid, or too old."
WEBHOOK_MALFORMED = (
    "The signature is valid but the body is not a payment event we can read (JSON with an id, a type and "
    "data.object); nothing was changed."
)

FIELD_ERRORS = {
    "product_unknown": "Choose a plan that's on sale.",
    "payment_method_required": "Choose a card to pay with.",
    "payment_method_invalid": "That card can't be used here.",
    "idempotency_key_invalid": "The Idempotency-Key header must be 1 to 255 printable characters.",
    "renewal_sign_in": "Sign in to extend your plan: an extension is added to the plan of your account.",
    "renewal_nothing_to_extend": "You have no running plan to extend. Buy the plan instead; nothing was charged.",
    "renewal_plan_changed": "Your plan changed since this page was shown. Nothing was charged: reload the page, "
                            "check the new end date, and extend again if you still want to.",
}

# One purchase per intent (claims.py): what a checkout answers instead of charging a second time.
ALREADY_PURCHASED = "already_purchased"  # the API's error code, whatever the purchase's state
ALREADY_TITLES = {
    "paid": "You already have this plan",
    "renewed": "Your plan is already extended",
    "under_way": "Your payment is being processed",
    "emailed": "Nothing was charged",
}
ALREADY = {
    # To the signed-in owner, or the browser that bought it: the purchase itself, with its link.
    "paid": Notice(
        "You already have {product} until {until}. Nothing was charged this time.",
        "Your order reference is {reference}.",
        "To add another year, choose \u201cExtend by a year\u201d on the checkout page while signed in.",
    ),
    "renewed": Notice(
        "Your {product} is already extended until {until}. Nothing was charged this time.",
        "Your order reference is {reference}.",
        "You don't need to do anything.",
    ),
    "under_way": Notice(
        "Your payment for {product} is being processed (order {reference}). Nothing new was charged.",
        "",
        "Please don't pay again: the order's page shows when it's done, and we'll email you.",
    ),
    # To anyone else who typed the address: not whether it is paid, not until when, not the reference.
    "emailed": Notice(
        "Nothing was charged: {product} was already bought with this email address.",
        "We've emailed the link to that order to {email}.",
        "If that's your address, the email tells you where the order stands.",
    ),
}
ALREADY_LINK = "See your order"
# The checkout page of a signed-in customer who holds the plan: an extension is its own, clearly named action.
EXTEND_INTRO = ("Extending adds one more year after your current plan ends: it would then run until {new_until}, "
                "for {amount}, charged once.")
EXTEND_BUTTON = "Extend by a year for {amount}"
EXTEND_AGAIN_BUTTON = "Extend by another year for {amount}"

# The checkout page.
CHECKOUT_TITLE = "Buy {product}"
CHECKOUT_INTRO = "{amount} for one year of {product}, charged once."
CHECKOUT_BUTTON = "Pay {amount}"
CHECKOUT_EMAIL_LABEL = "Email for the receipt"
CHECKOUT_CARD_LABEL = "Card"
# The fake processor's test cards (the same names Stripe's test mode uses).
TEST_CARDS = [
    ("pm_card_visa", "Test Visa ending 4242 (succeeds)"),
    ("pm_card_chargeDeclined", "Test card that is declined"),
    ("pm_card_chargeDeclinedInsufficientFunds", "Test card with insufficient funds"),
]
CHECKOUT_SIGNED_IN_AS = "You're buying as {email}."
TRY_AGAIN_LINK = "Try again"
STATUS_LINK = "See the order's status"
REFERENCE_LABEL = "Order reference"
ERROR_REFERENCE_LABEL = "Error reference"
