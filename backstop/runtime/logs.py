"""Log lines written inside a workflow name it (backstop.lib.logs reads the id through the getter plugged in here)."""

from __future__ import annotations

from dbos import DBOS

from backstop.lib.logs import add_workflow_id_getter, use_root_handlers


def _running_workflow_id() -> str | None:
    workflow_id: str | None = DBOS.workflow_id
    return workflow_id


def name_workflows_in_logs() -> None:
    """Every process: a line logged on a workflow's thread carries its id."""
    add_workflow_id_getter(_running_workflow_id)


def engine_logs_through_ours() -> None:
    """Before the engine starts: its logger would give itself a console handler of its own (another format, no ids);
    its lines go through the site's handler instead, so every line of the process has one shape."""
    use_root_handlers("dbos")
