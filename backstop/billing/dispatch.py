"""Queueing workflows from wherever billing runs: a request thread, inside a DBOS step, or `backstop reconcile`.

DBOS cannot start a workflow from inside a step, so there the enqueue runs on a short-lived thread, which
starts outside any workflow context. A command-line process runs no engine at all and enqueues through a
DBOS client (a row in the system database that the serving processes pick up). Workflow ids are
deterministic, so queueing the same work twice is one workflow.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from dbos import DBOS, DBOSClient, SetWorkflowID
from django.conf import settings

from backstop.runtime import engine

_clients: dict[str, DBOSClient] = {}
_clients_lock = threading.Lock()
LIVE_WORKFLOW_STATUSES = {"PENDING", "ENQUEUED", "DELAYED"}


def _client() -> DBOSClient:
    url = settings.DBOS_SYSTEM_DATABASE_URL
    with _clients_lock:
        if url not in _clients:
            _clients[url] = DBOSClient(system_database_url=url, application_name="backstop")
        return _clients[url]


def _enqueue_in_engine(workflow: Callable[..., Any], args: tuple[Any, ...], queue_name: str, workflow_id: str) -> None:
    with SetWorkflowID(workflow_id):
        engine.queue(queue_name).enqueue(workflow, *args)


def enqueue(workflow: Callable[..., Any], *args: Any, queue_name: str, workflow_id: str) -> None:
    if not engine.is_running():
        _client().enqueue(
            {"workflow_name": getattr(workflow, "dbos_function_name", workflow.__qualname__),
             "queue_name": queue_name, "workflow_id": workflow_id, "app_version": engine.APPLICATION_VERSION},
            *args,
        )
        return
    if DBOS.workflow_id is None:
        _enqueue_in_engine(workflow, args, queue_name, workflow_id)
        return
    failures: list[BaseException] = []

    def outside_the_step() -> None:
        try:
            _enqueue_in_engine(workflow, args, queue_name, workflow_id)
        except BaseException as error:  # re-raised in the caller's thread below
            failures.append(error)

    thread = threading.Thread(target=outside_the_step, name="backstop-enqueue")
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


def workflow_status(workflow_id: str) -> str | None:
    """PENDING, ENQUEUED, SUCCESS, ERROR... or None when no such workflow was ever started."""
    if engine.is_running():
        status = DBOS.get_workflow_status(workflow_id)
        return status.status if status is not None else None
    found = _client().list_workflows(workflow_ids=[workflow_id], load_input=False, load_output=False)
    return found[0].status if found else None


def is_live(workflow_id: str) -> bool:
    return workflow_status(workflow_id) in LIVE_WORKFLOW_STATUSES
