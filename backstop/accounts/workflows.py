"""Account setup, durably: provision the workspace and send the welcome email.

A lone new account gets its own ``setup_workflow``. A burst gets its first attempts in batches
(``setup_batch_workflow``): one workflow claims up to SETUP_BATCH_SIZE waiting accounts and tries each step for all
of them, so the engine's bookkeeping is paid once per batch rather than once per account. An account whose attempt
failed is handed to its own ``setup_workflow``, which carries on from those results with backoff, the breaker and
"try again now"; one that only found a breaker open waits for a later batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from dbos import DBOS, SetWorkflowID
from django.conf import settings

from backstop.accounts import setup
from backstop.accounts.dispatcher import SETUP_QUEUE
from backstop.accounts.models import setup_workflow_id
from backstop.runtime.engine import queue, release_db_connections, yield_cpu_to_requests
from backstop.runtime.retrying import AttemptResult, retry_until_done


@DBOS.step()
def provision_workspace(account_id: int, attempt: int) -> AttemptResult:
    return setup.attempt_setup_step(account_id=account_id, step="workspace", attempt=attempt)


@DBOS.step()
def send_welcome_email(account_id: int, attempt: int) -> AttemptResult:
    return setup.attempt_setup_step(account_id=account_id, step="welcome_email", attempt=attempt)


@DBOS.step()
def hand_over_to_support(account_id: int, steps: list[str]) -> None:
    setup.give_up_setup_steps(account_id=account_id, steps=steps)


ATTEMPTS = {"workspace": provision_workspace, "welcome_email": send_welcome_email}


@DBOS.workflow()
def setup_workflow(account_id: int, first_results: dict[str, AttemptResult] | None = None) -> dict[str, bool]:
    """Each setup step is retried with capped, jittered backoff until done or out of budget.

    A step already done (in an earlier run) answers "done" on its first attempt without calling anyone.
    A "try again now" press arrives as a message on the "setup" topic and wakes the loop early.
    ``first_results`` are the attempts a setup batch made: the loop continues from them.
    """
    yield_cpu_to_requests()
    try:
        tasks: dict[str, Callable[[int], AttemptResult]] = {
            name: functools.partial(step, account_id) for name, step in ATTEMPTS.items()
        }
        outcome = retry_until_done(tasks, topic="setup", max_attempts=settings.SETUP_MAX_ATTEMPTS,
                                   first_results=first_results)
        failed = [name for name, done in outcome.items() if not done]
        if failed:
            hand_over_to_support(account_id, failed)
        return outcome
    finally:
        release_db_connections()


@DBOS.step()
def claim_setup_batch(batch_id: str, size: int) -> list[int]:
    return setup.claim_setup_batch(batch_id=batch_id, size=size)


@DBOS.step()
def provision_workspaces(account_ids: list[int]) -> dict[int, AttemptResult]:
    return setup.attempt_first_setup_steps(account_ids=account_ids, step="workspace")


@DBOS.step()
def send_welcome_emails(account_ids: list[int]) -> dict[int, AttemptResult]:
    return setup.attempt_first_setup_steps(account_ids=account_ids, step="welcome_email")


FIRST_ATTEMPTS = {"workspace": provision_workspaces, "welcome_email": send_welcome_emails}


@DBOS.step()
def return_to_setup_batches(batch_id: str, account_ids: list[int]) -> None:
    setup.return_to_setup_batches(batch_id=batch_id, account_ids=account_ids)


@DBOS.workflow()
def setup_batch_workflow(size: int) -> dict[str, int]:
    """First setup attempts for up to ``size`` waiting accounts.

    An account with an attempt that failed goes on in its own workflow (backoff, retry budget). One that only found a
    provider's breaker open goes back to waiting for a later batch, due when the breaker's next look is: hundreds of
    accounts held up by one outage then cost a batch per look, not a workflow each.
    """
    yield_cpu_to_requests()
    try:
        batch_id = DBOS.workflow_id or ""
        account_ids = claim_setup_batch(batch_id, size)
        results: dict[int, dict[str, AttemptResult]] = {account_id: {} for account_id in account_ids}
        for name, attempt_all in FIRST_ATTEMPTS.items():
            for account_id, result in attempt_all(account_ids).items():
                results[account_id][name] = result
        seen = {account_id: {result["status"] for result in steps.values()} for account_id, steps in results.items()}
        failed = [account_id for account_id, statuses in seen.items() if "failed" in statuses]
        waiting = [account_id for account_id, statuses in seen.items() if statuses - {"done"} == {"waiting"}]
        for account_id in failed:
            # The account's first run: a sweep or "try again now" finds it under the usual id.
            with SetWorkflowID(setup_workflow_id(account_id, 1)):
                queue(SETUP_QUEUE).enqueue(setup_workflow, account_id, results[account_id])
        if waiting:
            return_to_setup_batches(batch_id, waiting)
        return {"accounts": len(account_ids), "handed_on": len(failed), "waiting": len(waiting)}
    finally:
        release_db_connections()
