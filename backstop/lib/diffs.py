"""Readable differences between two snapshots (the desk's audit keeps the state before and after each action).

Nested dicts are walked to dotted paths ("steps.workspace"); only what changed is listed, each value in words a
person reads ("none" for missing, lists comma-separated). Framework-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MISSING = object()
MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class Change:
    path: str
    before: str
    after: str


def _flatten(value: Any, prefix: str, into: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), into)
    else:
        into[prefix] = value


def readable(value: Any) -> str:
    if value is MISSING or value is None or value == {} or value == []:
        return "none"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, dict):  # a record inside a list: its fields in words
        text = "(" + "; ".join(f"{key}: {readable(item)}" for key, item in value.items()) + ")"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(readable(item) for item in value)
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[Change]:
    """What differs from ``before`` to ``after``, path by path, in the order the paths first appear."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    _flatten(before or {}, "", old)
    _flatten(after or {}, "", new)
    paths = list(dict.fromkeys([*old, *new]))
    return [Change(path=path, before=readable(old.get(path, MISSING)), after=readable(new.get(path, MISSING)))
            for path in paths if path and old.get(path, MISSING) != new.get(path, MISSING)]
