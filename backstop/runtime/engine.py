"""Starting and stopping the durable-workflow engine (DBOS) inside a web or worker process.

Every process gets its own executor id. DBOS recovers only its own workflows when a process restarts
with the same id, so each process also runs a supervisor thread: it writes a heartbeat and, when a
peer has been silent for EXECUTOR_DEAD_AFTER_SECONDS, claims it (one winner, by conditional UPDATE)
and re-enqueues the dead peer's pending workflows through DBOS's recovery API.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig, Queue
from django.conf import settings
from django.db import connections

from backstop.lib.sqlite_gate import GatedConnection, defer_to_foreground
from backstop.runtime.models import Executor

log = logging.getLogger(__name__)

SETUP_QUEUE = "setup"
SETUP_BATCH_QUEUE = "setup-batch"
# Setup batches one process runs at once: a batch is up to SETUP_BATCH_SIZE accounts, a few keep the providers busy.
SETUP_BATCHES_AT_ONCE = 4
DELIVERY_QUEUE = "delivery"
PURCHASE_QUEUE = "purchase"
# A buyer's page waits for the purchase workflow: its queue is looked at more often than the background ones.
PURCHASE_POLL_SECONDS = 0.5
# A fixed version lets any process of this release recover any other's workflows.
APPLICATION_VERSION = "backstop-1"

_state: dict[str, Any] = {"queues": {}, "stop": None, "executor_id": None}
_first_setups_wanted = threading.Event()
# Held by the background threads for each cycle of work, so that hold_background_threads() can wait for it.
_cycle_locks = {"dispatcher": threading.Lock(), "supervisor": threading.Lock(), "heartbeat": threading.Lock()}


def release_db_connections() -> None:
    """Close this thread's Django connections: workflow threads wait for minutes between steps."""
    connections.close_all()


def yield_cpu_to_requests() -> None:
    """Lower this thread's CPU priority: a person waiting on a page comes before background work.

    Called first by the background workflows (setup, delivery, reconciliation) and by the supervisor; the purchase
    workflow keeps normal priority because a buyer waits on its charge. On Linux the nice value belongs to the
    thread, so the web server's threads in the same process keep theirs; background work still gets every idle cycle.
    On SQLite its writes also queue behind the web requests' for the file's write lock.
    """
    defer_to_foreground()
    if settings.BACKGROUND_NICE and hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           max(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), settings.BACKGROUND_NICE))
        except OSError:  # a platform that refuses: background work runs at normal priority
            log.debug("could not lower the priority of background thread %s", threading.get_native_id())


def wake_setup_dispatcher() -> None:
    """An account waits for its first setup attempts: this process's dispatcher looks now, not at its next poll."""
    _first_setups_wanted.set()


def wait_for_message(topic: str, timeout_seconds: float) -> Any:
    """Durable wait inside a workflow that holds no database connection while it waits."""
    release_db_connections()
    return DBOS.recv(topic, timeout_seconds=max(0.05, timeout_seconds))


@contextmanager
def hold_background_threads() -> Iterator[None]:
    """Let this process's background threads end the cycle they are in and start no other until the block ends.

    The test suite flushes the database under it: on PostgreSQL a TRUNCATE of every table deadlocks with a cycle's
    transaction, which holds a lock on one table and asks for the next.
    """
    with ExitStack() as held:
        for lock in _cycle_locks.values():
            held.enter_context(lock)
        yield


def executor_id() -> str:
    current = _state["executor_id"]
    if current is None:
        raise RuntimeError("the workflow engine is not running in this process")
    return str(current)


def queue(name: str) -> Queue:
    queues: dict[str, Queue] = _state["queues"]
    return queues[name]


def is_running() -> bool:
    return _state["executor_id"] is not None


def default_executor_id(role: str) -> str:
    return settings.EXECUTOR_ID or f"{socket.gethostname()}-{role}-{os.getpid()}"


def launch(*, role: str) -> str:
    """Start DBOS in this process: queues, schedules, heartbeat and takeover of dead peers."""
    # Importing the workflow modules registers their workflows before launch.
    from backstop.accounts import workflows as account_workflows  # noqa: F401
    from backstop.billing import workflows as billing_workflows
    from backstop.notify import workflows as notify_workflows  # noqa: F401

    this_executor = default_executor_id(role)
    config: DBOSConfig = {
        "name": "backstop",
        "system_database_url": settings.DBOS_SYSTEM_DATABASE_URL,
        "executor_id": this_executor,
        "application_version": APPLICATION_VERSION,
        "log_level": settings.LOG_LEVEL,
        # SQLite has no LISTEN/NOTIFY: DBOS looks for each waiting workflow's messages once per interval, so the cost
        # grows with the number of waiting workflows. PostgreSQL is told at once.
        "notification_listener_polling_interval_sec": max(0.1, settings.QUEUE_POLL_SECONDS),
        "scheduler_polling_interval_sec": 5.0,
        # DBOS flushes event and stream notifications on this period (default 10 ms: 100 wake-ups a second, a tenth
        # of an idle worker's Python time). We use neither events nor streams.
        "notification_coalesce_sec": 1.0,
    }
    _use_write_ahead_log()
    if settings.DBOS_SYSTEM_DATABASE_URL.startswith("sqlite:///"):
        # The engine's writers queue for the file's write lock in arrival order, as Django's do (lib.sqlite_gate).
        config["db_engine_kwargs"] = {"connect_args": {"factory": GatedConnection, "timeout": 30}}
    DBOS(config=config)
    DBOS.launch()
    _state["executor_id"] = this_executor
    _state["queues"] = {
        SETUP_QUEUE: DBOS.register_queue(
            SETUP_QUEUE, worker_concurrency=settings.SETUP_CONCURRENCY,
            polling_interval_sec=settings.QUEUE_POLL_SECONDS, on_conflict="always_update",
        ),
        DELIVERY_QUEUE: DBOS.register_queue(
            DELIVERY_QUEUE, worker_concurrency=settings.SETUP_CONCURRENCY,
            polling_interval_sec=settings.QUEUE_POLL_SECONDS, on_conflict="always_update",
        ),
        SETUP_BATCH_QUEUE: DBOS.register_queue(
            SETUP_BATCH_QUEUE, worker_concurrency=SETUP_BATCHES_AT_ONCE,
            polling_interval_sec=settings.QUEUE_POLL_SECONDS, on_conflict="always_update",
        ),
        PURCHASE_QUEUE: DBOS.register_queue(
            PURCHASE_QUEUE, worker_concurrency=settings.SETUP_CONCURRENCY,
            polling_interval_sec=min(settings.QUEUE_POLL_SECONDS, PURCHASE_POLL_SECONDS), on_conflict="always_update",
        ),
    }
    billing_workflows.apply_reconcile_schedule()
    stop = threading.Event()
    _state["stop"] = stop
    Executor.objects.beat(this_executor, role=role, pid=os.getpid(), hostname=socket.gethostname())
    release_db_connections()
    threading.Thread(target=_beat, args=(this_executor, role, stop), daemon=True, name="backstop-heartbeat").start()
    threading.Thread(target=_supervise, args=(this_executor, stop), daemon=True, name="backstop-supervisor").start()
    threading.Thread(target=_dispatch_first_setups, args=(stop,), daemon=True,
                     name="backstop-setup-dispatcher").start()
    return this_executor


def prepare_system_database() -> None:
    """Create or upgrade the engine's tables, for a process that reaches workflows only as a client.

    The engine does this when it launches; a web process whose workflows run elsewhere must not take a request that
    enqueues one before the tables exist.
    """
    _use_write_ahead_log()
    DBOS.migrate(settings.DBOS_SYSTEM_DATABASE_URL)


def _use_write_ahead_log() -> None:
    """Put the engine's SQLite file, if it has one, in WAL mode (the mode is stored in the file, so once is enough).

    DBOS opens SQLite in its default rollback-journal mode: every step's commit then syncs the disk several times and
    blocks every reader, the web requests that enqueue a workflow or read its status included.
    """
    if not settings.DBOS_SYSTEM_DATABASE_URL.startswith("sqlite:///"):
        return
    path = Path(settings.DBOS_SYSTEM_DATABASE_URL.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, timeout=30)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def shutdown() -> None:
    stop = _state.get("stop")
    if stop is not None:
        stop.set()
    if is_running():
        DBOS.destroy(destroy_registry=False)
    _state.update({"queues": {}, "stop": None, "executor_id": None})


def take_over_dead_executors(this_executor: str) -> list[str]:
    claimed = Executor.objects.claim_dead(claimer=this_executor, dead_after=settings.EXECUTOR_DEAD_AFTER_SECONDS)
    for dead in claimed:
        handles = DBOS._recover_pending_workflows([dead])
        log.warning("took over %d workflows of silent executor %s", len(handles), dead)
    return claimed


def _dispatch_first_setups(stop: threading.Event) -> None:
    """Start the setup of accounts waiting for it, keeping up to SETUP_BATCHES_AT_ONCE of this process's setup batches
    waiting in the queue.

    The accounts' rows are the durable record (Account.setup_batch == ""): a batch lost before it claims anyone
    costs nothing, the next one claims them; any process may run a queued batch.
    """
    yield_cpu_to_requests()
    queued: list[str] = []
    while not stop.is_set():
        _first_setups_wanted.wait(settings.QUEUE_POLL_SECONDS)
        _first_setups_wanted.clear()
        try:
            with _cycle_locks["dispatcher"]:
                if stop.is_set():  # the engine stopped while a hold kept this cycle waiting
                    return
                queued = _queue_first_setups(queued)
        except Exception:  # the dispatcher must outlive a database hiccup
            log.exception("setup dispatcher failed; trying again in %ss", settings.HEARTBEAT_SECONDS)
            stop.wait(settings.HEARTBEAT_SECONDS)


def _queue_first_setups(queued: list[str]) -> list[str]:
    """One look of the dispatcher: the batches it queued that still wait, topped up with new ones."""
    from backstop.accounts.services import start_first_setups
    from backstop.runtime.dispatch import workflow_statuses

    try:
        statuses = workflow_statuses(queued)
        waiting = [batch for batch in queued if statuses.get(batch) == "ENQUEUED"]
        if len(waiting) < SETUP_BATCHES_AT_ONCE:
            waiting += start_first_setups(size=settings.SETUP_BATCH_SIZE, already_queued=len(waiting),
                                          at_most=SETUP_BATCHES_AT_ONCE - len(waiting))
        return waiting
    finally:
        release_db_connections()


def _beat(this_executor: str, role: str, stop: threading.Event) -> None:
    """The heartbeat, on a thread of its own at normal priority: a long sweep or support cycle, or a busy CPU, must
    not make a live process look dead to its peers, who would then run its workflows a second time beside it."""
    hostname = socket.gethostname()
    while not stop.wait(settings.HEARTBEAT_SECONDS):
        with _cycle_locks["heartbeat"]:
            if stop.is_set():  # the engine stopped while a hold kept this beat waiting
                return
            try:
                Executor.objects.beat(this_executor, role=role, pid=os.getpid(), hostname=hostname)
            except Exception:  # the heartbeat must outlive a database hiccup
                log.exception("heartbeat failed; beating again in %ss", settings.HEARTBEAT_SECONDS)
            finally:
                release_db_connections()


def _supervise(this_executor: str, stop: threading.Event) -> None:
    from backstop.accounts.services import restart_stalled_setups
    from backstop.runtime.registry import sweeps
    from backstop.support.automation import run_support_cycle

    yield_cpu_to_requests()
    next_sweep = time.monotonic() + settings.SWEEP_GRACE_SECONDS / 2
    next_support_cycle = time.monotonic() + settings.SUPPORT_CYCLE_SECONDS
    while not stop.wait(settings.HEARTBEAT_SECONDS):
        with _cycle_locks["supervisor"]:
            if stop.is_set():  # the engine stopped while a hold kept this cycle waiting
                return
            try:
                take_over_dead_executors(this_executor)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + settings.SWEEP_GRACE_SECONDS / 2
                    if restarted := restart_stalled_setups(grace_seconds=settings.SWEEP_GRACE_SECONDS):
                        log.warning("safety net restarted setup for %d accounts", restarted)
                    for name, sweep in sweeps().items():
                        if started := sweep(settings.SWEEP_GRACE_SECONDS):
                            log.warning("safety net %r started %d operations left without a workflow", name, started)
                if time.monotonic() >= next_support_cycle:
                    next_support_cycle = time.monotonic() + settings.SUPPORT_CYCLE_SECONDS
                    run_support_cycle()
            except Exception:  # the supervisor must outlive a database hiccup
                log.exception("supervisor cycle failed; trying again in %ss", settings.HEARTBEAT_SECONDS)
            finally:
                release_db_connections()
