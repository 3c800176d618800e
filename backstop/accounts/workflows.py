"""Account setup, durably: provision the workspace and send the welcome email.

A lone new account gets its own ``setup_workflow``. A burst gets its first attempts in batches
(``setup_batch_workflow``): one workflow claims up to SETUP_BATCH_SIZE waiting accounts and tries each step for all
of them, so the engine's bookkeeping is paid once per batch rather than once per account. An account whose attempt
failed is handed to its own ``setup_workflow``, which carries on from those results with backoff, the breaker and
"try again now"; one that only found a breaker open waits for a later batch.
"""

from __future__ import annotations

from collections.abc import Callable

from dbos import DBOS, SetWorkflowID

from backstop.accounts import setup
from backstop.accounts.dispatcher import SETUP_QUEUE
from backstop.runtime.engine import queue, release_db_connections, yield_cpu_to_requests
from backstop.runtime.guarded import GuardedOperation
from backstop.runtime.retrying import AttemptResult


def _setup_step(step: str) -> Callable[[int, int], AttemptResult]:
    def attempt(account_id: int, attempt_number: int) -> AttemptResult:
        return setup.attempt_setup_step(account_id=account_id, step=step, attempt=attempt_number)
    return attempt


# An account's own setup, as a guarded operation: the account's setup steps are its intent, ``setup:<account>:<run>``
# its workflow (each run of an account's setup is one workflow). A step already done (in an earlier run) answers
# "done" on its first attempt without calling anyone; "try again now" arrives as a message on the "setup" topic.
# Its safety net is setup's own (``setup.restart_stalled_setups``, registered by the accounts app): it knows whether
# a batch still has the account and when a new run must start, so the recipe registers no sweep (``stranded=None``).
setup_operation = GuardedOperation(
    "setup", queue=SETUP_QUEUE, topic="setup", stranded=None,
    steps={"workspace": _setup_step("workspace"), "welcome_email": _setup_step("welcome_email")},
    give_up=lambda account_id, steps: setup.give_up_setup_steps(account_id=account_id, steps=steps,
                                                                workflow_id=DBOS.workflow_id or ""),
    # The names its workflows were recorded under before the recipe: a setup left pending then still replays.
    workflow_name="setup_workflow",
    step_names={"workspace": "provision_workspace", "welcome_email": "send_welcome_email",
                "give_up": "hand_over_to_support"},
)
setup_workflow = setup_operation.workflow


def setup_key(account_id: int, run: int) -> str:
    """The operation's key for one run of an account's setup. Every start builds the id from it through the
    operation; ``Account.setup_workflow_id`` (``models.setup_workflow_id``) reads the same id back."""
    return f"{account_id}:{run}"


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
            with SetWorkflowID(setup_operation.workflow_id(setup_key(account_id, 1))):
                queue(SETUP_QUEUE).enqueue(setup_operation.workflow, account_id, results[account_id])
        if waiting:
            return_to_setup_batches(batch_id, waiting)
        return {"accounts": len(account_ids), "handed_on": len(failed), "waiting": len(waiting)}
    finally:
        release_db_connections()
