"""The message catalogue: a notice for every state a person can be in, whatever they just did."""

from __future__ import annotations

import re

import pytest

from backstop.accounts import messages
from backstop.accounts.messages import ACTIONS, CATALOGUE, notice
from backstop.accounts.models import AccountState
from backstop.lib import site_messages
from backstop.lib.site_messages import Notice

PAIRS = [(state, action) for state in AccountState.values for action in ACTIONS]


def test_it_has_exactly_one_notice_for_every_state_and_action() -> None:
    assert set(CATALOGUE) == set(PAIRS)
    for state, action in PAIRS:
        assert isinstance(notice(state, action), Notice)


@pytest.mark.parametrize(("state", "action"), PAIRS)
def test_it_says_what_happened_in_every_notice(state: str, action: str) -> None:
    text = notice(state, action)
    assert text.happened.strip()
    assert text.text.startswith(text.happened)
    assert "{" not in text.text and "}" not in text.text, "a catalogue notice is shown as it is, never formatted"


@pytest.mark.parametrize(("state", "action"), [(s, a) for s, a in PAIRS if s != AccountState.ACTIVE])
def test_it_tells_anyone_short_of_active_what_they_can_do(state: str, action: str) -> None:
    # An active account has nothing left to do; every other state needs a next step.
    assert notice(state, action).you_can.strip()


@pytest.mark.parametrize("action", ACTIONS)
def test_it_says_what_we_are_doing_while_setting_up(action: str) -> None:
    assert notice(AccountState.SETTING_UP, action).doing.strip()


@pytest.mark.parametrize("action", ACTIONS)
def test_it_owns_the_failure_when_setup_needs_attention(action: str) -> None:
    text = notice(AccountState.NEEDS_ATTENTION, action)
    assert re.search(r"\b(our|we)\b.*\b(fail|failure|fault)\b", text.happened, re.IGNORECASE | re.DOTALL), text
    assert text.doing.strip(), "it says who is fixing it"
    assert text.you_can.strip()


def test_it_never_asks_a_needs_attention_account_to_sign_up_again() -> None:
    for action in ACTIONS:
        text = notice(AccountState.NEEDS_ATTENTION, action).text.lower()
        assert "sign up again" not in text or "don't need to sign up again" in text


@pytest.mark.parametrize("action", ACTIONS)
def test_it_tells_a_disabled_account_what_is_happening_and_who_to_ask(action: str) -> None:
    text = notice(AccountState.DISABLED, action)
    assert "disabled" in text.happened
    assert text.doing.strip()
    assert "write to us" in text.you_can or "contact" in text.you_can


def test_it_joins_the_parts_of_a_notice_without_empty_gaps() -> None:
    assert Notice("Done.", "", "Go on.").text == "Done. Go on."
    assert Notice("Done.", "", "").text == "Done."


@pytest.mark.parametrize("standalone", [
    messages.EMAIL_TAKEN, messages.INVALID_CREDENTIALS, site_messages.RATE_LIMITED, messages.RECOVERY_SENT,
    messages.CODE_REJECTED, messages.VERIFY_LINK_BAD, site_messages.NOT_SIGNED_IN, site_messages.INVALID_INPUT,
    site_messages.MALFORMED_REQUEST, site_messages.BODY_TOO_LARGE, site_messages.UNEXPECTED,
])
def test_it_gives_every_refusal_a_next_step(standalone: Notice) -> None:
    assert standalone.happened.strip()
    assert standalone.you_can.strip()


def test_it_does_not_reveal_the_account_state_when_an_email_is_taken() -> None:
    text = messages.EMAIL_TAKEN.text.lower()
    for state in AccountState:
        assert state.value.replace("_", " ") not in text
        assert state.label not in text


def test_it_words_the_rate_limit_with_the_minutes_to_wait() -> None:
    assert "3 minute" in site_messages.RATE_LIMITED.text.format(minutes=3)


def test_it_has_a_status_text_for_every_setup_step_status() -> None:
    from backstop.accounts.models import StepName, StepStatus

    assert set(messages.STEP_STATUS_TEXT) == set(StepStatus.values)
    assert set(messages.PROVIDER_NAMES) == set(StepName.values)
    for text in messages.STEP_STATUS_TEXT.values():
        text.format(attempts=2, error="timeout", next_attempt="12:00:00 UTC", provider="email")
