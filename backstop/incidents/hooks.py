"""What other apps tell the incidents app without it importing them (the desk, above it, answers these)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CustomerContact:
    email: str
    at: dt.datetime
    text: str


ContactsAnswer = Callable[[dt.datetime, dt.datetime], list[CustomerContact]]
_contacts: list[ContactsAnswer] = []


def answer_contacts_between(fn: ContactsAnswer) -> None:
    """The desk says who wrote in between two moments, and what they wrote (the post-mortem's impact names them)."""
    _contacts[:] = [fn]


def contacts_between(start: dt.datetime, end: dt.datetime) -> list[CustomerContact] | None:
    """None when nobody answers (no desk installed): the post-mortem then asks instead of saying "none"."""
    return _contacts[0](start, end) if _contacts else None


# --- The desk's card of the same outage -------------------------------------------------------------------

@dataclass(frozen=True)
class DeskCard:
    """The desk's card (the cases one cause grouped) linked to an incident record: what its page links to."""

    label: str
    url: str


RecordOpened = Callable[[int, str], None]
DeskCardsAnswer = Callable[[int], list[DeskCard]]
_record_opened: list[RecordOpened] = []
_desk_cards: list[DeskCardsAnswer] = []


def on_record_opened(fn: RecordOpened) -> None:
    """The desk links its live card of the same cause to a record when the record opens second."""
    _record_opened[:] = [fn]


def record_opened(*, incident_id: int, cause: str) -> None:
    for fn in _record_opened:
        fn(incident_id, cause)


def answer_desk_cards(fn: DeskCardsAnswer) -> None:
    """The desk says which of its cards are linked to a record (the record's page links to them)."""
    _desk_cards[:] = [fn]


def desk_cards(incident_id: int) -> list[DeskCard]:
    return _desk_cards[0](incident_id) if _desk_cards else []
