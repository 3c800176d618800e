"""The small things used every day: a refusal is a page, the audit reads as changes, the
queue says how long each customer has waited for a first answer against a target per harm, keys are listed."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from backstop.attention.models import Harm
from backstop.lib import site_messages
from backstop.support import messages
from backstop.support.actions import run_action
from backstop.support.first_answer import FIRST_ANSWER_TARGETS, first_answers
from backstop.support.models import Case
from backstop.support.replies import send_reply
from backstop.support.tests.helpers import desk_client, new_account, staff_account, stalled_account


def test_it_has_a_first_answer_target_for_every_harm() -> None:
    assert set(FIRST_ANSWER_TARGETS) == set(Harm.values)
    assert list(FIRST_ANSWER_TARGETS.values()) == sorted(FIRST_ANSWER_TARGETS.values())  # worse harm, sooner


@pytest.mark.django_db
def test_it_refuses_a_customer_with_a_page_that_says_so() -> None:
    customer = desk_client(new_account("ann@example.com"))
    answer = customer.get("/desk")
    assert answer.status_code == 403
    page = answer.content.decode()
    assert site_messages.NOT_ALLOWED_TITLE in page and "give your account access" in page and "<html" in page


@pytest.mark.django_db
def test_it_shows_the_audit_as_what_changed() -> None:
    case = Case.objects.get(account=stalled_account("bob@example.com"))
    staff = staff_account()
    run_action(case_id=case.pk, staff=staff, action="assign_to_me", case_version=case.version)
    page = desk_client(staff).get(f"/desk/cases/{case.pk}").content.decode()
    assert ("<code>case.assigned_to</code>: <del>none</del> → <ins>agent@backstop.localhost</ins>") in page
    assert "{&#x27;case&#x27;" not in page  # no raw dicts


@pytest.mark.django_db
def test_it_says_how_long_each_customer_has_waited_for_a_first_answer_against_the_target() -> None:
    now = timezone.now()
    waiting = Case.objects.get(account=stalled_account("bob@example.com"))  # locked out: 2 h target
    Case.objects.filter(pk=waiting.pk).update(opened_at=now - dt.timedelta(hours=3))
    answered = Case.objects.get(account=stalled_account("cy@example.com"))
    Case.objects.filter(pk=answered.pk).update(opened_at=now - dt.timedelta(minutes=30))
    send_reply(case_id=answered.pk, staff=staff_account(), key="k1", subject="Hi", body="On it.")
    cases = list(Case.objects.filter(pk__in=[waiting.pk, answered.pk]))

    answers = first_answers(cases, now=now)
    assert answers[waiting.pk].over_target
    assert answers[waiting.pk].text == messages.FIRST_ANSWER_WAITING.format(
        waited=messages.duration_text(3 * 3600), target=messages.duration_text(2 * 3600))
    assert not answers[answered.pk].over_target and answers[answered.pk].text.startswith("answered after ")

    page = desk_client(staff_account(email="kim@backstop.localhost")).get("/desk").content.decode()
    assert 'class="first-answer over-target"' in page and messages.SHORTCUTS_HELP in page
