"""Times in the reader's own zone: UTC and right without a script, the browser's zone and words with it."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Browser, sync_playwright

from backstop.accounts.messages import STEP_STATUS_TEXT
from backstop.accounts.progress import next_attempt_text
from backstop.web.local_times import SCRIPT, local_time, local_time_in, local_times_script

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
    assert local_time(MOMENT, "precise").endswith(">05:30:12, 14 Mar UTC</time>")
    assert local_time(None) == ""
    with pytest.raises(TemplateSyntaxError):
        local_time(MOMENT, "sideways")


def test_it_reads_the_iso_texts_of_the_status_file_as_utc() -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))

    assert local_time("2026-03-14T05:30:12+00:00") == local_time(MOMENT)
    assert local_time("2026-03-14T05:30:12") == local_time(MOMENT)  # a naive text is UTC
    assert local_time(MOMENT.astimezone(tokyo)) == local_time(MOMENT)
    assert local_time("") == ""


def test_it_makes_the_moment_a_sentence_names_a_relative_time() -> None:
    sentence = "Attempt 2 failed: <no answer>. We'll try again at 05:30:12 UTC."

    rendered = local_time_in(sentence, MOMENT)

    assert rendered == ("Attempt 2 failed: &lt;no answer&gt;. We&#x27;ll try again "
                        '<time datetime="2026-03-14T05:30:12Z" data-local-time="relative" '
                        'data-local-time-prefix="at " title="2026-03-14 05:30:12 UTC">at 05:30:12 UTC</time>.')
    # The first place it is named: the promise's own words, quoted after it, stay as the customer read them.
    assert local_time_in("promised by 05:30, 14 Mar UTC: “we'll try again at 05:30:12 UTC”", MOMENT) == (
        'promised by <time datetime="2026-03-14T05:30:12Z" data-local-time="absolute" '
        'title="2026-03-14 05:30:12 UTC">05:30, 14 Mar UTC</time>: “we&#x27;ll try again at 05:30:12 UTC”')
    # Without the moment, or a sentence that does not name it: only escaped.
    assert local_time_in("We'll try again now.", None) == "We&#x27;ll try again now."
    assert local_time_in("<b>now</b>", MOMENT) == "&lt;b&gt;now&lt;/b&gt;"


def test_it_finds_the_next_try_as_the_setup_catalogue_writes_it() -> None:
    sentence = STEP_STATUS_TEXT["retrying"].format(
        attempts=1, error="no answer", provider="workspace",
        next_attempt=next_attempt_text(MOMENT, now=MOMENT - dt.timedelta(minutes=2)))

    assert 'data-local-time-prefix="at "' in local_time_in(sentence, MOMENT)


@pytest.mark.django_db
def test_it_serves_its_one_script_from_the_project() -> None:
    client = Client()

    served = client.get("/local-times.js")
    again = client.get("/local-times.js", headers={"If-None-Match": served["ETag"]})

    assert served.status_code == 200
    assert served["Content-Type"] == "text/javascript; charset=utf-8"
    assert served.content == SCRIPT.read_bytes()
    assert again.status_code == 304
    assert local_times_script() == '<script src="/local-times.js" defer></script>'


def test_it_shows_the_browsers_own_zone_and_near_times_in_words(browser: Browser) -> None:
    soon = timezone.now() + dt.timedelta(seconds=40)
    sentence = local_time_in(f"We'll try again at {soon:%H:%M:%S} UTC.", soon)
    page_html = (f"<html><body><p id='far'>{local_time(MOMENT)}</p><p id='near'>{local_time(soon, 'relative')}</p>"
                 f"<p id='old'>{local_time(MOMENT, 'relative')}</p><p id='precise'>{local_time(MOMENT, 'precise')}</p>"
                 f"<p id='sentence'>{sentence}</p><p id='later'></p></body></html>")
    context = browser.new_context(timezone_id="Asia/Tokyo", locale="en-GB")
    try:
        page = context.new_page()
        page.set_content(page_html)
        page.add_script_tag(content=SCRIPT.read_text())
        # A sentence a page draws again from an API answer, and a time added after the script ran.
        page.evaluate("""(iso) => {
            const later = document.getElementById("later");
            later.append(...window.localTimeIn("Next try at " + new Date(iso).toISOString().slice(11, 19) + " UTC.",
                                               iso));
            const added = document.createElement("time");
            added.id = "added";
            added.dateTime = "2026-03-14T05:30:12Z";
            added.dataset.localTime = "absolute";
            added.textContent = "05:30, 14 Mar UTC";
            document.body.append(added);
        }""", soon.isoformat())
        page.wait_for_function("document.getElementById('added').textContent.indexOf('UTC') < 0")
        texts = {name: page.text_content(f"#{name}") or "" for name in
                 ("far", "near", "old", "precise", "sentence", "later", "added")}
    finally:
        context.close()

    assert "14:30" in texts["far"] and "14 Mar" in texts["far"] and "UTC" not in texts["far"]  # 05:30 UTC: 14:30
    assert re.fullmatch(r"in (3\d|40) seconds", texts["near"]), texts["near"]
    assert "14:30" in texts["old"]  # more than a day away: the date and time read better than "9 months ago"
    assert "14:30:12" in texts["precise"]
    assert re.fullmatch(r"We'll try again in (3\d|40) seconds\.", texts["sentence"]), texts["sentence"]
    assert re.fullmatch(r"Next try in (3\d|40) seconds\.", texts["later"]), texts["later"]
    assert "14:30" in texts["added"]
    assert not any("UTC" in text for text in texts.values()), texts
