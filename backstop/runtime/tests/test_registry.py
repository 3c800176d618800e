"""The sweeps the apps register with the runtime: one per name, in the order first registered."""

from __future__ import annotations

import pytest

from backstop.runtime import registry


def test_it_keeps_one_sweep_per_name_in_the_order_first_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_sweeps", {})  # the process's own sweeps stay as they are

    def first(grace_seconds: float) -> int:
        return 1

    def second(grace_seconds: float) -> int:
        return 2

    def first_again(grace_seconds: float) -> int:
        return 3

    registry.register_sweep("first", first)
    registry.register_sweep("second", second)
    registry.register_sweep("first", first_again)

    assert list(registry.sweeps().items()) == [("first", first_again), ("second", second)]
    registry.sweeps().clear()  # a copy: the registry is changed only by registering
    assert list(registry.sweeps()) == ["first", "second"]


def test_it_registers_message_delivery_sweep_when_the_engine_loads_the_workflows() -> None:
    from backstop.notify.workflows import delivery

    assert registry.sweeps()["deliver"] == delivery.sweep
