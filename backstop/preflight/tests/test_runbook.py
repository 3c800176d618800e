"""docs/runbooks/migration-failure.md: every command it names exists, with the options it shows."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import get_commands, load_command_class

from backstop.cli import build_parser

RUNBOOK = Path(settings.BASE_DIR) / "docs" / "runbooks" / "migration-failure.md"
MAKEFILE = Path(settings.BASE_DIR) / "Makefile"
# What the runbook's placeholders stand for when its commands are parsed.
PLACEHOLDERS = {"app": "accounts", "migration": "0001_initial", "file": "staging.sqlite3", "field": "company",
                "date": "2026-01-01", "incident": "INC-1"}


def runbook_commands(text: str) -> list[str]:
    """Each `backstop ...` or `make ...` line of a shell block, and each such inline code span."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        commands += [line.strip() for line in block.splitlines() if line.strip()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    commands += [span for span in re.findall(r"`([^`\n]+)`", prose) if span.split(" ", 1)[0] in ("backstop", "make")]
    return commands


def _filled(command: str) -> list[str]:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in PLACEHOLDERS, f"the runbook's placeholder <{name}> in {command!r} is not known to this test"
        return PLACEHOLDERS[name]

    return shlex.split(re.sub(r"<([a-z_]+)>", fill, command))


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9_-]*):", MAKEFILE.read_text(), flags=re.M))


def check_command(command: str) -> None:
    """Raises while ``command`` names a program, subcommand, option or make target this project does not have."""
    program, *argv = _filled(command)
    if program == "make":
        missing = set(argv) - _make_targets()
        assert not missing, f"{command!r}: no make target {', '.join(sorted(missing))}"
        return
    assert program == "backstop", f"{command!r} is not a command of this project"
    subcommand, *options = argv
    own = build_parser()
    subparsers = next(action for action in own._actions if isinstance(action, argparse._SubParsersAction))
    if subcommand in subparsers.choices:
        parser = subparsers.choices[subcommand]
    else:
        app = get_commands().get(subcommand)
        assert app is not None, f"{command!r}: `backstop {subcommand}` is neither a subcommand nor a management command"
        parser = load_command_class(app, subcommand).create_parser("backstop", subcommand)
    parser.allow_abbrev = False  # `--migrat` must not pass for `--migrate`
    parser.parse_args(options)  # argparse exits, Django's parser raises CommandError, on an unknown option


def test_it_finds_the_commands_of_every_section() -> None:
    commands = runbook_commands(RUNBOOK.read_text())
    assert len(commands) >= 20
    for expected in ("backstop preflight", "backstop migrate --plan", "backstop showmigrations", "make test"):
        assert expected in commands


def test_it_names_only_commands_that_exist_with_their_options() -> None:
    for command in runbook_commands(RUNBOOK.read_text()):
        check_command(command)


@pytest.mark.parametrize("command", [
    "backstop preflite", "backstop migrate --forse", "backstop serve --migrat", "make deploy", "psql -c 'select 1'",
    "backstop migrate <app> <mystery>",
])
def test_it_would_catch_a_command_that_does_not_exist(command: str) -> None:
    with pytest.raises((AssertionError, SystemExit, Exception)):
        check_command(command)
