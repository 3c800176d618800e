"""Fault injection around provider adapters (demo and tests only; a system check refuses it in production).

The wrapper sits between business code and an adapter, so the code under test is the production code.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from backstop.demo.models import FaultMode, FaultSetting
from backstop.lib.env import parse_pairs
from backstop.lib.errors import ProviderRefused, ProviderTimeout

log = logging.getLogger(__name__)

PROVIDERS = ("email", "sms", "workspace", "payments")
# Modes that only make sense for one provider; every other mode works for all of them.
PROVIDER_ONLY_MODES: dict[str, str] = {FaultMode.CRASH_AFTER_CHARGE: "payments"}
# The process exit status of an injected crash (EX_SOFTWARE), so a log reader can tell it from a real one.
CRASH_EXIT_STATUS = 70


def parse_faults(text: str) -> dict[str, str]:
    """``email=timeout,workspace=error`` -> {"email": "timeout", "workspace": "error"}, validated."""
    pairs = parse_pairs("BACKSTOP_FAULTS", text)
    validate_faults(pairs)
    return pairs


def validate_faults(modes: dict[str, str]) -> None:
    for provider, mode in modes.items():
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
        if mode not in modes_for(provider):
            raise ValueError(f"unknown mode {mode!r} for {provider}; known: {', '.join(modes_for(provider))}")


def modes_for(provider: str) -> list[str]:
    return [mode for mode in FaultMode.values if PROVIDER_ONLY_MODES.get(mode, provider) == provider]


def apply_injected_behaviour(provider: str, timeout: float) -> str:
    """Misbehave as the provider's mode says before the call; returns the mode for after the call."""
    mode = FaultSetting.objects.mode_of(provider)
    if mode == FaultMode.ERROR:
        # Raised before the call: nothing reached the provider, a clear refusal as an HTTP error answer is (an email
        # under it may still be re-worded; a plain ProviderError would mark it as possibly delivered).
        raise ProviderRefused(f"the {provider} provider answered with an error")
    if mode == FaultMode.TIMEOUT:
        time.sleep(timeout)
        raise ProviderTimeout(f"the {provider} provider did not answer within {timeout:g} seconds")
    if mode == FaultMode.SLOW:
        time.sleep(settings.FAULT_SLOW_SECONDS)
    return mode


def apply_after_call(provider: str, mode: str, method: str, result: Any) -> None:
    """crash_after_charge: the processor has just taken new money and this process dies before writing it down.

    A replayed answer (the processor's idempotency cache: the charge was taken before) does not crash, so the
    restarted process can finish the checkout the crash interrupted.
    """
    if mode == FaultMode.CRASH_AFTER_CHARGE and method == "charge" and not getattr(result, "replayed", False):
        log.error("fault injection: %s=%s, exiting right after the charge", provider, mode)
        os._exit(CRASH_EXIT_STATUS)


class WithFaults:
    """Wraps every public method of an adapter with the provider's injected behaviour."""

    def __init__(self, provider: str, adapter: Any, timeout: float) -> None:
        self._provider = provider
        self._adapter = adapter
        self._timeout = timeout

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._adapter, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            mode = apply_injected_behaviour(self._provider, self._timeout)
            result = method(*args, **kwargs)
            apply_after_call(self._provider, mode, name, result)
            return result

        return call


def maybe_with_faults(provider: str, adapter: Any, timeout: float) -> Any:
    return WithFaults(provider, adapter, timeout) if settings.FAULT_INJECTION else adapter
