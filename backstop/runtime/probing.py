"""The half-open probe on a timer: a failing provider is checked by a cheap health call, not by customer traffic.

While a breaker is open (or probing), the supervisor's periodic job
``breaker-probes`` calls the provider's registered probe (``registry.register_probe``) at most once per
BREAKER_PROBE_SECONDS across all processes (a conditional UPDATE of ``probed_at`` picks one prober). Its outcome is
recorded on the breaker like any call's: a success closes it and marks the outage's measured end (``recovered_at``),
a failure keeps it open. Then, for each breaker that closed after an outage since they last ran (whoever's call
succeeded: this probe or a customer's), the registered recovery hooks run once (``registry.register_recovery_hook``):
the apps retry what waited on the provider and end its incident. The runtime names no provider and no domain.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from backstop.lib.errors import ProviderError, ProviderThrottled
from backstop.runtime import registry
from backstop.runtime.models import BreakerState, CircuitBreaker

log = logging.getLogger(__name__)


def probe_failing_providers() -> list[str]:
    """Probe each registered provider whose breaker is open, then run the recovery hooks of every breaker that
    recovered since they last ran. Returns the providers whose recovery was handled."""
    probes = registry.probes()
    down = (CircuitBreaker.objects.filter(provider__in=list(probes)).exclude(state=BreakerState.CLOSED)
            .values_list("provider", flat=True))
    for provider in list(down):
        if _claim_probe(provider):
            probe_provider(provider, probes[provider])
    return handle_recoveries()


def _claim_probe(provider: str) -> bool:
    """This process probes ``provider`` now, unless another one did within the last half interval.

    An open breaker turns half-open for the probe's length (callers keep waiting, as for a customer's probe), so a
    probe that fails re-opens it with a fresh cool-down.
    """
    now = timezone.now()
    recent = now - dt.timedelta(seconds=settings.BREAKER_PROBE_SECONDS / 2)
    won = (CircuitBreaker.objects.filter(pk=provider).exclude(state=BreakerState.CLOSED)
           .filter(Q(probed_at__isnull=True) | Q(probed_at__lte=recent)).update(probed_at=now))
    if won:
        CircuitBreaker.objects.filter(pk=provider, state=BreakerState.OPEN).update(
            state=BreakerState.HALF_OPEN, retry_at=now + dt.timedelta(seconds=settings.BREAKER_COOLDOWN_SECONDS))
    return bool(won)


def probe_provider(provider: str, probe: Callable[[], object]) -> bool:
    """One health call, recorded on the breaker; True when the provider answered."""
    try:
        probe()
    except ProviderThrottled as error:
        # It answers, but asks to be left alone until then: neither a recovery nor a failure; nobody calls it sooner.
        CircuitBreaker.objects.record_hold(provider, error.retry_after, str(error), stated_rate=error.stated_rate,
                                           rate_limited=error.rate_limited)
        return False
    except ProviderError as error:
        CircuitBreaker.objects.record_failure(provider, str(error))
        return False
    except Exception as error:  # a probe's own bug must not read as the provider's recovery
        log.exception("the %s probe failed unexpectedly", provider)
        CircuitBreaker.objects.record_failure(provider, f"the health check failed ({type(error).__name__})")
        return False
    CircuitBreaker.objects.record_success(provider)
    return True


def handle_recoveries() -> list[str]:
    """Run the recovery hooks once for each breaker closed after an outage since they last ran (one process wins)."""
    handled = []
    pending = CircuitBreaker.objects.filter(recovered_at__isnull=False).filter(
        Q(recovery_handled_at__isnull=True) | Q(recovery_handled_at__lt=F("recovered_at")))
    for provider, recovered_at, handled_at in list(pending.values_list("provider", "recovered_at",
                                                                        "recovery_handled_at")):
        won = CircuitBreaker.objects.filter(pk=provider, recovered_at=recovered_at,
                                            recovery_handled_at=handled_at).update(recovery_handled_at=timezone.now())
        if not won:
            continue
        handled.append(provider)
        for name, hook in registry.recovery_hooks():
            try:
                hook(provider)
            except Exception:  # one app's hook failing must not keep the others from their customers
                log.exception("recovery hook %s failed for provider %s", name, provider)
    return handled
