"""Talking to workflows from any process: one that runs the engine, or one that only enqueues and looks.

A web process whose workflows run in a worker process (see `backstop serve`), and a command such as
`backstop reconcile`, run no engine: they reach workflows through a DBOS client (rows in the system
database that the running engines pick up). Inside a DBOS step, where DBOS cannot start a workflow, an
enqueue runs on a short-lived thread that starts outside any workflow context. Workflow ids are
deterministic, so queueing the same work twice is one workflow.
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
