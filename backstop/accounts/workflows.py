"""The account setup workflow: provision the workspace and send the welcome email, durably."""

from __future__ import annotations

import functools
from collections.abc import Callable

from dbos import DBOS
from django.conf import settings

from backstop.accounts import services
from backstop.runtime.engine import release_db_connections, yield_cpu_to_requests
from backstop.runtime.retrying import AttemptResult, retry_until_done


@DBOS.step()
def provision_workspace(account_id: int, attempt: int) -> AttemptResult:
    return services.attempt_setup_step(account_id=account_id, step="workspace", attempt=attempt)


@DBOS.step()
def send_welcome_email(account_id: int, attempt: int) -> AttemptResult:
    return services.attempt_setup_step(account_id=account_id, step="welcome_email", attempt=attempt)


@DBOS.step()
def hand_over_to_support(account_id: int, steps: list[str]) -> None:
    services.give_up_setup_steps(account_id=account_id, steps=steps)


ATTEMPTS = {"workspace": provision_workspace, "welcome_email": send_welcome_email}


@DBOS.workflow()
def setup_workflow(account_id: int) -> dict[str, bool]:
    """Each setup step is retried with capped, jittered backoff until done or out of budget.

    A step already done (in an earlier run) answers "done" on its first attempt without calling anyone.
    A "try again now" press arrives as a message on the "setup" topic and wakes the loop early.
    """
    yield_cpu_to_requests()
    try:
        tasks: dict[str, Callable[[int], AttemptResult]] = {
            name: functools.partial(step, account_id) for name, step in ATTEMPTS.items()
        }
        outcome = retry_until_done(tasks, topic="setup", max_attempts=settings.SETUP_MAX_ATTEMPTS)
        failed = [name for name, done in outcome.items() if not done]
        if failed:
            hand_over_to_support(account_id, failed)
        return outcome
    finally:
        release_db_connections()
