"""Taking over a silent process: exactly one live process claims it and re-enqueues its pending workflows."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from dbos import DBOS, SetEnqueueOptions, SetWorkflowID
from dbos._dbos import _get_dbos_instance
from django.contrib.auth.hashers import make_password
from django.db import connections
from django.utils import timezone

from backstop.accounts import setup, signup
from backstop.accounts.dispatcher import SETUP_QUEUE
from backstop.accounts.models import Account, AccountState
from backstop.accounts.validation import clean_signup
from backstop.accounts.workflows import setup_workflow
from backstop.runtime import engine
from backstop.runtime.models import Executor
from conftest import wait_for

take_over_dead_executors = engine.take_over_dead_executors


@pytest.fixture(autouse=True)
def quiet_supervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test process's own supervisor would otherwise race these tests for the executors they plant.
    monkeypatch.setattr(engine, "take_over_dead_executors", lambda this_executor: [])


def plant_executor(executor_id: str, *, silent_for: float, taken_over_by: str = "") -> Executor:
    seen = timezone.now() - dt.timedelta(seconds=silent_for)
    return Executor.objects.create(id=executor_id, role="web", hostname="host-a", pid=4242, started_at=seen,
                                   last_seen_at=seen, taken_over_by=taken_over_by)


@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_one_of_several_processes_claim_a_silent_executor() -> None:
    plant_executor("web-dead", silent_for=600)
    claimers = 6
    for n in range(claimers):
        plant_executor(f"worker-{n}", silent_for=0)
    start = threading.Barrier(claimers)
    claims: dict[str, list[str]] = {}

    def claim(claimer: str) -> None:
        try:
            start.wait()
            claims[claimer] = Executor.objects.claim_dead(claimer=claimer, dead_after=60)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(f"worker-{n}",)) for n in range(claimers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(claims) == claimers
    winners = [claimer for claimer, claimed in claims.items() if claimed]
    assert len(winners) == 1, claims
    assert claims[winners[0]] == ["web-dead"]
    dead = Executor.objects.get(pk="web-dead")
    assert dead.taken_over_by == winners[0]
    assert dead.taken_over_at is not None


@pytest.mark.django_db
def test_it_does_not_claim_a_live_executor_or_itself() -> None:
    plant_executor("web-live", silent_for=5)
    plant_executor("web-me", silent_for=600)

    assert Executor.objects.claim_dead(claimer="web-me", dead_after=60) == []
    assert Executor.objects.filter(taken_over_by="").count() == 2


@pytest.mark.django_db
def test_it_claims_a_dead_executor_only_once() -> None:
    plant_executor("web-dead", silent_for=600)
    plant_executor("worker-1", silent_for=0)
    plant_executor("worker-2", silent_for=0)

    assert Executor.objects.claim_dead(claimer="worker-1", dead_after=60) == ["web-dead"]
    assert Executor.objects.claim_dead(claimer="worker-2", dead_after=60) == []
    assert Executor.objects.get(pk="web-dead").taken_over_by == "worker-1"


@pytest.mark.django_db
def test_it_claims_again_an_executor_whose_claimer_died_too() -> None:
    # The claimer may have died between claiming and re-enqueueing: nobody else would ever finish that work.
    plant_executor("web-dead", silent_for=600, taken_over_by="worker-dead")
    plant_executor("worker-dead", silent_for=300)
    plant_executor("web-other", silent_for=600, taken_over_by="worker-live")
    plant_executor("worker-live", silent_for=0)

    assert sorted(Executor.objects.claim_dead(claimer="worker-new", dead_after=60)) == ["web-dead", "worker-dead"]
    assert Executor.objects.get(pk="web-dead").taken_over_by == "worker-new"
    assert Executor.objects.get(pk="web-other").taken_over_by == "worker-live"


@pytest.mark.django_db
def test_it_forgets_the_claim_when_the_executor_comes_back() -> None:
    plant_executor("web-dead", silent_for=600)
    plant_executor("worker-1", silent_for=0)
    Executor.objects.claim_dead(claimer="worker-1", dead_after=60)

    Executor.objects.beat("web-dead", role="web", pid=4343, hostname="host-a")

    back = Executor.objects.get(pk="web-dead")
    assert (back.taken_over_by, back.pid) == ("", 4343)
    assert Executor.objects.claim_dead(claimer="worker-1", dead_after=60) == []


def park_setup_under(executor_id: str, account: Account) -> str:
    """Make the account's setup look like a workflow a now-silent process had started and never finished."""
    workflow_id = account.setup_workflow_id
    with SetWorkflowID(workflow_id), SetEnqueueOptions(delay_seconds=3600):
        engine.queue(SETUP_QUEUE).enqueue(setup_workflow, account.pk)
    system_db = _get_dbos_instance()._sys_db
    status = system_db.tables.workflow_status
    with system_db.engine.begin() as connection:
        connection.execute(
            sa.update(status).where(status.c.workflow_uuid == workflow_id)
            .values(status="PENDING", executor_id=executor_id, delay_until_epoch_ms=None)
        )
    return workflow_id


@pytest.mark.parametrize("earlier_claimer", ["", "worker-that-crashed-while-taking-over"])
def test_it_reenqueues_the_pending_workflows_of_a_silent_executor(
    engine_db: str, settings: Any, monkeypatch: pytest.MonkeyPatch, earlier_claimer: str
) -> None:
    settings.EMAIL_BACKEND = "backstop.notify.providers.LocalMailboxEmailBackend"
    with monkeypatch.context() as patch:
        patch.setattr(setup, "_enqueue_setup", lambda account_id, run: None)
        account = signup._create_account(
            clean_signup(name="Ann Lee", email="ann@example.com", phone="+1 415 555 0100", company="Acme",
                         password="correct horse battery"),
            make_password(None),
        )
    workflow_id = park_setup_under("web-crashed", account)
    plant_executor("web-crashed", silent_for=settings.EXECUTOR_DEAD_AFTER_SECONDS + 60,
                   taken_over_by=earlier_claimer)
    plant_executor("web-alive", silent_for=0)
    Executor.objects.beat(engine_db, role="test", pid=1, hostname="host-b")  # the claimer is alive

    assert take_over_dead_executors(engine_db) == ["web-crashed"]

    wait_for(lambda: Account.objects.get(pk=account.pk).state == AccountState.ACTIVE, timeout=30,
             message="the taken-over setup did not finish")
    status = wait_for(lambda: (s := DBOS.get_workflow_status(workflow_id)) is not None and s.status == "SUCCESS"
                      and s, timeout=30, message="the taken-over workflow did not succeed")
    assert status.executor_id == engine_db
    assert Executor.objects.get(pk="web-crashed").taken_over_by == engine_db
    assert Executor.objects.get(pk="web-alive").taken_over_by == ""
    # A second pass finds nothing more to take over.
    assert take_over_dead_executors(engine_db) == []



def test_it_keeps_beating_while_a_supervisor_cycle_is_slow(
    engine_db: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long sweep or support cycle must not make this live process look dead to its peers."""
    settings.HEARTBEAT_SECONDS = 0.1
    in_cycle, release = threading.Event(), threading.Event()

    def slow_cycle(this_executor: str) -> list[str]:
        in_cycle.set()
        release.wait(30)
        return []

    monkeypatch.setattr(engine, "take_over_dead_executors", slow_cycle)
    try:
        wait_for(in_cycle.is_set, timeout=15, message="the supervisor did not start a cycle")
        first = wait_for(lambda: Executor.objects.filter(pk=engine_db).values_list("last_seen_at", flat=True).first(),
                         timeout=15, message="this process never beat")
        wait_for(lambda: Executor.objects.get(pk=engine_db).last_seen_at > first, timeout=15,
                 message="no heartbeat while the supervisor's cycle was under way")
    finally:
        release.set()
