"""The setup dispatcher: a thread in each process running workflows that starts the setup of new accounts.

Signup only writes the account (Account.setup_batch == "" marks it waiting) and wakes this process's dispatcher when
its transaction commits; the dispatcher starts the account's setup, in a workflow of its own or, in a burst, in setup
batches. The accounts' rows are the durable record: a batch lost before it claims anyone costs nothing, the next one
claims them, and any process may run a queued batch. Registered as a runtime loop by AccountsConfig.ready().
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings

from backstop.runtime import registry

log = logging.getLogger(__name__)

SETUP_QUEUE = "setup"
SETUP_BATCH_QUEUE = "setup-batch"
# Setup batches one process runs at once: a batch is up to SETUP_BATCH_SIZE accounts, a few keep the providers busy.
SETUP_BATCHES_AT_ONCE = 4
DISPATCHER_LOOP = "setup-dispatcher"

_first_setups_wanted = threading.Event()
# Held for each look, so that the engine's hold_background_threads() (the test suite's flush) can wait for it.
_cycle_lock = registry.cycle_lock(DISPATCHER_LOOP)


def wake_setup_dispatcher() -> None:
    """An account waits for its first setup attempts: this process's dispatcher looks now, not at its next poll."""
    _first_setups_wanted.set()


def dispatch_first_setups(stop: threading.Event) -> None:
    """Start the setup of accounts waiting for it, keeping up to SETUP_BATCHES_AT_ONCE of this process's setup batches
    waiting in the queue, until ``stop`` is set."""
    # Imported here, as the rest of the engine is: AccountsConfig.ready() imports this module in every process.
    from backstop.runtime.engine import yield_cpu_to_requests

    yield_cpu_to_requests()
    queued: list[str] = []
    while not stop.is_set():
        _first_setups_wanted.wait(settings.QUEUE_POLL_SECONDS)
        _first_setups_wanted.clear()
        try:
            with _cycle_lock:
                if stop.is_set():  # the engine stopped while a hold kept this cycle waiting
                    return
                queued = _queue_first_setups(queued)
        except Exception:  # the dispatcher must outlive a database hiccup
            log.exception("setup dispatcher failed; trying again in %ss", settings.HEARTBEAT_SECONDS)
            stop.wait(settings.HEARTBEAT_SECONDS)


def _queue_first_setups(queued: list[str]) -> list[str]:
    """One look of the dispatcher: the batches it queued that still wait, topped up with new ones."""
    # Imported here: the setup services import this module for its queue names and its wake-up.
    from backstop.accounts.setup import start_first_setups
    from backstop.runtime.dispatch import workflow_statuses
    from backstop.runtime.engine import release_db_connections

    try:
        statuses = workflow_statuses(queued)
        waiting = [batch for batch in queued if statuses.get(batch) == "ENQUEUED"]
        if len(waiting) < SETUP_BATCHES_AT_ONCE:
            waiting += start_first_setups(size=settings.SETUP_BATCH_SIZE, already_queued=len(waiting),
                                          at_most=SETUP_BATCHES_AT_ONCE - len(waiting))
        return waiting
    finally:
        release_db_connections()
