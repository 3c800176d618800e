"""What the apps register with the engine, and how the engine runs it: queues, loops, periodic jobs, sweeps."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from django.apps import apps

from backstop.runtime import engine, registry
from conftest import wait_for


def registered() -> dict[str, list[Any]]:
    """Everything registered, as names, numbers and module-level functions (a lambda is new at each ready())."""
    return {
        "workflows": registry.workflow_modules(),
        "queues": [(spec.name, spec.concurrency(), spec.poll_seconds()) for spec in registry.queues()],
        "launch": registry.launch_steps(),
        "loops": registry.loops(),
        "periodic": [(job.name, job.job, job.every_seconds()) for job in registry.periodic_jobs()],
        "sweeps": registry.sweeps(),
        "probes": sorted(registry.probes()),
        "recovery": [name for name, _ in registry.recovery_hooks()],
    }


def test_it_holds_what_each_app_registers_in_installed_apps_order() -> None:
    assert registry.workflow_modules() == [
        "backstop.accounts.workflows", "backstop.accounts.recovery", "backstop.notify.workflows",
        "backstop.support.workflows", "backstop.incidents.workflows", "backstop.billing.workflows"]
    assert [spec.name for spec in registry.queues()] == [
        "setup", "setup-batch", "delivery", "support", "incidents", "purchase"]
    assert [name for name, _ in registry.launch_steps()] == ["reconcile-schedule"]
    assert [name for name, _ in registry.loops()] == [
        "setup-dispatcher", "incidents-follow-breakers", "purchase-starter"]
    assert [job.name for job in registry.periodic_jobs()] == [
        "breaker-probes", "inbound-thread", "snooze-wake", "support-weekly", "support-cycle", "incident-watch",
        "incident-review-reminders", "draft-cleanup"]
    assert next(name for name, _ in registry.sweeps()) == "stalled-setups"
    assert sorted(registry.probes()) == ["email", "sms", "workspace"]
    assert [name for name, _ in registry.recovery_hooks()] == ["setup", "support-incidents", "incidents"]


def test_it_registers_message_delivery_sweep_when_the_engine_loads_the_workflows() -> None:
    from backstop.notify.workflows import delivery

    assert dict(registry.sweeps())["deliver"] == delivery.sweep


def test_it_changes_nothing_when_the_apps_register_again() -> None:
    before = registered()
    locks = registry.cycle_locks()

    for config in apps.get_app_configs():
        config.ready()

    assert registered() == before
    assert registry.cycle_locks() == locks


def test_it_creates_the_queues_with_their_concurrency_and_polling(engine_db: str, settings: Any) -> None:
    numbers = {name: (engine.queue(name).worker_concurrency, engine.queue(name).polling_interval_sec)
               for name in ("setup", "setup-batch", "delivery", "purchase")}

    assert numbers == {
        "setup": (settings.SETUP_CONCURRENCY, settings.QUEUE_POLL_SECONDS),
        "setup-batch": (4, settings.QUEUE_POLL_SECONDS),
        "delivery": (settings.SETUP_CONCURRENCY, settings.QUEUE_POLL_SECONDS),
        "purchase": (settings.SETUP_CONCURRENCY, min(settings.QUEUE_POLL_SECONDS, 0.5)),
    }


@pytest.fixture
def own_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry of sweeps this test alone fills (the process's supervisor may look at it: these touch nothing)."""
    monkeypatch.setattr(registry, "_sweeps", {})


def test_it_runs_every_sweep_when_one_fails_and_names_those_that_found_work(
    own_sweeps: None, caplog: pytest.LogCaptureFixture
) -> None:
    graces: list[tuple[str, float]] = []

    def sweep(name: str, found: int) -> registry.Sweep:
        def run(grace_seconds: float) -> int:
            graces.append((name, grace_seconds))
            if found < 0:
                raise RuntimeError("the database went away")
            return found
        return run

    registry.register_sweep("quiet", sweep("quiet", 0))
    registry.register_sweep("broken", sweep("broken", -1))
    registry.register_sweep("busy", sweep("busy", 3))
    registry.register_sweep("quiet", sweep("quiet", 0))  # registered twice: still one sweep, in its first place

    with caplog.at_level(logging.WARNING, logger="backstop.runtime.engine"):
        engine.run_sweeps(grace_seconds=42.0)

    assert graces == [("quiet", 42.0), ("broken", 42.0), ("busy", 42.0)]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "safety net broken failed; it runs again at the next sweep"),
        ("WARNING", "safety net busy restarted 3 stranded operations"),
    ]


def test_it_runs_each_periodic_job_on_the_supervisor_when_another_fails(
    engine_db: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.HEARTBEAT_SECONDS = 0.1
    monkeypatch.setattr(engine, "take_over_dead_executors", lambda this_executor: [])
    monkeypatch.setattr(registry, "_periodic_jobs", {})
    runs = {"failing": 0, "healthy": 0}
    healthy_ran_twice = threading.Event()

    def failing() -> None:
        runs["failing"] += 1
        raise RuntimeError("the desk's database went away")

    def healthy() -> None:
        runs["healthy"] += 1
        if runs["healthy"] >= 2:
            healthy_ran_twice.set()

    registry.register_periodic("failing", failing, every_seconds=lambda: 0.05)
    registry.register_periodic("healthy", healthy, every_seconds=lambda: 0.05)

    wait_for(healthy_ran_twice.is_set, timeout=30, message="the supervisor did not run the periodic job twice")
    assert runs["failing"] >= 1
