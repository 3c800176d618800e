"""Simultaneous signups for one address from real threads: the database keeps exactly one account."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from backstop.accounts.models import Account, AccountState, SetupStep
from backstop.demo.models import FaultSetting
from backstop.notify.models import Message
from backstop.workspaces.models import Workspace
from conftest import wait_for

ANN = {"name": "Ann Lee", "email": "ann@example.com", "phone": "+1 415 555 0100", "company": "Acme",
       "password": "correct horse battery"}


pytestmark = pytest.mark.usefixtures("workflows_finish_before_cleanup")


def signup_at_once(bodies: list[dict[str, str]]) -> list[Any]:
    """POST every body from its own thread and browser, all released at the same moment."""
    start = threading.Barrier(len(bodies))
    responses: list[Any] = [None] * len(bodies)

    def run(index: int) -> None:
        client = Client(REMOTE_ADDR=f"198.51.100.{index + 1}")
        try:
            start.wait(timeout=30)
            responses[index] = client.post("/api/signup", bodies[index], content_type="application/json")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a signup never answered"
    return responses


def assert_one_account(responses: list[Any]) -> Account:
    assert all(response is not None for response in responses)
    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(201) == 1, [r.content for r in responses]
    assert Account.objects.count() == 1
    account = Account.objects.get()
    assert SetupStep.objects.filter(account=account).count() == 2
    assert Message.objects.filter(kind="welcome").count() == 1
    for response in responses:
        if response.status_code in (200, 201):
            assert response.json()["account"]["id"] == account.pk
    return account


@pytest.mark.parametrize("browsers", [2, 8])
def test_it_makes_one_account_when_the_same_person_signs_up_at_once(
    engine_db: str, settings: Any, browsers: int
) -> None:
    # The workspace keeps failing and setup keeps retrying: the account stays unfinished, so repeats resume.
    settings.SETUP_MAX_ATTEMPTS = 1000
    FaultSetting.objects.set_modes({"workspace": "error"})

    responses = signup_at_once([ANN] * browsers)

    account = assert_one_account(responses)
    assert all(response.status_code in (200, 201) for response in responses), [r.content for r in responses]
    assert all(response.json()["resumed"] is (response.status_code == 200) for response in responses)
    # The resumed signups woke the one setup run; none started a second one beside it.
    assert account.setup_run == 1

    FaultSetting.objects.set_modes({"workspace": "ok"})
    wait_for(lambda: Account.objects.get().state == AccountState.ACTIVE, message="setup never finished")
    assert Workspace.objects.count() == 1


def test_it_makes_one_account_when_different_people_race_for_one_address(engine_db: str) -> None:
    FaultSetting.objects.set_modes({"workspace": "error"})
    bodies = [{**ANN, "password": f"distinct passphrase number {index}"} for index in range(8)]

    responses = signup_at_once(bodies)

    account = assert_one_account(responses)
    winner = next(index for index, response in enumerate(responses) if response.status_code == 201)
    assert account.check_password(bodies[winner]["password"])
    losers = [response for response in responses if response.status_code != 201]
    assert {response.status_code for response in losers} == {409}
    assert {response.json()["code"] for response in losers} == {"email_taken"}
