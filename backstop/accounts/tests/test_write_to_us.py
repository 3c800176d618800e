"""Every "write to us" is a link to the contact page: the dead ends (a disabled account signing in, a setup that
needs a person) and every sentence of every app's message catalogue that sends someone to us."""

from __future__ import annotations

import dataclasses
import importlib
import re
from typing import Any

import pytest
from django.apps import apps
from django.test import Client

from backstop.accounts.models import Account, AccountState, SetupStep, StepName, StepStatus
from backstop.lib.site_messages import Notice
from backstop.web.contact_links import CONTACT_PHRASES, contact_links

PASSWORD = "correct horse battery"
# How anyone might send a person to us; every one of them a catalogue says must be a link.
SENDS_TO_US = re.compile(r"\b(write to us|write to support|contact us|contact support|get in touch|email us|"
                         r"reach us|let us know)\b", re.IGNORECASE)
LINK = re.compile(r'<a href="/support/contact(\?[^"]*)?" class="contact-link">(write to us|[^<]+)</a>', re.IGNORECASE)


def _account(state: str) -> Account:
    account = Account(email="ann@example.com", email_key="ann@example.com", name="Ann Lee", company="Acme & Sons",
                      phone="+14155550100", state=state)
    account.set_password(PASSWORD)
    account.save()
    SetupStep.objects.bulk_create([SetupStep(account=account, name=name, status=StepStatus.FAILED, attempts=4)
                                   for name in StepName.values])
    return account


@pytest.mark.django_db
def test_it_links_write_to_us_on_the_disabled_account_login_page_with_the_address_filled_in() -> None:
    _account(AccountState.DISABLED)

    page = Client().post("/login", {"email": "ann@example.com", "password": PASSWORD}).content.decode()

    link = re.search(r'<a href="(/support/contact[^"]*)" class="contact-link">write to us</a>', page)
    assert link, page
    assert link.group(1) == "/support/contact?email=ann%40example.com"
    contact = Client().get(link.group(1)).content.decode()
    assert re.search(r'<input[^>]*name="email"[^>]*value="ann@example.com"', contact)


@pytest.mark.django_db
def test_it_links_write_to_us_on_the_needs_attention_setup_page() -> None:
    account = _account(AccountState.NEEDS_ATTENTION)
    client = Client()
    client.force_login(account, backend="django.contrib.auth.backends.ModelBackend")

    page = client.get("/setup").content.decode()

    assert re.search(r'<span id="state-text">[^<]*<a href="/support/contact" class="contact-link">write to us</a>',
                     page), page
    # The page's script redraws the text from /api/setup with the same links.
    assert "window.withContactLinks(data.message)" in page and "window.withContactLinks = " in page


def _sentences(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Notice):
        return [value.happened, value.doing, value.you_can]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _sentences(item)]
    if isinstance(value, (list, tuple, frozenset, set)):
        return [s for item in value for s in _sentences(item)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [s for field in dataclasses.fields(value) for s in _sentences(getattr(value, field.name))]
    return []


def _catalogue_sentences() -> list[tuple[str, str]]:
    found = []
    for config in apps.get_app_configs():
        if not config.name.startswith("backstop"):
            continue
        for module_name in (f"{config.name}.messages", f"{config.name}.lib.site_messages"):
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError:
                continue
            found += [(f"{module_name}.{name}", s) for name, value in vars(module).items() if not name.startswith("__")
                      for s in _sentences(value)]
    found += [(f"site_messages.{name}", s) for name, value in
              vars(importlib.import_module("backstop.lib.site_messages")).items() for s in _sentences(value)]
    return found


def test_it_makes_every_catalogue_sentence_that_sends_someone_to_us_a_link() -> None:
    sending = [(where, s) for where, s in _catalogue_sentences() if SENDS_TO_US.search(s)]
    assert any("write to us" in s for _, s in sending)  # the catalogues were read

    for where, sentence in sending:
        phrases = SENDS_TO_US.findall(sentence)
        assert all(CONTACT_PHRASES.fullmatch(phrase) for phrase in phrases), (where, phrases)
        assert len(LINK.findall(contact_links(sentence))) == len(phrases), where


def test_it_escapes_the_text_around_the_link_once() -> None:
    linked = contact_links("Smith & Sons' order: write to us", "o'brien@example.com")

    assert linked == ('Smith &amp; Sons&#x27; order: <a href="/support/contact?email=o%27brien%40example.com" '
                      'class="contact-link">write to us</a>')


@pytest.mark.django_db
def test_it_links_write_to_us_in_the_html_part_of_a_support_email(settings: Any) -> None:
    from backstop.notify.services import render_email

    settings.BASE_URL = "https://backstop.example"
    text = "Hello Seán O'Brien,\n\nIf you signed up with another address, write to us from that one."
    rendered = render_email("support_ack", {"subject": "We got your message", "text": text})

    assert '<a href="https://backstop.example/support/contact">write to us</a> from that one.' in rendered.html
    assert "Seán O&#x27;Brien" in rendered.html and "&amp;#x27;" not in rendered.html
    assert rendered.text == text + "\n"  # the plain part says it as written
