"""What the apps above attention plug in: who hears of new records, and who answers questions about customers.

Attention imports no domain app; the support desk registers here in its ``AppConfig.ready()``. Registration is
idempotent (``ready()`` may run more than once in tests), and a process where nobody registered gets the answer
"nobody": no subscribers, no customers told.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backstop.attention.models import AttentionRecord

RecordCallback = Callable[["AttentionRecord"], None]
CustomersToldAnswer = Callable[[Collection[int]], set[int]]

_subscribers: list[RecordCallback] = []
_customers_told: list[CustomersToldAnswer] = []
_waiting_on_an_incident: list[CustomersToldAnswer] = []


def subscribe(callback: RecordCallback) -> None:
    """Call ``callback`` with every record raised (new, or already open and raised again)."""
    if callback not in _subscribers:
        _subscribers.append(callback)


def subscribers() -> tuple[RecordCallback, ...]:
    return tuple(_subscribers)


def answer_customers_told(fn: CustomersToldAnswer) -> None:
    """Register the answer to "which of these accounts will a person tell that their delayed workspace is ready?"."""
    if fn not in _customers_told:
        _customers_told.append(fn)


def customers_told_by_a_person(account_ids: Collection[int]) -> set[int]:
    """Of these accounts, those whose workspace delay a person holds (a support case) and tells them about when it
    settles; the automatic "ready" email is not sent to them. Empty when nobody registered an answer."""
    if not account_ids:
        return set()
    told: set[int] = set()
    for answer in _customers_told:
        told |= answer(account_ids)
    return told


def answer_waiting_on_an_incident(fn: CustomersToldAnswer) -> None:
    """Register the answer to "which of these accounts wait on an incident, automation retrying for them?"."""
    if fn not in _waiting_on_an_incident:
        _waiting_on_an_incident.append(fn)


def accounts_waiting_on_an_incident(account_ids: Collection[int]) -> set[int]:
    """Of these accounts, those the desk shows as waiting on a provider's incident ("automation retrying, no action
    needed") rather than in a person's queue: what the setup page tells them must say the same. Empty when nobody
    registered an answer."""
    if not account_ids:
        return set()
    waiting: set[int] = set()
    for answer in _waiting_on_an_incident:
        waiting |= answer(account_ids)
    return waiting
