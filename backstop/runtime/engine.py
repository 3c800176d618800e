"""Starting and stopping the durable-workflow engine (DBOS) inside a web or worker process.

The engine knows no domain: the workflows, queues, loops, periodic jobs and safety-net sweeps it runs are the ones the
apps registered (runtime/registry.py) from their ``AppConfig.ready()``.

Every process gets its own executor id. DBOS recovers only its own workflows when a process restarts
with the same id, so each process also runs a supervisor thread: it writes a heartbeat and, when a
peer has been silent for EXECUTOR_DEAD_AFTER_SECONDS, claims it (one winner, by conditional UPDATE)
and re-enqueues the dead peer's pending workflows through DBOS's recovery API.
"""

from __future__ import annotations

import importlib
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

from backstop.lib.sqlite_gate import GatedConnection, defer_to_foreground, serve_foreground
from backstop.runtime import registry, wakeup
from backstop.runtime.logs import engine_logs_through_ours
from backstop.runtime.models import Executor

log = logging.getLogger(__name__)

# A fixed version lets any process of this release recover any other's workflows.
APPLICATION_VERSION = "backstop-1"

_state: dict[str, Any] = {"queues": {}, "stop": None, "executor_id": None}
# Held by the engine's own threads for each cycle of work, so that hold_background_threads() can wait for it.
_supervisor_lock = registry.cycle_lock("supervisor")
_heartbeat_lock = registry.cycle_lock("heartbeat")


class _EngineFileConnection(GatedConnection):
    """A connection to the engine's own SQLite file: gated as Django's are, and, like Django's (settings), with
    ``synchronous=NORMAL``. In WAL mode that syncs the disk at checkpoints instead of at every commit: a process that
    dies loses nothing, a machine that loses power may lose the last steps' records, which then run again (every step
    is safe to run twice). At SQLite's default (FULL) each of a checkout's dozen engine commits waited for the disk."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute("PRAGMA synchronous=NORMAL")


def release_db_connections() -> None:
    """Close this thread's Django connections: workflow threads wait for minutes between steps."""
    connections.close_all()


def yield_cpu_to_requests() -> None:
    """Lower this thread's CPU priority: a person waiting on a page comes before background work.

    Called first by the background workflows (setup, delivery, reconciliation) and by the supervisor; the purchase
    workflow takes normal priority back (``reclaim_request_priority``: the engine reuses these threads) because a
    buyer waits on its charge. On Linux the nice value belongs to the
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


def reclaim_request_priority() -> bool:
    """Give this thread back the web requests' CPU priority and place in the SQLite write line; True when it has both.

    Called first by the purchase workflow, which a buyer's request waits on. DBOS runs every workflow on one pool of
    threads and reuses them, so without this a checkout usually ran on a thread that an earlier delivery or setup had
    set aside (measured: 201 of 210 checkouts in a row), and the buyer's answer waited for a niced thread holding the
    write lock or the GIL. Raising a thread's priority needs the privilege to (root, CAP_SYS_NICE or RLIMIT_NICE);
    without it only the write line is given back, and the refusal is logged once. See docs/decisions.md, "A checkout's
    workflow runs at the priority of the request that waits on it".
    """
    serve_foreground()
    if not hasattr(os, "setpriority"):
        return True
    thread = threading.get_native_id()
    # A thread starts at the nice value of the thread that made it: the process's own.
    wanted = os.getpriority(os.PRIO_PROCESS, os.getpid())
    try:
        if os.getpriority(os.PRIO_PROCESS, thread) > wanted:
            os.setpriority(os.PRIO_PROCESS, thread, wanted)
    except OSError:
        if not _state.get("priority_refused"):
            _state["priority_refused"] = True
            log.warning("could not give workflow thread %s its priority back (no privilege to raise a nice value); "
                        "checkouts may wait on threads that ran background work", thread)
        return False
    return True


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
        for lock in registry.cycle_locks():
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
    """Start DBOS in this process: the registered queues, launch steps and loops, heartbeat and takeover of dead
    peers."""
    # Importing the workflow modules registers their workflows with DBOS, which must know them all before launch.
    for module in registry.workflow_modules():
        importlib.import_module(module)
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
        config["db_engine_kwargs"] = {"connect_args": {"factory": _EngineFileConnection, "timeout": 30}}
    engine_logs_through_ours()
    DBOS(config=config)
    DBOS.launch()
    _state["executor_id"] = this_executor
    _state["queues"] = {
        spec.name: DBOS.register_queue(spec.name, worker_concurrency=spec.concurrency(),
                                       polling_interval_sec=spec.poll_seconds(), on_conflict="always_update")
        for spec in registry.queues()
    }
    for _name, step in registry.launch_steps():
        step()
    stop = threading.Event()
    _state["stop"] = stop
    Executor.objects.beat(this_executor, role=role, pid=os.getpid(), hostname=socket.gethostname())
    release_db_connections()
    threading.Thread(target=_beat, args=(this_executor, role, stop), daemon=True, name="backstop-heartbeat").start()
    threading.Thread(target=_supervise, args=(this_executor, stop), daemon=True, name="backstop-supervisor").start()
    for name, loop in registry.loops():
        threading.Thread(target=loop, args=(stop,), daemon=True, name=f"backstop-{name}").start()
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
    wakeup.stop_listening()
    _state.update({"queues": {}, "stop": None, "executor_id": None})


def take_over_dead_executors(this_executor: str) -> list[str]:
    claimed = Executor.objects.claim_dead(claimer=this_executor, dead_after=settings.EXECUTOR_DEAD_AFTER_SECONDS)
    for dead in claimed:
        handles = DBOS._recover_pending_workflows([dead])
        log.warning("took over %d workflows of silent executor %s", len(handles), dead)
    return claimed


def _beat(this_executor: str, role: str, stop: threading.Event) -> None:
    """The heartbeat, on a thread of its own at normal priority: a long sweep or periodic job, or a busy CPU, must
    not make a live process look dead to its peers, who would then run its workflows a second time beside it."""
    hostname = socket.gethostname()
    while not stop.wait(settings.HEARTBEAT_SECONDS):
        with _heartbeat_lock:
            if stop.is_set():  # the engine stopped while a hold kept this beat waiting
                return
            try:
                Executor.objects.beat(this_executor, role=role, pid=os.getpid(), hostname=hostname)
            except Exception:  # the heartbeat must outlive a database hiccup
                log.exception("heartbeat failed; beating again in %ss", settings.HEARTBEAT_SECONDS)
            finally:
                release_db_connections()


def _supervise(this_executor: str, stop: threading.Event) -> None:
    yield_cpu_to_requests()
    next_sweep = time.monotonic() + settings.SWEEP_GRACE_SECONDS / 2
    next_runs = {job.name: time.monotonic() + job.every_seconds() for job in registry.periodic_jobs()}
    while not stop.wait(settings.HEARTBEAT_SECONDS):
        with _supervisor_lock:
            if stop.is_set():  # the engine stopped while a hold kept this cycle waiting
                return
            try:
                take_over_dead_executors(this_executor)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + settings.SWEEP_GRACE_SECONDS / 2
                    run_sweeps(grace_seconds=settings.SWEEP_GRACE_SECONDS)
                for job in registry.periodic_jobs():
                    if time.monotonic() >= next_runs.setdefault(job.name, time.monotonic() + job.every_seconds()):
                        next_runs[job.name] = time.monotonic() + job.every_seconds()
                        _run_periodic_job(job)
            except Exception:  # the supervisor must outlive a database hiccup
                log.exception("supervisor cycle failed; trying again in %ss", settings.HEARTBEAT_SECONDS)
            finally:
                release_db_connections()


def run_sweeps(*, grace_seconds: float) -> None:
    """Every registered safety net, each on its own: one that fails does not keep the others from running."""
    for name, sweep in registry.sweeps():
        try:
            if (found := sweep(grace_seconds)) > 0:
                log.warning("safety net %s restarted %d stranded operations", name, found)
        except Exception:
            log.exception("safety net %s failed; it runs again at the next sweep", name)


def _run_periodic_job(job: registry.PeriodicJob) -> None:
    try:
        job.job()
    except Exception:
        log.exception("periodic job %s failed; it runs again in %ss", job.name, job.every_seconds())
