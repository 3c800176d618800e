"""Nobody loses what they typed: every editor in headless Chromium against a real `backstop serve` that we SIGKILL.

The desk's reply and internal note (staff), a workspace note (a customer) and the contact form (a visitor): type,
kill the server, keep typing, reload (the service worker shows the page, the text is there), start the server again
(the drafts sync and the status says so). A form sent during the outage is kept and sent exactly once when the
server is back. Two tabs on one draft see both texts. A tab closed during the outage offers its text when the page is
opened again. Screenshots of each state land in var/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from backstop.drafts import messages
from conftest import ROOT, wait_for

SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STAFF = {"email": "sam@backstop.localhost", "password": "a long staff passphrase"}
CUSTOMER = {"email": "cara@example.com", "password": "cara's long passphrase"}
# The status line's texts, as the person reads them.
SAVED, OFFLINE = messages.SAVED, messages.SAVED_ON_DEVICE


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "browser tests drive the system's chromium: run `make browser` first"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Site:
    server: Any
    case_id: int
    note_id: int

    def start(self) -> None:
        self.server.start(BACKSTOP_BASE_URL=self.server.url)

    def drafts(self) -> dict[str, dict[str, str]]:
        rows = self.server.database.query("SELECT surface, fields FROM drafts_draft")
        return {surface: json.loads(fields) if isinstance(fields, str) else fields for surface, fields in rows}

    def count(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        return int(self.server.database.scalar(sql, params))


SEED = f"""
from backstop.accounts.models import Account, AccountState
from backstop.accounts.staff import ensure_staff_account
from backstop.support.models import Case
from backstop.support.tests.helpers import stalled_account
from backstop.workspaces.models import Workspace
from backstop.workspaces.notes import create_note
ensure_staff_account(email={STAFF['email']!r}, password={STAFF['password']!r})
stalled_account("bob@example.com")
cara = Account.objects.create(email={CUSTOMER['email']!r}, email_key={CUSTOMER['email']!r}, name="Cara Diaz",
                              company="Cara Co", state=AccountState.ACTIVE)
cara.set_password({CUSTOMER['password']!r})
cara.save()
Workspace.objects.create(account=cara, name="Cara Co", external_id="ws-cara")
note = create_note(account_id=cara.pk, title="Launch plan", body="", key="seed")
print(Case.objects.get().pk, note.pk)
"""


@pytest.fixture
def site(server_factory: Any) -> Site:
    server = server_factory(BACKSTOP_RATE_LIMIT_SCALE="20")
    server.start(BACKSTOP_BASE_URL=server.url)
    seeded = subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", SEED],
                            env={**os.environ, **server.env}, cwd=ROOT, check=True, capture_output=True, timeout=120)
    case_id, note_id = (int(n) for n in seeded.stdout.decode().split()[-2:])
    return Site(server=server, case_id=case_id, note_id=note_id)


def _screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"drafts-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _context(browser: Browser, site: Site, person: dict[str, str] | None = None) -> BrowserContext:
    context = browser.new_context(base_url=site.server.url, viewport={"width": 1100, "height": 900})
    context.set_default_timeout(30_000)
    if person is not None:
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("Email").fill(person["email"])
        page.get_by_label("Password").fill(person["password"])
        page.get_by_role("button", name="Sign in").click()
        expect(page).not_to_have_url(re.compile(r"/login"))
        page.close()
    return context


def _open(context: BrowserContext, path: str, warnings: list[str] | None = None) -> Page:
    """A page with its editors started and a copy kept by the service worker (as it is moments after any load)."""
    page = context.new_page()

    def answer(dialog: Any) -> None:
        if warnings is not None:
            warnings.append(dialog.type)
        dialog.accept()

    page.on("dialog", answer)
    page.goto(path)
    _started(page)
    assert page.evaluate("window.backstopDrafts.kept") is True
    return page


def _started(page: Page) -> None:
    page.wait_for_function("window.backstopDrafts !== undefined")
    page.evaluate("window.backstopDrafts.ready")


def _type_at_end(field: Locator, text: str) -> None:
    field.evaluate("el => { el.focus(); el.setSelectionRange(el.value.length, el.value.length); }")
    field.press_sequentially(text, delay=5)


def _status(form: Locator) -> Locator:
    return form.locator("[data-draft-status]")


@dataclass
class Editor:
    name: str
    page: Page
    form: str
    field: str

    @property
    def status(self) -> Locator:
        return _status(self.page.locator(self.form))

    @property
    def box(self) -> Locator:
        return self.page.locator(self.field)


def test_it_keeps_what_was_typed_in_every_editor_through_a_server_crash_and_syncs_it_after(
    browser: Browser, site: Site
) -> None:
    warnings: list[str] = []
    desk = _open(_context(browser, site, STAFF), f"/desk/cases/{site.case_id}", warnings)
    notes = _open(_context(browser, site, CUSTOMER), f"/notes/{site.note_id}", warnings)
    contact = _open(_context(browser, site), "/support/contact", warnings)
    editors = [Editor("desk-reply", desk, "#reply-form", "#id_body"),
               Editor("desk-note", desk, "#note-form", "#id_note_body"),
               Editor("workspace-note", notes, "#note-form", "#id_body"),
               Editor("contact", contact, "#contact-form", "#id_message")]

    for editor in editors:
        editor.box.fill(f"{editor.name}: typed while the server was up.")
    for editor in editors:
        expect(editor.status).to_have_text(SAVED)

    site.server.kill()
    for editor in editors:
        _type_at_end(editor.box, " Typed after it crashed.")
    for editor in editors:
        expect(editor.status).to_have_text(OFFLINE)
    for page, name in ((desk, "desk"), (notes, "workspace-note"), (contact, "contact")):
        _screenshot(page, f"01-{name}-server-down")

    for page in (desk, notes, contact):
        page.reload()  # the service worker answers: the server is still down
        _started(page)
    assert warnings.count("beforeunload") == 3  # each page warned that what it held was not on the server yet
    for editor in editors:
        expect(editor.box).to_have_value(f"{editor.name}: typed while the server was up. Typed after it crashed.")
        expect(editor.status).to_have_text(OFFLINE)
        _type_at_end(editor.box, " And after the reload.")
    for page, name in ((desk, "desk"), (notes, "workspace-note"), (contact, "contact")):
        _screenshot(page, f"02-{name}-reloaded-while-down")

    site.start()
    for editor in editors:
        expect(editor.status).to_have_text(SAVED, timeout=30_000)
    for page, name in ((desk, "desk"), (notes, "workspace-note"), (contact, "contact")):
        _screenshot(page, f"03-{name}-synced-after-restart")
    typed = {editor.name: f"{editor.name}: typed while the server was up. Typed after it crashed. And after the reload."
             for editor in editors}
    drafts = site.drafts()
    assert drafts[f"desk-reply:{site.case_id}"]["body"] == typed["desk-reply"]
    assert drafts[f"desk-note:{site.case_id}"]["body"] == typed["desk-note"]
    assert drafts[f"note:{site.note_id}"]["body"] == typed["workspace-note"]
    assert drafts["contact"]["message"] == typed["contact"]


def test_it_keeps_a_form_sent_during_the_outage_and_sends_it_exactly_once_when_the_server_is_back(
    browser: Browser, site: Site, smtp_sink: Any
) -> None:
    desk = _open(_context(browser, site, STAFF), f"/desk/cases/{site.case_id}")
    contact = _open(_context(browser, site), "/support/contact")
    reply = desk.locator("#reply-form")
    reply.locator("#id_body").fill("Hello Bob, your workspace is on its way. Sam")
    contact.get_by_label("Your email").fill("dana@example.com")
    contact.locator("#id_message").fill("Dana here: where is my invoice?")

    site.server.kill()
    reply.get_by_role("button", name="Send reply").click()
    contact.get_by_role("button", name="Send").click()
    for page, name in ((desk, "desk-reply"), (contact, "contact")):
        panel = page.locator("[data-draft-panel]").filter(has_text="Not sent")
        expect(panel).to_contain_text("Not sent: we can't reach the server. Your text is kept here")
        _screenshot(page, f"04-{name}-not-sent")
        panel.get_by_role("button", name=messages.SEND_WHEN_BACK).click()
        expect(page.locator("[data-draft-panel]").filter(has_text="waiting for the server")).to_be_visible()
        _screenshot(page, f"05-{name}-waiting-to-send")
    expect(reply.locator("#id_body")).to_have_value("Hello Bob, your workspace is on its way. Sam")

    site.start()
    expect(contact.locator("#contact-answer")).to_contain_text("we've got your message", timeout=30_000)
    expect(desk.locator("#desk-notice")).to_have_text("Reply sent; it is on the timeline below.", timeout=30_000)
    _screenshot(contact, "06-contact-sent-once")
    _screenshot(desk, "06-desk-reply-sent-once")
    time.sleep(3)  # long enough for a second sending to show up, were there one
    assert site.count("SELECT COUNT(*) FROM support_contact WHERE text = ?", ("Dana here: where is my invoice?",)) == 1
    assert site.count("SELECT COUNT(*) FROM support_supportaction WHERE action = 'reply'") == 1
    wait_for(lambda: smtp_sink.to("bob@example.com"), timeout=30, message="the reply never reached Bob")
    time.sleep(1)
    assert len([m for m in smtp_sink.to("bob@example.com") if m["Subject"] == "About your Backstop account"]) == 1
    assert site.drafts() == {}  # both were sent: nothing is kept any more


def test_it_shows_both_texts_when_two_tabs_edit_one_draft_and_loses_neither(browser: Browser, site: Site) -> None:
    customer = _context(browser, site, CUSTOMER)
    tab_a = _open(customer, f"/notes/{site.note_id}")
    tab_b = _open(customer, f"/notes/{site.note_id}")
    form_a, form_b = tab_a.locator("#note-form"), tab_b.locator("#note-form")

    form_a.locator("#id_body").fill("Tab A: launch on Monday.")
    expect(_status(form_a)).to_have_text(SAVED)
    form_b.locator("#id_body").fill("Tab B: launch on Friday.")
    conflict = form_b.locator("[data-draft-panel]")
    expect(conflict).to_contain_text("also changed in another tab or on another device")
    expect(conflict.locator("[data-draft-version=mine]")).to_have_value("Tab B: launch on Friday.")
    expect(conflict.locator("[data-draft-version=theirs]")).to_have_value("Tab A: launch on Monday.")
    expect(form_a.locator("#id_body")).to_have_value("Tab A: launch on Monday.")
    _screenshot(tab_b, "07-two-tabs-conflict")

    conflict.get_by_role("button", name=messages.KEEP_MINE).click()
    expect(_status(form_b)).to_have_text(SAVED)
    assert site.drafts()[f"note:{site.note_id}"]["body"] == "Tab B: launch on Friday."

    _type_at_end(form_a.locator("#id_body"), " Or Tuesday?")
    conflict_a = form_a.locator("[data-draft-panel]")
    expect(conflict_a.locator("[data-draft-version=theirs]")).to_have_value("Tab B: launch on Friday.")
    expect(conflict_a.locator("[data-draft-version=mine]")).to_have_value("Tab A: launch on Monday. Or Tuesday?")
    _screenshot(tab_a, "08-two-tabs-conflict-other-side")
    conflict_a.get_by_role("button", name=messages.USE_THEIRS).click()
    expect(form_a.locator("#id_body")).to_have_value("Tab B: launch on Friday.")
    expect(_status(form_a)).to_have_text(SAVED)
    assert site.drafts()[f"note:{site.note_id}"]["body"] == "Tab B: launch on Friday."


def test_it_offers_to_restore_what_a_tab_closed_during_the_outage_held(browser: Browser, site: Site) -> None:
    customer = _context(browser, site, CUSTOMER)
    page = _open(customer, "/notes/new")
    page.get_by_label("Title").fill("Hiring plan")
    page.locator("#id_body").fill("Two engineers in Q1.")
    expect(_status(page.locator("#note-form"))).to_have_text(SAVED)
    site.server.kill()
    _type_at_end(page.locator("#id_body"), " One designer in Q2.")
    expect(_status(page.locator("#note-form"))).to_have_text(OFFLINE)
    page.close()  # the person gives up and closes the tab
    site.start()

    reopened = _open(customer, "/notes/new")
    prompt = reopened.locator("[data-draft-panel]")
    expect(prompt).to_have_text(re.compile(
        r"You have text you haven't sent here, from a moment ago \(saved on this device\)\."))
    expect(reopened.locator("#id_body")).to_have_value("")
    _screenshot(reopened, "09-restore-prompt-after-closed-tab")
    prompt.get_by_role("button", name=messages.RESTORE).click()
    expect(reopened.get_by_label("Title")).to_have_value("Hiring plan")
    expect(reopened.locator("#id_body")).to_have_value("Two engineers in Q1. One designer in Q2.")
    expect(_status(reopened.locator("#note-form"))).to_have_text(SAVED)
    assert site.drafts()["note:new"]["body"] == "Two engineers in Q1. One designer in Q2."

    # On another device the same draft is offered from the server; creating the note there forgets it.
    laptop = _open(_context(browser, site, CUSTOMER), "/notes/new")
    expect(laptop.locator("[data-draft-panel]")).to_contain_text("(saved on the server, from another tab or device)")
    _screenshot(laptop, "10-restore-prompt-other-device")
    laptop.get_by_role("button", name=messages.RESTORE).click()
    laptop.get_by_role("button", name="Create note").click()
    expect(laptop.locator("#note-notice")).to_have_text("Note created.")
    assert site.count("SELECT COUNT(*) FROM workspaces_note WHERE title = ?", ("Hiring plan",)) == 1
    assert "note:new" not in site.drafts()


def test_it_keeps_text_in_local_storage_without_indexeddb_and_says_why_a_save_was_refused(
    browser: Browser, server_factory: Any
) -> None:
    server = server_factory(BACKSTOP_DRAFT_MAX_CHARS="1000")
    server.start(BACKSTOP_BASE_URL=server.url)
    site = Site(server=server, case_id=0, note_id=0)
    context = _context(browser, site)
    context.add_init_script("Object.defineProperty(window, 'indexedDB', { value: undefined });")
    page = _open(context, "/support/contact")
    form = page.locator("#contact-form")
    form.locator("#id_message").fill("Kept without IndexedDB.")
    expect(_status(form)).to_have_text(SAVED)
    assert page.evaluate("Object.keys(localStorage).some(k => k.startsWith('backstop-drafts:drafts:'))")

    server.kill()
    _type_at_end(form.locator("#id_message"), " Still kept.")
    expect(_status(form)).to_have_text(OFFLINE)
    page.reload()
    _started(page)
    expect(page.locator("#id_message")).to_have_value("Kept without IndexedDB. Still kept.")

    site.start()
    expect(_status(page.locator("#contact-form"))).to_have_text(SAVED, timeout=30_000)
    page.locator("#id_message").fill("x" * 1001)
    expect(_status(page.locator("#contact-form"))).to_have_text(
        "Not saved: " + messages.FIELD_TOO_LONG.format(limit=1000))
    _screenshot(page, "11-not-saved-why")
