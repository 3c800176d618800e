"""Adapter wrappers: installed once by name, applied around every adapter a provider module builds."""

from __future__ import annotations

from typing import Any

import pytest

from backstop.lib import adapters


class Echo:
    def echo(self, text: str) -> str:
        return text


class Tagged:
    """A wrapper that says which wrapper it is and what it was told about the adapter."""

    def __init__(self, tag: str, provider: str, inner: Any, timeout: float) -> None:
        self.tag, self.provider, self.inner, self.timeout = tag, provider, inner, timeout

    def echo(self, text: str) -> str:
        return f"{self.tag}({self.inner.echo(text)})"


@pytest.fixture
def no_wrappers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapters, "_wrappers", {})


def test_it_hands_the_adapter_back_untouched_when_nothing_is_installed(no_wrappers: None) -> None:
    adapter = Echo()

    assert adapters.wrap_adapter("email", adapter, timeout=1.0) is adapter


def test_it_wraps_in_installation_order_and_replaces_a_wrapper_installed_again(no_wrappers: None) -> None:
    adapters.install_adapter_wrapper("outer-first", lambda p, a, t: Tagged("first", p, a, t))
    adapters.install_adapter_wrapper("second", lambda p, a, t: Tagged("second", p, a, t))
    adapters.install_adapter_wrapper("outer-first", lambda p, a, t: Tagged("again", p, a, t))

    wrapped = adapters.wrap_adapter("sms", Echo(), timeout=2.5)

    assert [name for name, _ in adapters.adapter_wrappers()] == ["outer-first", "second"]
    assert wrapped.echo("hi") == "second(again(hi))"
    assert isinstance(wrapped, Tagged)
    assert (wrapped.provider, wrapped.timeout) == ("sms", 2.5)

