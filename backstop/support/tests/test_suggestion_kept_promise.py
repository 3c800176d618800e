"""The desk's suggestion never contradicts what the customer was told. Seen in the demo: a customer was told "a
person on our team will finish it", the provider then went down, and the desk suggested "No action needed:
automation is retrying; no action needed" while the case listed that promise as not kept."""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.utils import timezone

from backstop.accounts.models import Account, AccountState, SetupStep, StepName, StepStatus
from backstop.support import messages
from backstop.support.cases import join_setup_delay
from backstop.support.models import Commitment, CommitmentKind
from backstop.support.tests.helpers import desk_client, open_breaker, staff_account


@pytest.mark.django_db
def test_it_suggests_a_reply_not_no_action_while_a_person_is_promised_and_the_provider_is_down() -> None:
    account = Account.objects.create(email="kim@example.com", email_key="kim@example.com", name="Kim Park",
                                     company="Parkco", phone="+1 415 555 0102", state=AccountState.SETTING_UP)
    step = SetupStep.objects.create(account=account, name=StepName.WORKSPACE, status=StepStatus.WAITING, attempts=3,
                                    last_error="the workspace provider answered with an error")
    case = join_setup_delay(step=step, account=account).case
    open_breaker("workspace")
    client = desk_client(staff_account())

    def page(url: str) -> str:
        return html.unescape(client.get(url).content.decode())

    assert "No action needed" in page(f"/desk/cases/{case.pk}")  # nobody promised anything: automation has it

    Commitment.objects.create(case=case, kind=CommitmentKind.PERSON_FINISHES, made_in="contact:S-1", detail={},
                              due_at=timezone.now() + dt.timedelta(days=1),
                              text=messages.COMMITMENT_TEXTS[CommitmentKind.PERSON_FINISHES])

    for url in (f"/desk/cases/{case.pk}", "/desk"):
        shown = page(url)
        assert "No action needed" not in shown
        assert "Send reply" in shown
    assert messages.SUGGESTION_REASONS["reply_person_promised"] in page(f"/desk/cases/{case.pk}")
