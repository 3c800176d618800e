"""Times in the reader's own zone: UTC and right without a script, the browser's zone and words with it."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.utils import timezone
from playwright.sync_api import Browser, sync_playwright

from backstop.web.local_times import local_time, local_times_script

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
MOMENT = dt.datetime(2026, 3, 14, 5, 30, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "browser tests drive the system's chromium: run `make browser` first"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_it_writes_the_moment_in_utc_for_a_page_without_scripts() -> None:
    rendered = Template('{{ at|local_time:"relative" }}').render(Context({"at": MOMENT}))

    assert rendered == ('<time datetime="2026-03-14T05:30:12Z" data-local-time="relative" '
                        'title="2026-03-14 05:30:12 UTC">05:30, 14 Mar UTC</time>')
    assert local_time(None) == ""
    with pytest.raises(TemplateSyntaxError):
        local_time(MOMENT, "sideways")


def test_it_shows_the_browsers_own_zone_and_near_times_in_words(browser: Browser) -> None:
    soon = timezone.now() + dt.timedelta(seconds=40)
    page_html = (f"<html><body><p id='far'>{local_time(MOMENT)}</p><p id='near'>{local_time(soon, 'relative')}</p>"
                 f"<p id='old'>{local_time(MOMENT, 'relative')}</p>{local_times_script()}</body></html>")
    context = browser.new_context(timezone_id="Asia/Tokyo", locale="en-GB")
    try:
        page = context.new_page()
        page.set_content(page_html)

        far = page.text_content("#far") or ""
        near = page.text_content("#near") or ""
        old = page.text_content("#old") or ""
    finally:
        context.close()

    assert "14:30" in far and "14 Mar" in far and "UTC" not in far  # 05:30 UTC is 14:30 in Tokyo
    assert re.fullmatch(r"in (3\d|40) seconds", near), near
    assert "14:30" in old  # more than a day away: the date and time read better than "9 months ago"
