"""Talking to workflows from any process: one that runs the engine, or one that only enqueues and looks.

A web process whose workflows run in a worker process (see `backstop serve`), and a command such as
`backstop reconcile`, run no engine: they reach workflows through a DBOS client (rows in the system
database that the running engines pick up). A process that runs the engine can also start a workflow at
once (``start_here``), which a person waiting on it needs. Inside a DBOS step, where DBOS cannot start a
workflow, an enqueue or a start runs on a short-lived thread that starts outside any workflow context.
Workflow ids are deterministic, so queueing or starting the same work twice is one workflow.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
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


def _start_in_engine(workflow: Callable[..., Any], args: tuple[Any, ...], workflow_id: str) -> None:
    with SetWorkflowID(workflow_id):
        DBOS.start_workflow(workflow, *args)


def _outside_any_workflow(hand_over: Callable[[], None]) -> None:
    """Run ``hand_over`` here, or on a short-lived thread when called inside a DBOS step (where DBOS cannot start or
    enqueue a workflow), re-raising its error in this thread."""
    if DBOS.workflow_id is None:
        hand_over()
        return
    failures: list[BaseException] = []

    def outside_the_step() -> None:
        try:
            hand_over()
        except BaseException as error:  # re-raised in the caller's thread below
            failures.append(error)

    thread = threading.Thread(target=outside_the_step, name="backstop-enqueue")
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


def enqueue(workflow: Callable[..., Any], *args: Any, queue_name: str, workflow_id: str) -> None:
    if not engine.is_running():
        _client().enqueue(
            {"workflow_name": getattr(workflow, "dbos_function_name", workflow.__qualname__),
             "queue_name": queue_name, "workflow_id": workflow_id, "app_version": engine.APPLICATION_VERSION},
            *args,
        )
        return
    _outside_any_workflow(lambda: _enqueue_in_engine(workflow, args, queue_name, workflow_id))


def start_here(workflow: Callable[..., Any], *args: Any, workflow_id: str) -> bool:
    """Start the workflow now, on this process's threads, without a queue's poll in between; False (and nothing
    started) when this process runs no engine. Starting an id that exists already starts nothing: DBOS runs each
    workflow id once, wherever it was started or enqueued first."""
    if not engine.is_running():
        return False
    _outside_any_workflow(lambda: _start_in_engine(workflow, args, workflow_id))
    return True


def send(workflow_id: str, message: Any, *, topic: str) -> None:
    """A message to a waiting workflow (DBOS.recv on ``topic``), wherever it runs."""
    if engine.is_running():
        DBOS.send(workflow_id, message, topic=topic)
    else:
        _client().send(workflow_id, message, topic=topic)


def workflow_statuses(workflow_ids: Iterable[str]) -> dict[str, str]:
    """The status (PENDING, ENQUEUED, SUCCESS, ERROR...) of each of these workflows that was ever started."""
    wanted = sorted(set(workflow_ids))
    if not wanted:
        return {}
    look = DBOS.list_workflows if engine.is_running() else _client().list_workflows
    return {found.workflow_id: found.status for found in look(workflow_ids=wanted, load_input=False, load_output=False)}


def workflow_status(workflow_id: str) -> str | None:
    """PENDING, ENQUEUED, SUCCESS, ERROR... or None when no such workflow was ever started."""
    return workflow_statuses([workflow_id]).get(workflow_id)


def is_live(workflow_id: str) -> bool:
    return workflow_status(workflow_id) in LIVE_WORKFLOW_STATUSES
