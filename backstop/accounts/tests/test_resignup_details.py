"""A same-password signup with corrected details over real HTTP: it says what it kept and asks before changing them;
a new phone is taken only with the code sent to it, so codes stop going to a mistyped number only when the owner
proves the right one."""

from __future__ import annotations

import re
from typing import Any

import httpx

from backstop.accounts import messages
from conftest import Database, SmtpSink, wait_for

PASSWORD = "correct horse battery"
FIRST = {"name": "Ann Le", "email": "ann@example.com", "phone": "+1 415 555 0100", "company": "Acm",
         "password": PASSWORD}
CORRECTED = {**FIRST, "name": "Ann Lee", "phone": "+1 415 555 0199", "company": "Acme"}


def _details(database: Database) -> tuple[str, str, str]:
    row = database.query("SELECT name, company, phone FROM accounts_account WHERE email = 'ann@example.com'")[0]
    return str(row[0]), str(row[1]), str(row[2])


def _sms_to(database: Database, phone: str) -> list[str]:
    return [str(r[0]) for r in database.query(
        "SELECT text FROM notify_localmailboxitem WHERE channel = 'sms' AND \"to\" = ? ORDER BY id", (phone,))]


def test_it_tells_what_it_kept_and_takes_a_new_phone_only_with_the_code_sent_to_it(
    server_factory: Any, server_database: Database, smtp_sink: SmtpSink,
) -> None:
    server = server_factory(BACKSTOP_FAULTS="workspace=error", BACKSTOP_SMS="mailbox").start()
    first = httpx.Client(base_url=server.url, timeout=60)
    assert first.post("/api/signup", json=FIRST).status_code == 201

    again = httpx.Client(base_url=server.url, timeout=60)
    answer = again.post("/api/signup", json=CORRECTED)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["resumed"] is True
    assert body["kept"] == [{"field": "name", "kept": "Ann Le", "typed": "Ann Lee"},
                            {"field": "company", "kept": "Acm", "typed": "Acme"},
                            {"field": "phone", "kept": "+14155550100", "typed": "+14155550199"}]
    assert "We haven't changed the details on your account yet and kept: name Ann Le (you typed Ann Lee)" \
        in body["message"]
    assert "enter the code we've just sent by SMS to +14155550199" in body["message"]
    assert _details(server_database) == ("Ann Le", "Acm", "+14155550100")  # nothing changed without the owner

    sms = wait_for(lambda: _sms_to(server_database, "+14155550199"), timeout=30, message="no code to the new phone")
    code = re.search(r"\b(\d{6})\b", sms[0])
    assert code is not None
    token = again.cookies.get("csrftoken") or ""
    wrong = again.post("/api/account/details", json={"code": "000000" if code.group(1) != "000000" else "111111"},
                       headers={"X-CSRFToken": token})
    assert wrong.status_code == 400 and wrong.json()["code"] == "code_rejected"
    assert _details(server_database) == ("Ann Le", "Acm", "+14155550100")

    confirmed = again.post("/api/account/details", json={"code": code.group(1)}, headers={"X-CSRFToken": token})

    assert confirmed.status_code == 200, confirmed.text
    assert "Your details are updated" in confirmed.json()["message"]
    assert _details(server_database) == ("Ann Lee", "Acme", "+14155550199")
    # The address on file hears of the change; the next sign-in code goes to the proven phone.
    wait_for(lambda: any("details were changed" in str(m["Subject"]) for m in smtp_sink.to("ann@example.com")),
             timeout=30, message="the owner was not told of the change")
    assert httpx.post(f"{server.url}/api/recover", json={"email": "ann@example.com"}).status_code == 202
    wait_for(lambda: any("sign-in code" in text for text in _sms_to(server_database, "+14155550199")), timeout=30,
             message="the next code did not go to the corrected phone")
    assert not any("sign-in code" in text for text in _sms_to(server_database, "+14155550100"))
    assert messages.DETAILS_APPLIED.doing in confirmed.json()["message"]
    first.close()
    again.close()


def _token(page: httpx.Response) -> str:
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None, page.text
    return token.group(1)


def test_it_asks_on_the_pages_before_changing_the_details(server_factory: Any, server_database: Database) -> None:
    server = server_factory(BACKSTOP_FAULTS="workspace=error", BACKSTOP_SMS="mailbox").start()
    assert httpx.post(f"{server.url}/api/signup", json=FIRST, timeout=60).status_code == 201
    browser = httpx.Client(base_url=server.url, timeout=60, follow_redirects=True)

    setup = browser.post("/signup", data={**CORRECTED, "csrfmiddlewaretoken": _token(browser.get("/signup"))})

    text = setup.text.replace("&#x27;", "'")
    assert setup.status_code == 200 and "We haven't changed the details on your account yet" in text
    assert "/account/details" in text
    assert _details(server_database) == ("Ann Le", "Acm", "+14155550100")
    page = browser.get("/account/details")
    assert "+14155550100 → +14155550199" in page.text and 'name="code"' in page.text
    sms = wait_for(lambda: _sms_to(server_database, "+14155550199"), timeout=30, message="no code to the new phone")
    code = re.search(r"\b(\d{6})\b", sms[0])
    assert code is not None

    done = browser.post("/account/details", data={"code": code.group(1), "csrfmiddlewaretoken": _token(page)})

    assert done.status_code == 200 and "Your details are updated" in done.text.replace("&#x27;", "'")
    assert _details(server_database) == ("Ann Lee", "Acme", "+14155550199")
    assert "There are no new details waiting" in browser.get("/account/details").text
    browser.close()
