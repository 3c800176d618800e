"""What the apps register with the runtime, so that the runtime runs it without knowing any domain.

A safety-net sweep takes the grace in seconds (work younger than that may still be on its way) and returns how many
operations it started. The supervisor of every process that runs the engine calls each registered sweep in turn.
"""

from __future__ import annotations

from collections.abc import Callable

Sweep = Callable[[float], int]

_sweeps: dict[str, Sweep] = {}


def register_sweep(name: str, sweep: Sweep) -> None:
    """Register ``sweep`` under ``name``; registering a name again replaces its sweep, in its first place."""
    _sweeps[name] = sweep


def sweeps() -> dict[str, Sweep]:
    """The registered sweeps by name, in the order they were first registered."""
    return dict(_sweeps)
