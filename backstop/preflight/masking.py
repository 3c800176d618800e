"""Deterministic masking of personal text: the same shape, with none of the original characters that identify anyone.

Each letter, digit and pictograph is replaced by one of its own class: a lower-case Latin letter by a lower-case Latin
letter, a Hebrew letter by a Hebrew letter (right-to-left stays right-to-left), an emoji by an emoji, an Arabic-Indic
digit by an Arabic-Indic digit, and each replacement takes as many UTF-8 bytes as the character it replaces (a column
measured in bytes still fits). Everything else (spaces, ``@``, ``.``, ``+``, punctuation, joiners, skin-tone modifiers,
variation selectors) is kept, so an email stays an email and a phone number keeps its grouping.

Which replacement comes from a keyed HMAC of the whole value, lower-cased: equal values give equal masks (in any
table, so a join on an email key still joins), values that differ only in case give masks that differ only in the
same letters' case, and without the key nothing leads back to the original. This module knows no Django.

Lower-cased the way the snapshot's database compares: one character at a time, as PostgreSQL's ``lower()`` does with
its default (libc) provider, so "İstanbul" and "istanbul" (a duplicate under ``Lower()`` there: ``lower('İ')`` is
``i``) still mask to a case-only pair. SQLite's ``lower()`` folds ASCII only, so there ``İ`` stays a letter of its
own (``dotted_capital_i_lowers_to_i=False``). An ``İ`` folded to ``i`` is masked by an upper-case ASCII letter: one
UTF-8 byte instead of two (the character count is kept; a column measured in bytes still fits).
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Iterable
from functools import cache

_SYMBOL = "So"


def _chars(first: int, last: int) -> Iterable[str]:
    return (chr(code) for code in range(first, last + 1))


def _pool_sources() -> list[str]:
    """Characters a replacement is drawn from, grouped below by class (lower-case letters only: upper case follows)."""
    return [
        "abcdefghijklmnopqrstuvwxyz",
        "".join(_chars(0xE0, 0xFE)),  # Latin-1 lower case (2 bytes)
        "".join(_chars(0x430, 0x44F)),  # Cyrillic
        "".join(_chars(0x3B1, 0x3C9)),  # Greek
        "".join(_chars(0x5D0, 0x5EA)),  # Hebrew (right-to-left)
        "".join(_chars(0x627, 0x64A)),  # Arabic (right-to-left)
        "".join(_chars(0x4E00, 0x4FFF)),  # CJK ideographs
        "".join(_chars(0x3041, 0x3096)),  # Hiragana
        "".join(_chars(0xAC00, 0xACFF)),  # Hangul syllables
        "0123456789",
        "".join(_chars(0x660, 0x669)),  # Arabic-Indic digits
        "".join(_chars(0x1F600, 0x1F64F)),  # emoji faces (4 bytes)
        "".join(_chars(0x1F300, 0x1F5FF)),  # emoji pictographs
        "".join(_chars(0x2600, 0x26FF)),  # other symbols (3 bytes)
    ]


def _script(char: str) -> str:
    """The first word of the character's Unicode name, a good enough stand-in for its script (LATIN, HEBREW, CJK)."""
    return unicodedata.name(char, "?").split(" ", 1)[0]


def character_class(char: str) -> tuple[str, str, str, int]:
    """What a replacement must share with ``char``: script (none for symbols), category, direction, UTF-8 width."""
    category = unicodedata.category(char)
    script = "" if category == _SYMBOL else _script(char)
    return script, category, unicodedata.bidirectional(char), len(char.encode())


def _stable_lower(char: str) -> bool:
    """A pool character must round-trip through upper case, so case-only differences survive the mask."""
    upper = char.upper()
    return len(upper) == 1 and len(upper.encode()) == len(char.encode()) and (upper == char or upper.lower() == char)


@cache
def _pools() -> tuple[dict[tuple[str, str, str, int], str], dict[tuple[str, str, int], str]]:
    exact: dict[tuple[str, str, str, int], list[str]] = {}
    loose: dict[tuple[str, str, int], list[str]] = {}
    for source in _pool_sources():
        for char in source:
            script, category, direction, width = character_class(char)
            if category[0] not in "LN" and category != _SYMBOL:
                continue
            if category == "Ll" and not _stable_lower(char):
                continue
            exact.setdefault((script, category, direction, width), []).append(char)
            loose.setdefault((category, direction, width), []).append(char)
    return ({key: "".join(chars) for key, chars in exact.items()},
            {key: "".join(chars) for key, chars in loose.items()})


def _pool_for(char: str) -> str | None:
    """The characters ``char`` may be replaced by; None keeps it (punctuation, spaces, marks, joiners)."""
    script, category, direction, width = character_class(char)
    if category[0] not in "LN" and category != _SYMBOL:
        return None
    exact, loose = _pools()
    pool = exact.get((script, category, direction, width)) or loose.get((category, direction, width))
    if pool:
        return pool
    # A class no pool covers (a rare script, a Roman numeral): still replaced, by its kind's plainest pool.
    if category == _SYMBOL:
        return exact[("", _SYMBOL, "ON", 4)]
    return "0123456789" if category[0] == "N" else "abcdefghijklmnopqrstuvwxyz"


DOTTED_CAPITAL_I = "\u0130"


def _lower_each(value: str, *, dotted_capital_i_lowers_to_i: bool) -> str:
    """Lower case one character at a time, so positions line up with the original. ``İ`` is the one character whose
    full lower case is two ("i" and a combining dot); its simple lower case, the one databases use, is "i"."""
    def lower(char: str) -> str:
        if char == DOTTED_CAPITAL_I:
            return "i" if dotted_capital_i_lowers_to_i else char
        lowered = char.lower()
        return lowered if len(lowered) == 1 else char
    return "".join(lower(char) for char in value)


def mask(value: str, *, key: bytes, salt: int = 0, dotted_capital_i_lowers_to_i: bool = True) -> str:
    """``value`` with each letter, digit and pictograph replaced by one of its class (see the module's docstring).

    ``salt`` picks another mask of the same value: a unique column uses it when two values happen to mask alike.
    ``dotted_capital_i_lowers_to_i``: whether the database the mask is for lower-cases ``İ`` to ``i`` (PostgreSQL).
    """
    lowered = _lower_each(value, dotted_capital_i_lowers_to_i=dotted_capital_i_lowers_to_i)
    seed = hmac.digest(key, f"{salt}\x00{lowered}".encode(), "sha256")
    stream = hashlib.shake_256(seed).digest(2 * len(value))
    out: list[str] = []
    for position, (char, low) in enumerate(zip(value, lowered, strict=True)):
        pool = _pool_for(low)
        if pool is None:
            out.append(char)
            continue
        pick = pool[int.from_bytes(stream[2 * position:2 * position + 2], "big") % len(pool)]
        out.append(pick.upper() if char != low and len(pick.upper()) == 1 else pick)
    return "".join(out)
