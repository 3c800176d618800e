"""Strict readers for settings that come from the environment.

Each helper either returns a valid value or raises ``EnvError`` naming the variable, so a typo in a
deployment fails at start-up instead of running with a silent default.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class EnvError(ValueError):
    """An environment variable is set to a value we cannot use."""


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    return (os.environ if environ is None else environ).get(name)


def env_str(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value.strip()


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise EnvError(f"{name} must be one of true/false/1/0/yes/no, not {value!r}")


def env_int(
    name: str, default: int, *, minimum: int | None = None, environ: Mapping[str, str] | None = None
) -> int:
    value = _raw(name, environ)
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError as error:
        raise EnvError(f"{name} must be a whole number, not {value!r}") from error
    if minimum is not None and number < minimum:
        raise EnvError(f"{name} must be at least {minimum}, not {number}")
    return number


def env_float(
    name: str, default: float, *, minimum: float | None = None, environ: Mapping[str, str] | None = None
) -> float:
    value = _raw(name, environ)
    if value is None or not value.strip():
        return default
    try:
        number = float(value)
    except ValueError as error:
        raise EnvError(f"{name} must be a number, not {value!r}") from error
    if minimum is not None and number < minimum:
        raise EnvError(f"{name} must be at least {minimum}, not {number}")
    return number


def env_path(name: str, default: Path, environ: Mapping[str, str] | None = None) -> Path:
    value = _raw(name, environ)
    return (Path(value) if value else default).expanduser().resolve()


def env_choice(name: str, default: str, choices: set[str], environ: Mapping[str, str] | None = None) -> str:
    value = env_str(name, default, environ).lower()
    if value not in choices:
        raise EnvError(f"{name} must be one of {', '.join(sorted(choices))}, not {value!r}")
    return value


def parse_pairs(name: str, text: str) -> dict[str, str]:
    """Parse ``a=x,b=y`` (the shape of BACKSTOP_FAULTS) into a dict, rejecting anything else."""
    pairs: dict[str, str] = {}
    for chunk in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = chunk.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise EnvError(f"{name} must look like 'name=value,name=value', not {text!r}")
        pairs[key.strip().lower()] = value.strip().lower()
    return pairs


def env_time_range(
    name: str, default: str = "", environ: Mapping[str, str] | None = None
) -> tuple[dt.time, dt.time] | None:
    """``22:00-07:00`` (UTC, may wrap past midnight) -> (start, end); empty -> None."""
    text = env_str(name, default, environ)
    if not text:
        return None
    start, sep, end = text.partition("-")
    try:
        if not sep:
            raise ValueError(text)
        return dt.time.fromisoformat(start.strip()), dt.time.fromisoformat(end.strip())
    except ValueError as error:
        raise EnvError(f"{name} must look like '22:00-07:00' (UTC), not {text!r}") from error
