"""The tour's registry: every scenario complete, its faults valid, each button setting exactly its faults."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.urls import resolve

from backstop.demo import messages
from backstop.demo.faults import PROVIDERS, validate_faults
from backstop.demo.models import FaultSetting
from backstop.demo.tour import SCENARIOS, clear_faults, current_faults, faults_text, start_scenario


def test_it_has_every_scenario_complete() -> None:
    assert set(SCENARIOS) == set(messages.SCENARIO_TEXTS)
    for key, scenario in SCENARIOS.items():
        texts = scenario.texts
        for field in ("title", "summary", "button"):
            assert isinstance(texts[field], str) and texts[field], (key, field)
        look_for = texts["look_for"]
        assert isinstance(look_for, list) and look_for and all(isinstance(line, str) and line for line in look_for)
        assert scenario.faults and set(scenario.faults) <= set(PROVIDERS), key
        validate_faults(scenario.modes())
        assert resolve(scenario.opens), key  # a page of the site itself, not of the demo
        assert scenario.also and all(path.startswith("/") and label for label, path in scenario.also), key


@pytest.mark.django_db
def test_it_sets_only_the_scenarios_faults_and_clears_them_all() -> None:
    FaultSetting.objects.set_modes({"sms": "slow", "payments": "crash_after_charge"})

    start_scenario(key="half_failed_signup")
    after_signup = current_faults()
    start_scenario(key="outage_from_the_desk")
    after_outage = current_faults()
    clear_faults()

    assert after_signup == {"email": "timeout", "sms": "ok", "workspace": "error", "payments": "ok"}
    assert after_outage == {"email": "ok", "sms": "ok", "workspace": "error", "payments": "ok"}
    assert current_faults() == dict.fromkeys(PROVIDERS, "ok")
    assert faults_text(current_faults()) == messages.TOUR_ALL_OK
    assert faults_text(after_signup) == "email=timeout, workspace=error"
    with pytest.raises(KeyError):
        start_scenario(key="printer_on_fire")


def test_it_shows_when_the_mailbox_received_each_message_in_the_readers_zone() -> None:
    # A text message: an email's "Reply as the customer" form names routes the suite's URLs mount only in the demo.
    item = {"id": 1, "channel": "sms", "to": "+1 415 555 0100", "subject": "", "text": "Hello",
            "message_id": "<m1@backstop>", "created_at": "2026-03-14T05:30:12+00:00"}

    page = render_to_string("demo/mailbox.html", {"items": [item]})

    assert ('<time datetime="2026-03-14T05:30:12Z" data-local-time="relative" title="2026-03-14 05:30:12 UTC">'
            "05:30, 14 Mar UTC</time>") in page
