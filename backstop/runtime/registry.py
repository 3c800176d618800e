"""What each app plugs into the workflow engine, registered from its ``AppConfig.ready()``.

The engine (runtime/engine.py) knows no domain: at launch it imports the registered workflow modules, creates the
registered queues, runs the launch steps and starts the loops; its supervisor thread runs the periodic jobs and the
safety-net sweeps. An app that owns a queue, a loop or a sweep registers it beside its own code.

Registration is keyed by name, so a second ``ready()`` (the test suite may run it again) replaces an entry in place
rather than adding a copy; entries keep the order of their first registration, which is INSTALLED_APPS order.
Nothing here starts a thread or touches a database: registering is safe in every process, a management command's too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

Sweep = Callable[[float], int]
Loop = Callable[[threading.Event], None]


@dataclass(frozen=True)
class QueueSpec:
    """A DBOS queue. Its numbers are read at launch, so settings changed after start-up (the tests') still count."""

    name: str
    concurrency: Callable[[], int]
    poll_seconds: Callable[[], float]


@dataclass(frozen=True)
class PeriodicJob:
    """Work the supervisor thread runs every ``every_seconds()`` (read again after each run)."""

    name: str
    job: Callable[[], object]
    every_seconds: Callable[[], float]


_workflow_modules: dict[str, None] = {}
_queues: dict[str, QueueSpec] = {}
_launch_steps: dict[str, Callable[[], object]] = {}
_loops: dict[str, Loop] = {}
_periodic_jobs: dict[str, PeriodicJob] = {}
_sweeps: dict[str, Sweep] = {}
_probes: dict[str, Callable[[], object]] = {}
_recovery_hooks: dict[str, Callable[[str], object]] = {}
# Each background thread holds its lock for one cycle of work: engine.hold_background_threads() takes them all.
_cycle_locks: dict[str, threading.Lock] = {}
_cycle_locks_guard = threading.Lock()


def register_workflows(module: str) -> None:
    """A module (dotted name) whose DBOS workflows must be registered before launch: the engine imports it then."""
    _workflow_modules[module] = None


def register_queue(name: str, *, concurrency: Callable[[], int], poll_seconds: Callable[[], float]) -> None:
    _queues[name] = QueueSpec(name=name, concurrency=concurrency, poll_seconds=poll_seconds)


def register_at_launch(name: str, step: Callable[[], object]) -> None:
    """Run ``step`` once the engine and its queues are up (a schedule to apply, say)."""
    _launch_steps[name] = step


def register_loop(name: str, loop: Loop) -> None:
    """Start ``loop(stop)`` at launch on a thread of its own (``backstop-<name>``); it returns once ``stop`` is set.

    The loop holds ``cycle_lock(name)`` for each cycle of work, so that the test suite can hold it between tests.
    """
    cycle_lock(name)
    _loops[name] = loop


def register_periodic(name: str, job: Callable[[], object], *, every_seconds: Callable[[], float]) -> None:
    _periodic_jobs[name] = PeriodicJob(name=name, job=job, every_seconds=every_seconds)


def register_sweep(name: str, sweep: Sweep) -> None:
    """A safety net: the supervisor calls ``sweep(grace_seconds)`` every SWEEP_GRACE_SECONDS / 2.

    It returns how many things it found stranded and restarted; more than none is logged as a warning with its name.
    """
    _sweeps[name] = sweep


def register_probe(provider: str, probe: Callable[[], object]) -> None:
    """A cheap health call to ``provider`` (raising ``ProviderError`` when it fails), made while its breaker is open,
    on a timer of its own (``runtime.probing``): recovery is noticed without waiting for customer traffic."""
    _probes[provider] = probe


def register_recovery_hook(name: str, hook: Callable[[str], object]) -> None:
    """Call ``hook(provider)`` once each time a provider's breaker closes after being open (whoever's call succeeded):
    the apps retry what waited on it."""
    _recovery_hooks[name] = hook


def workflow_modules() -> list[str]:
    return list(_workflow_modules)


def queues() -> list[QueueSpec]:
    return list(_queues.values())


def launch_steps() -> list[tuple[str, Callable[[], object]]]:
    return list(_launch_steps.items())


def loops() -> list[tuple[str, Loop]]:
    return list(_loops.items())


def periodic_jobs() -> list[PeriodicJob]:
    return list(_periodic_jobs.values())


def sweeps() -> list[tuple[str, Sweep]]:
    return list(_sweeps.items())


def probes() -> dict[str, Callable[[], object]]:
    return dict(_probes)


def recovery_hooks() -> list[tuple[str, Callable[[str], object]]]:
    return list(_recovery_hooks.items())


def cycle_lock(name: str) -> threading.Lock:
    """The lock a background thread holds for each cycle of its work (created on first use, one per name)."""
    with _cycle_locks_guard:
        return _cycle_locks.setdefault(name, threading.Lock())


def cycle_locks() -> list[threading.Lock]:
    """Every cycle lock, always in the same order, so that two holders cannot each wait for the other's."""
    with _cycle_locks_guard:
        return list(_cycle_locks.values())
