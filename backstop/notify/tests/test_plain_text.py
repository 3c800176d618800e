"""Every email and SMS kind, whichever app holds its templates: the plain-text parts say names as typed ("Seán O'Brien",
"Smith & Sons"), the HTML part escapes them exactly once. The kinds are found on disk (notify/email/<kind>/ and
notify/sms/<kind>.txt in every template directory), so a kind added later is tested without a change here."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.template import Engine

from backstop.notify.services import render_email, render_sms

NAME = "Seán O'Brien of Smith & Sons"
ESCAPED_ONCE = "Seán O&#x27;Brien of Smith &amp; Sons"
ENTITIES = re.compile(r"&(?:#x?[0-9a-fA-F]+|amp|lt|gt|quot|apos);")


class Typed(str):
    """What a customer typed, standing in for every value a template reads: any attribute of it is the same text
    (``account.name``, ``order.reference``...), so each place a template prints something prints the name."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return _value(name)


TYPED = Typed(NAME)
WHEN = dt.datetime(2026, 3, 4, 10, 42, tzinfo=dt.UTC)


def _value(name: str) -> Any:
    """A moment for what the templates print as a date (``paid_at``, ``until``), the typed name for the rest."""
    return WHEN if name.endswith("_at") or name == "until" else TYPED


def _context(names: set[str]) -> dict[str, Any]:
    return {name: _value(name) for name in names}


def _template_dirs() -> list[Path]:
    dirs = [Path(d) for d in Engine.get_default().dirs]
    return dirs + [Path(config.path) / "templates" for config in apps.get_app_configs()]


def _email_kinds() -> list[str]:
    return sorted({kind.name for base in _template_dirs() for kind in (base / "notify" / "email").glob("*")
                   if kind.is_dir()})


def _sms_kinds() -> list[str]:
    return sorted({kind.stem for base in _template_dirs() for kind in (base / "notify" / "sms").glob("*.txt")})


def _names_in(template_name: str) -> set[str]:
    """Every word in the template's tags (and those of what it includes): the context offers each one as TYPED."""
    source = Engine.get_default().get_template(template_name).source
    tags = re.findall(r"\{[{%](.*?)[}%]\}", source, re.DOTALL)
    names = {word for tag in tags for word in re.findall(r"[A-Za-z_]\w*", tag)}
    for included in re.findall(r'\{%\s*include\s+"([^"]+)"', source):
        names |= _names_in(included)
    return names


def _prints_something(template_name: str) -> bool:
    source = Engine.get_default().get_template(template_name).source
    return bool(re.search(r"\{\{\s*[A-Za-z_][\w.]*\s*(\|\s*(safe|linebreaks|linebreaksbr))?\s*\}\}", source)) or bool(
        re.search(r'\{%\s*include\s', source))


def test_it_finds_every_kind_on_disk() -> None:
    assert {"welcome", "sign_in_code", "support_reply", "purchase_confirmation"} <= set(_email_kinds())
    assert {"sign_in_code"} <= set(_sms_kinds())


@pytest.mark.parametrize("kind", _email_kinds())
def test_it_writes_names_as_typed_in_text_and_escaped_once_in_html(kind: str) -> None:
    base = f"notify/email/{kind}"
    names = set().union(*(_names_in(f"{base}/{part}") for part in ("subject.txt", "body.txt", "body.html")))
    rendered = render_email(kind, _context(names))

    for part, text in (("subject", rendered.subject), ("text", rendered.text)):
        assert not ENTITIES.search(text), f"{kind} {part} carries an HTML entity: {text!r}"
    if _prints_something(f"{base}/body.txt"):
        assert NAME in rendered.text, kind
    if _prints_something(f"{base}/body.html"):
        assert ESCAPED_ONCE in rendered.html, kind
    assert "&amp;amp;" not in rendered.html and "&amp;#x27;" not in rendered.html, kind
    assert NAME not in rendered.html, f"{kind} html prints the name unescaped"


@pytest.mark.parametrize("kind", _sms_kinds())
def test_it_writes_names_as_typed_in_an_sms(kind: str) -> None:
    names = _names_in(f"notify/sms/{kind}.txt")
    text = render_sms(kind, _context(names))

    assert not ENTITIES.search(text), f"{kind} sms carries an HTML entity: {text!r}"
    if names:
        assert NAME in text, kind
