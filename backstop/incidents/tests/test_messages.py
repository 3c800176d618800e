"""The catalogue covers every entry it is looked up by: states, providers, what a customer can lose."""

from __future__ import annotations

from backstop.accounts.models import STEP_PROVIDERS
from backstop.attention.models import AttentionKind
from backstop.incidents import messages
from backstop.incidents.models import IncidentState
from backstop.runtime import registry


def test_it_has_a_label_and_a_drafted_update_for_every_state() -> None:
    assert set(messages.STATE_LABELS) == set(IncidentState.values)
    assert set(messages.DRAFTED_UPDATES) == set(IncidentState.values)
    for text in messages.DRAFTED_UPDATES.values():
        assert "[" not in text and text.format(capability="X", detected="10:00 UTC", mitigated="10:30 UTC",
                                                customers=3)


def test_it_names_every_provider_a_breaker_can_open_on_as_a_capability() -> None:
    for provider in [*registry.probes(), *STEP_PROVIDERS.values()]:
        assert provider in messages.CAPABILITY_NAMES, provider


def test_it_names_everything_an_affected_customer_can_have_lost() -> None:
    for lost in [*STEP_PROVIDERS, *AttentionKind.values]:
        assert lost in messages.LOST_NAMES, lost
