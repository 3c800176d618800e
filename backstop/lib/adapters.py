"""Wrappers installed around every provider adapter, so that a provider module needs to know none of them.

A providers.py builds its adapter and hands it to ``wrap_adapter`` with the provider's name and timeout; whatever
wrappers were installed (the demo app's fault injection, from its ``AppConfig.ready()``) sit between business code and
the adapter, so the code under test is the production code. With none installed the adapter comes back as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

Adapter = TypeVar("Adapter")
# (provider name, adapter, the adapter's timeout in seconds) -> the adapter, or an object with its methods.
AdapterWrapper = Callable[[str, Any, float], Any]

_wrappers: dict[str, AdapterWrapper] = {}


def install_adapter_wrapper(name: str, wrapper: AdapterWrapper) -> None:
    """Wrap every adapter built from now on; installing a name again replaces its wrapper (ready() may run twice)."""
    _wrappers[name] = wrapper


def adapter_wrappers() -> list[tuple[str, AdapterWrapper]]:
    return list(_wrappers.items())


def wrap_adapter(provider: str, adapter: Adapter, *, timeout: float) -> Adapter:
    """The adapter inside every installed wrapper, the first installed innermost."""
    wrapped: Any = adapter
    for wrapper in _wrappers.values():
        wrapped = wrapper(provider, wrapped, timeout)
    # A wrapper answers every method of the adapter it wraps, so it stands for the adapter's protocol.
    return cast(Adapter, wrapped)
