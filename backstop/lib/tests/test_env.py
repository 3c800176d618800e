"""Strict settings readers: a bad value stops start-up with the variable's name, never a silent default."""

from __future__ import annotations

from pathlib import Path

import pytest

from backstop.lib.env import (
    EnvError,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_path,
    env_str,
    parse_pairs,
)


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), (" YES ", True), ("On", True),
    ("0", False), ("false", False), ("no", False), ("off", False), ("", False),
])
def test_it_reads_the_usual_spellings_of_a_bool(raw: str, expected: bool) -> None:
    assert env_bool("BACKSTOP_X", not expected, environ={"BACKSTOP_X": raw}) is expected


@pytest.mark.parametrize("raw", ["2", "enabled", "tru", "y e s"])
def test_it_refuses_a_bool_it_does_not_know_naming_the_variable(raw: str) -> None:
    with pytest.raises(EnvError, match="BACKSTOP_DEBUG"):
        env_bool("BACKSTOP_DEBUG", False, environ={"BACKSTOP_DEBUG": raw})


def test_it_uses_the_default_only_when_a_variable_is_unset() -> None:
    assert env_bool("BACKSTOP_X", True, environ={}) is True
    assert env_int("BACKSTOP_N", 7, environ={}) == 7
    assert env_int("BACKSTOP_N", 7, environ={"BACKSTOP_N": "  "}) == 7
    assert env_float("BACKSTOP_F", 1.5, environ={}) == 1.5
    assert env_str("BACKSTOP_S", "fallback", environ={}) == "fallback"
    assert env_str("BACKSTOP_S", "fallback", environ={"BACKSTOP_S": "  value "}) == "value"
    assert env_choice("BACKSTOP_C", "a", {"a", "b"}, environ={}) == "a"


def test_it_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTOP_TEST_ONLY_NUMBER", "12")
    assert env_int("BACKSTOP_TEST_ONLY_NUMBER", 1) == 12


@pytest.mark.parametrize("raw", ["ten", "1.5", "0x10", "1e3"])
def test_it_refuses_an_int_that_is_not_a_whole_number_naming_the_variable(raw: str) -> None:
    with pytest.raises(EnvError, match="BACKSTOP_SMTP_PORT"):
        env_int("BACKSTOP_SMTP_PORT", 25, environ={"BACKSTOP_SMTP_PORT": raw})


def test_it_refuses_an_int_or_float_below_its_minimum_naming_the_variable() -> None:
    assert env_int("BACKSTOP_N", 5, minimum=1, environ={"BACKSTOP_N": "1"}) == 1
    with pytest.raises(EnvError, match=r"BACKSTOP_N.*at least 1"):
        env_int("BACKSTOP_N", 5, minimum=1, environ={"BACKSTOP_N": "0"})
    with pytest.raises(EnvError, match=r"BACKSTOP_F.*at least 0\.1"):
        env_float("BACKSTOP_F", 1.0, minimum=0.1, environ={"BACKSTOP_F": "0.05"})
    with pytest.raises(EnvError, match="BACKSTOP_F"):
        env_float("BACKSTOP_F", 1.0, environ={"BACKSTOP_F": "fast"})
    assert env_float("BACKSTOP_F", 1.0, environ={"BACKSTOP_F": "2.5"}) == 2.5


def test_it_reads_a_choice_case_insensitively_and_refuses_others_naming_the_variable() -> None:
    assert env_choice("BACKSTOP_EMAIL", "mailbox", {"mailbox", "smtp"}, environ={"BACKSTOP_EMAIL": " SMTP "}) == "smtp"
    with pytest.raises(EnvError, match=r"BACKSTOP_EMAIL.*mailbox, smtp"):
        env_choice("BACKSTOP_EMAIL", "mailbox", {"mailbox", "smtp"}, environ={"BACKSTOP_EMAIL": "postfix"})
    with pytest.raises(EnvError, match="BACKSTOP_EMAIL"):
        env_choice("BACKSTOP_EMAIL", "mailbox", {"mailbox", "smtp"}, environ={"BACKSTOP_EMAIL": ""})


def test_it_resolves_a_path_and_falls_back_to_the_default(tmp_path: Path) -> None:
    assert env_path("BACKSTOP_DATA_DIR", tmp_path, environ={}) == tmp_path.resolve()
    given = tmp_path / "sub" / ".." / "data"
    assert env_path("BACKSTOP_DATA_DIR", Path("/unused"), environ={"BACKSTOP_DATA_DIR": str(given)}) == (
        tmp_path / "data"
    ).resolve()


def test_it_parses_name_value_pairs() -> None:
    assert parse_pairs("BACKSTOP_FAULTS", "email=timeout, Workspace=ERROR ,") == {
        "email": "timeout", "workspace": "error",
    }
    assert parse_pairs("BACKSTOP_FAULTS", "") == {}
    assert parse_pairs("BACKSTOP_FAULTS", " , ") == {}


@pytest.mark.parametrize("text", ["email", "email=", "=timeout", "email=timeout,sms", "email:timeout"])
def test_it_refuses_malformed_pairs_naming_the_variable(text: str) -> None:
    with pytest.raises(EnvError, match="BACKSTOP_FAULTS"):
        parse_pairs("BACKSTOP_FAULTS", text)


def test_it_makes_env_errors_value_errors() -> None:
    # Callers that catch ValueError (argument parsers, Django checks) see these too.
    assert issubclass(EnvError, ValueError)
