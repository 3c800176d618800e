"""Amends as a guarded operation: the AmendsAction row is the intent, ``incident-amends:<click key>`` its workflow.

The click only writes the row; the messages and credits (one per affected customer, each keyed) are made here, after
the answer went out, so a large incident's amends do not hold a request. A run that fails is tried again; a run that
gives up leaves the action unfinished, shown so on the desk, where another click carries on (nobody is told twice).
"""

from __future__ import annotations

import logging

from backstop.incidents import amends
from backstop.runtime.guarded import Attention, GuardedOperation
from backstop.runtime.retrying import AttemptResult, failed_attempt

INCIDENTS_QUEUE = "incidents"
logger = logging.getLogger(__name__)


def _send(action_id: int, attempt: int) -> AttemptResult:
    try:
        amends.carry_out_amends(action_id=action_id)
    except Exception as error:  # our own code or the database failed: tried again with backoff
        logger.exception("amends %s failed (attempt %s)", action_id, attempt)
        return failed_attempt(attempt, f"{type(error).__name__}: {error}"[:500])
    return {"status": "done", "retry_in": 0.0, "error": ""}


def _give_up(action_id: int, failed: list[str]) -> Attention | None:
    return None  # the action stays unfinished on the desk's amends page, which says so


amends_operation = GuardedOperation("incident-amends", queue=INCIDENTS_QUEUE, steps={"send": _send},
                                    give_up=_give_up, stranded=amends.unfinished_amends)
