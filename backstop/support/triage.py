"""How bad the desk's own signals are, and what a person should do about a case. No writes here.

Attention records state their own harm and cause (``backstop.attention``): the desk takes them as they come.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from backstop.accounts.models import STEP_PROVIDERS
from backstop.attention.models import AttentionKind, Harm
from backstop.runtime.models import BreakerState, CircuitBreaker
from backstop.support import messages
from backstop.support.models import SignalKind

# Kinds where money was (or may have been) taken and nobody has access for it: a processor payment matching no
# checkout, a checkout whose payment could not be settled (billing raises both with harm MONEY). They choose the
# suggested action and the desk's money view. (An order without a payment hurts us, not the customer.)
MONEY_KINDS = frozenset({AttentionKind.PAYMENT_UNMATCHED.value, AttentionKind.PAYMENT_UNRESOLVED.value,
                         SignalKind.PAID_WITHOUT_ACCESS.value})
EMAIL_KINDS = frozenset({AttentionKind.EMAIL_UNDELIVERED.value, SignalKind.MESSAGE_UNDELIVERED.value})


def harm_of(kind: str, *, step: str = "") -> Harm:
    """The harm of a signal the desk raises itself; an attention record states its own."""
    if kind == SignalKind.PAID_WITHOUT_ACCESS:
        return Harm.MONEY
    if kind == SignalKind.SETUP_DELAYED and step == "workspace":
        return Harm.LOCKED_OUT
    if kind == SignalKind.CONTACT:
        return Harm.QUESTION
    return Harm.DEGRADED


def failing_providers() -> dict[str, CircuitBreaker]:
    """Providers whose breaker is not closed, or closed but still counting failures: calls are not getting through."""
    return {
        breaker.provider: breaker
        for breaker in CircuitBreaker.objects.all()
        if breaker.state != BreakerState.CLOSED or breaker.consecutive_failures > 0
    }


def provider_is_down(failing: Mapping[str, CircuitBreaker], provider: str) -> bool:
    """Down means the breaker is open (or probing); a few failures on a closed breaker still let calls through."""
    breaker = failing.get(provider)
    return breaker is not None and breaker.state != BreakerState.CLOSED


@dataclass(frozen=True)
class Suggestion:
    action: str
    reason: str

    @property
    def label(self) -> str:
        return messages.ACTIONS[self.action].label


def suggest(
    *, kinds: Collection[str], failing: Mapping[str, CircuitBreaker], has_phone: bool
) -> Suggestion:
    """The one action most likely to fix the case, from its open signal kinds and current provider health."""

    def make(action: str, provider: str = "") -> Suggestion:
        # "Working" only when its last call succeeded; after recent failures a retry may or may not go through.
        reason = "retry_setup_unsure" if action == "retry_setup" and provider in failing else action
        return Suggestion(action, messages.SUGGESTION_REASONS[reason].format(provider=messages.provider_name(provider)))

    if not kinds:
        return make("close")
    if AttentionKind.REFUND_UNCONFIRMED in kinds:
        # We told them it was refunded and the processor did not refund it: it is owed.
        return Suggestion("refund_payment", messages.SUGGESTION_REASONS["refund_payment_unconfirmed"])
    money = set(kinds) & MONEY_KINDS
    if money:
        # A payment matching none of our checkouts has no order to fulfil: it goes back to the payer.
        return make("refund_payment" if money == {AttentionKind.PAYMENT_UNMATCHED} else "fulfil_from_charge")
    if AttentionKind.SETUP_STALLED in kinds:
        if provider_is_down(failing, "workspace"):
            return make("complete_workspace")
        return make("retry_setup", "workspace")
    if set(kinds) & EMAIL_KINDS:
        if provider_is_down(failing, "email"):
            return make("send_code_sms") if has_phone else make("reply")
        if AttentionKind.EMAIL_UNDELIVERED in kinds:
            return make("retry_setup", "email")
        return make("reply")
    if SignalKind.SETUP_DELAYED in kinds:
        if any(provider_is_down(failing, p) for p in STEP_PROVIDERS.values()):
            return make("wait")
        return make("retry_setup", "workspace")
    return make("reply")
