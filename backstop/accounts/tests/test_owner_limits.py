"""Rate limits that protect owners, over real HTTP against a real server process: a stranger's failures slow the
stranger and never stop the owner; correct sign-ins never count; a password change is told on every channel.

Each address is a real source address on the loopback network (127.0.0.x), so the server sees it as REMOTE_ADDR.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from django.utils.html import escape

from backstop.accounts import messages
from conftest import ROOT, wait_for

OWNER = {"email": "ann@example.com", "password": "correct horse battery", "phone": "+14155550100"}
STAFF = {"email": "agent@example.com", "password": "desk lamp evergreen"}
STRANGER_IP = "127.0.0.2"
OWNER_IP = "127.0.0.3"
ELSEWHERE_IP = "127.0.0.4"

SEED = f"""
from backstop.accounts.models import Account, AccountState
from backstop.accounts.staff import ensure_staff_account
ensure_staff_account(email={STAFF['email']!r}, password={STAFF['password']!r})
ann = Account.objects.create(email={OWNER['email']!r}, email_key={OWNER['email']!r}, name="Ann Lee", company="Acme",
                             phone={OWNER['phone']!r}, state=AccountState.ACTIVE)
ann.set_password({OWNER['password']!r})
ann.save()
"""


@pytest.fixture
def site(server_factory: Any) -> Any:
    server = server_factory()
    server.start(BACKSTOP_BASE_URL=server.url)
    subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", SEED], env={**os.environ, **server.env},
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    return server


def browser(site: Any, ip: str, device: str = "") -> httpx.Client:
    """A browser at source address ``ip``, carrying the device cookie ``device`` when given."""
    client = httpx.Client(base_url=site.url, timeout=30, transport=httpx.HTTPTransport(local_address=ip))
    if device:
        client.cookies.set("bk_device", device)
    return client


def api_login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    return client.post("/api/login", json={"email": email, "password": password})


def form_login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    """The HTML sign-in form, as a person submits it (with the page's CSRF token)."""
    page = client.get("/login")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    return client.post("/login", data={"csrfmiddlewaretoken": token.group(1), "email": email, "password": password})


def stranger_fails(site: Any, email: str, *, passwords: int = 11, codes: int = 0, sink: Any = None) -> list[int]:
    """A stranger at STRANGER_IP tries wrong passwords, then asks for a code and tries wrong codes (once the code
    exists: it is made by a workflow after the request, and a guess before it is no guess at the browser's code)."""
    stranger = browser(site, STRANGER_IP)
    statuses = [api_login(stranger, email, f"wrong guess {n}").status_code for n in range(passwords)]
    if codes:
        before = len(codes_sent(sink, email))
        stranger.post("/api/recover", json={"email": email})
        new_code(sink, email, before)
        statuses += [stranger.post("/api/recover/verify", json={"email": email, "code": f"{n:06d}"}).status_code
                     for n in range(codes)]
    return statuses


def codes_sent(sink: Any, email: str) -> list[str]:
    found = (re.search(r"sign-in code: (\d{6})", str(m["Subject"])) for m in sink.to(email))
    return [match.group(1) for match in found if match]


def new_code(sink: Any, email: str, before: int) -> str:
    codes = wait_for(lambda: codes_sent(sink, email)[before:], timeout=30, message="the sign-in code never arrived")
    return str(codes[-1])


def text_of(message: Any) -> str:
    part = message.get_payload(0) if message.is_multipart() else message
    return str(part.get_payload(decode=True).decode())


def links_sent(sink: Any, email: str) -> list[str]:
    """The sign-in links (paths) in the code emails sent to ``email``, oldest first."""
    found = (re.search(r"https?://[^/\s]+(/signin/[A-Za-z0-9_-]+)", text_of(m)) for m in sink.to(email)
             if "sign-in code" in str(m["Subject"]))
    return [match.group(1) for match in found if match]


def new_link(sink: Any, email: str, before: int = 0) -> str:
    links = wait_for(lambda: links_sent(sink, email)[before:], timeout=30, message="the sign-in link never arrived")
    return str(links[-1])


def press_sign_in(client: httpx.Client, link: str, **fields: str) -> httpx.Response:
    """Open the emailed link's page and press its Sign in button (with the page's CSRF token)."""
    page = client.get(link)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    return client.post(link, data={"csrfmiddlewaretoken": token.group(1), **fields})


def test_it_lets_the_owner_with_a_known_device_sign_in_after_a_strangers_failures(
    site: Any, smtp_sink: Any
) -> None:
    owner = browser(site, OWNER_IP)
    assert api_login(owner, OWNER["email"], OWNER["password"]).status_code == 200
    device = owner.cookies.get("bk_device")
    assert device

    statuses = stranger_fails(site, OWNER["email"], passwords=12)
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429  # the stranger is slowed

    # The owner's browser, even from another network, is let in; the API and the sign-in form alike.
    assert api_login(browser(site, ELSEWHERE_IP, device), OWNER["email"], OWNER["password"]).status_code == 200
    page = form_login(browser(site, ELSEWHERE_IP, device), OWNER["email"], OWNER["password"])
    assert page.status_code == 302 and page.headers["location"] == "/app"
    # A browser that never signed in to the account still waits: stuffing from many addresses stays bounded.
    assert api_login(browser(site, ELSEWHERE_IP), OWNER["email"], OWNER["password"]).status_code == 429
    # A forged or another account's device cookie is no device at all.
    assert api_login(browser(site, ELSEWHERE_IP, device + "x"), OWNER["email"], OWNER["password"]).status_code == 429


def test_it_lets_the_owner_in_with_the_code_they_asked_for_after_a_strangers_wrong_passwords_and_codes(
    site: Any, smtp_sink: Any
) -> None:
    statuses = stranger_fails(site, OWNER["email"], passwords=11, codes=16, sink=smtp_sink)
    assert statuses[-17] == 429 and 429 not in statuses[:10]
    # Five tries in the stranger's browser at the code it asked for, then ten wrong codes for the account (and five
    # for the address at that code), then it is refused for a while.
    assert statuses[-16:] == [400] * 15 + [429]

    owner = browser(site, OWNER_IP)  # a new browser, at an address of its own
    before = len(wait_for(lambda: codes_sent(smtp_sink, OWNER["email"]), timeout=30))
    assert owner.post("/api/recover", json={"email": OWNER["email"]}).status_code == 202
    code = new_code(smtp_sink, OWNER["email"], before)
    # The account's guesses are spent for browsers new to it: typed anywhere else, the code is refused for now, and
    # the answer names the way in that is not (the link).
    refused = browser(site, ELSEWHERE_IP).post("/api/recover/verify", json={"email": OWNER["email"], "code": code})
    assert refused.status_code == 429 and "/recover" in refused.json()["message"]
    # In the browser that asked for it, the code the owner holds works: strangers cannot spend its tries.
    typo = owner.post("/api/recover/verify", json={"email": OWNER["email"], "code": f"{(int(code) + 1) % 10**6:06d}"})
    assert typo.status_code == 400

    signed_in = owner.post("/api/recover/verify", json={"email": OWNER["email"], "code": code})

    assert signed_in.status_code == 200, signed_in.text
    assert owner.get("/api/setup").status_code == 200
    assert owner.cookies.get("bk_device")  # and from now on this browser is a known device


def test_it_gives_the_browser_that_asked_for_codes_five_tries_of_its_own_and_no_more(
    site: Any, smtp_sink: Any
) -> None:
    stranger = browser(site, STRANGER_IP)
    assert stranger.post("/api/recover", json={"email": OWNER["email"]}).status_code == 202
    code = new_code(smtp_sink, OWNER["email"], 0)
    wrong = f"{(int(code) + 1) % 10**6:06d}"

    tries = [stranger.post("/api/recover/verify", json={"email": OWNER["email"], "code": wrong}).status_code
             for _ in range(16)]

    # The asking browser's five, then the address's five at the code, then the account's budget (ten) runs out.
    assert tries == [400] * 15 + [429]
    assert stranger.post("/api/recover/verify", json={"email": OWNER["email"], "code": code}).status_code == 429
    # A new cookie jar is a new browser, but one that asked for no code: nothing of its own to spend.
    fresh_jar = browser(site, STRANGER_IP)
    assert fresh_jar.post("/api/recover/verify", json={"email": OWNER["email"], "code": code}).status_code == 429
    # A forged cookie names no code either.
    fresh_jar.cookies.set("bk_code_browser", "A" * 32)
    assert fresh_jar.post("/api/recover/verify", json={"email": OWNER["email"], "code": code}).status_code == 429


def test_it_keeps_the_email_the_owner_holds_usable_through_strangers_guesses_from_many_addresses(
    site: Any, smtp_sink: Any
) -> None:
    owner = browser(site, OWNER_IP)
    assert owner.post("/api/recover", json={"email": OWNER["email"]}).status_code == 202
    code = new_code(smtp_sink, OWNER["email"], 0)
    link = new_link(smtp_sink, OWNER["email"])
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    # Strangers at many addresses spend every guess the code has (five from each address, ten for the account).
    guesses = [browser(site, f"127.0.0.{11 + n // 5}").post(
        "/api/recover/verify", json={"email": OWNER["email"], "code": wrong}).status_code for n in range(15)]
    assert guesses == [400] * 10 + [429] * 5
    # The first stranger's address has spent its tries at this code: the rejection says so, not "you" used it up.
    refused = browser(site, "127.0.0.11").post("/api/recover/verify", json={"email": OWNER["email"], "code": code})
    assert refused.status_code == 429
    assert "five wrong tries may have used it up" not in messages.CODE_REJECTED.text

    # The link in the owner's email is not guessable and so is held to none of that: it signs the owner in.
    signed_in = press_sign_in(owner, link)
    assert signed_in.status_code == 302 and signed_in.headers["location"] == "/app", signed_in.text
    assert owner.get("/api/setup").status_code == 200
    # The code went with it: the link and the code are one secret, used once.
    known = browser(site, ELSEWHERE_IP, owner.cookies.get("bk_device") or "")
    assert known.post("/api/recover/verify", json={"email": OWNER["email"], "code": code}).status_code == 400


def test_it_lets_the_owner_in_after_strangers_spend_every_budget_of_the_account(site: Any, smtp_sink: Any) -> None:
    # Strangers spend the account's password budget, its five code requests and every guess at the codes.
    owner = browser(site, OWNER_IP)  # a new browser: no device cookie
    stranger_fails(site, OWNER["email"], passwords=10)
    # Checked at once: the budgets' windows are aligned, so a slow machine could otherwise cross into a new one.
    assert api_login(owner, OWNER["email"], OWNER["password"]).status_code == 429
    for n in range(5):
        assert browser(site, f"127.0.0.{21 + n}").post("/api/recover", json={"email": OWNER["email"]}).status_code \
            == 202
    codes = [new_code(smtp_sink, OWNER["email"], n) for n in range(5)]
    for n in range(10):
        browser(site, f"127.0.0.{31 + n}").post("/api/recover/verify", json={"email": OWNER["email"], "code": "000000"})

    assert owner.post("/api/recover/verify", json={"email": OWNER["email"], "code": codes[-1]}).status_code == 429
    # Past the account's five code requests, one per code lifetime still goes through, so strangers can never keep
    # the owner's inbox without a live sign-in link: the owner's request sends a fresh one, the next stranger's waits.
    assert owner.post("/api/recover", json={"email": OWNER["email"]}).status_code == 202
    assert browser(site, "127.0.0.26").post("/api/recover", json={"email": OWNER["email"]}).status_code == 429
    fresh = new_link(smtp_sink, OWNER["email"], 5)

    # The fresh link lets the owner in (and so would any live one of the strangers' requests).
    signed_in = press_sign_in(owner, fresh, new_password="lantern orchard plum")
    assert signed_in.status_code == 302, signed_in.text
    assert owner.get("/api/setup").status_code == 200
    assert api_login(browser(site, ELSEWHERE_IP), OWNER["email"], "lantern orchard plum").status_code == 429
    assert api_login(owner, OWNER["email"], "lantern orchard plum").status_code == 200  # now a known device


def test_it_does_not_sign_in_or_use_the_link_when_its_page_is_only_opened(site: Any, smtp_sink: Any) -> None:
    owner = browser(site, OWNER_IP)
    assert owner.post("/api/recover", json={"email": OWNER["email"]}).status_code == 202
    link = new_link(smtp_sink, OWNER["email"])

    scanner = browser(site, ELSEWHERE_IP)  # a mail scanner fetching every link in the email
    for _ in range(3):
        page = scanner.get(link)
        assert page.status_code == 200 and "<form method=\"post\"" in page.text
    assert scanner.get("/api/setup").status_code == 401
    assert not scanner.cookies.get("sessionid")

    assert press_sign_in(owner, link).status_code == 302
    assert owner.get("/api/setup").status_code == 200


def test_it_refuses_a_used_or_expired_link_with_a_clear_message(site: Any, smtp_sink: Any) -> None:
    owner = browser(site, OWNER_IP)
    assert owner.post("/api/recover", json={"email": OWNER["email"]}).status_code == 202
    used = new_link(smtp_sink, OWNER["email"])
    assert press_sign_in(owner, used).status_code == 302

    other = browser(site, ELSEWHERE_IP)
    for answer in (other.get(used), other.post(used, data={})):
        assert answer.status_code in (400, 403), answer.text
    again = other.get(used)
    assert again.status_code == 400 and escape(messages.LINK_REJECTED.text) in again.text
    assert 'href="/recover"' in again.text
    assert other.get("/api/setup").status_code == 401

    assert other.post("/api/recover", json={"email": OWNER["email"]}).status_code == 202
    expired = new_link(smtp_sink, OWNER["email"], 1)
    site.database.query("UPDATE accounts_verificationcode SET expires_at = created_at WHERE used_at IS NULL")
    refused = press_sign_in_page_anyway(other, expired)
    assert refused.status_code == 400 and escape(messages.LINK_REJECTED.text) in refused.text
    assert other.get("/api/setup").status_code == 401
    assert other.get("/signin/not-a-token").status_code == 400


def press_sign_in_page_anyway(client: httpx.Client, link: str) -> httpx.Response:
    """Press Sign in on a link whose page shows no button (an expired link): the POST, with a CSRF token from any
    form page."""
    page = client.get("/recover")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    return client.post(link, data={"csrfmiddlewaretoken": token.group(1)})


def test_it_says_the_sign_in_link_route_when_sign_in_is_refused_for_a_while(site: Any) -> None:
    stranger_fails(site, OWNER["email"], passwords=10)
    owner = browser(site, OWNER_IP)
    refused = api_login(owner, OWNER["email"], OWNER["password"])
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    message = refused.json()["message"]
    assert "minute" in message and "sign-in link or code" in message and "/recover" in message
    page = form_login(owner, OWNER["email"], OWNER["password"])
    assert page.status_code == 429
    assert "minute(s), or sign in now with a sign-in link or code: ask for one at /recover." in page.text
    assert f'<a href="/recover">{messages.GET_LINK_AND_CODE}</a>' in page.text


def test_it_never_counts_correct_sign_ins_for_customers_or_staff(site: Any) -> None:
    one_address = browser(site, OWNER_IP)
    for _ in range(20):
        assert api_login(one_address, OWNER["email"], OWNER["password"]).status_code == 200
    staff = browser(site, OWNER_IP)
    for _ in range(20):
        page = form_login(staff, STAFF["email"], STAFF["password"])
        assert page.status_code == 302, page.text
    assert staff.get("/desk").status_code == 200


def test_it_lets_staff_back_in_after_strangers_lock_the_desk_address(site: Any, smtp_sink: Any) -> None:
    agent = browser(site, OWNER_IP)
    assert form_login(agent, STAFF["email"], STAFF["password"]).status_code == 302
    device = agent.cookies.get("bk_device")
    assert device

    statuses = stranger_fails(site, STAFF["email"], passwords=12)
    assert statuses[-1] == 429

    # The agent's own browser: straight back to the desk.
    known = browser(site, ELSEWHERE_IP, device)
    assert form_login(known, STAFF["email"], STAFF["password"]).status_code == 302
    assert known.get("/desk").status_code == 200

    # A new browser: the way back in is a sign-in code sent to the staff address.
    new_browser = browser(site, ELSEWHERE_IP)
    assert form_login(new_browser, STAFF["email"], STAFF["password"]).status_code == 429
    assert new_browser.post("/api/recover", json={"email": STAFF["email"]}).status_code == 202
    code = new_code(smtp_sink, STAFF["email"], 0)
    assert new_browser.post("/api/recover/verify", json={"email": STAFF["email"], "code": code}).status_code == 200
    assert new_browser.get("/desk").status_code == 200


def start_in_a_fresh_window(window_seconds: int, *, needs: float) -> None:
    """Budgets count in windows aligned to the clock: a test that spends one needs ``needs`` seconds before the
    window ends, or its count restarts halfway (on a slow machine, 61 sign-ins can take a minute)."""
    left = window_seconds - time.time() % window_seconds
    if left < needs:
        time.sleep(left + 0.5)


def test_it_still_slows_the_strangers_address_without_slowing_the_owner(site: Any) -> None:
    start_in_a_fresh_window(900, needs=180)
    owner = browser(site, OWNER_IP)
    assert api_login(owner, OWNER["email"], OWNER["password"]).status_code == 200
    device = owner.cookies.get("bk_device")
    assert device

    stranger = browser(site, STRANGER_IP)
    # Ten wrong passwords for the owner, then credential stuffing: one wrong password for each of many addresses.
    targets = [OWNER["email"]] * 10 + [f"person{n}@example.com" for n in range(51)]
    statuses = [api_login(stranger, email, "wrong").status_code for email in targets]
    assert statuses[:60] == [401] * 60
    assert statuses[60] == 429
    assert api_login(stranger, "person0@example.com", "wrong").status_code == 429
    # Guessing codes from there is slowed too.
    codes = [stranger.post("/api/recover/verify", json={"email": f"person{n}@example.com", "code": "000000"})
             .status_code for n in range(31)]
    assert codes[:30] == [400] * 30 and codes[30] == 429

    # Meanwhile the owner's own browser is let in, at their own address and elsewhere.
    assert api_login(browser(site, OWNER_IP, device), OWNER["email"], OWNER["password"]).status_code == 200
    assert api_login(browser(site, ELSEWHERE_IP, device), OWNER["email"], OWNER["password"]).status_code == 200
    # Another address's own budget is untouched: a third person signs in from a fourth address.
    assert api_login(browser(site, "127.0.0.5"), STAFF["email"], STAFF["password"]).status_code == 200


def test_it_tells_the_owner_by_email_and_sms_when_the_password_changes(site: Any, smtp_sink: Any) -> None:
    other_device = browser(site, ELSEWHERE_IP)
    assert api_login(other_device, OWNER["email"], OWNER["password"]).status_code == 200
    owner = browser(site, OWNER_IP)
    assert owner.post("/api/recover", json={"email": OWNER["email"]}).status_code == 202
    code = new_code(smtp_sink, OWNER["email"], 0)

    changed = owner.post("/api/recover/verify",
                         json={"email": OWNER["email"], "code": code, "new_password": "lantern orchard plum"})

    assert changed.status_code == 200, changed.text
    assert other_device.get("/api/setup").status_code == 401  # the other session ended
    email = wait_for(lambda: [m for m in smtp_sink.to(OWNER["email"]) if "password was changed" in str(m["Subject"])],
                     timeout=30, message="the owner was never emailed about the password change")
    assert len(email) == 1
    body = email[0].get_payload(0).get_payload(decode=True).decode() if email[0].is_multipart() \
        else email[0].get_payload(decode=True).decode()
    assert "UTC" in body and f"{site.url}/recover" in body and "wasn't you" in body

    def sms() -> list[str]:
        rows = site.database.query("SELECT text FROM notify_localmailboxitem WHERE channel = 'sms' AND \"to\" = ?",
                                   (OWNER["phone"],))
        return [row[0] for row in rows if "password was changed" in row[0]]

    texts = wait_for(sms, timeout=30, message="the owner was never sent an SMS about the password change")
    assert len(texts) == 1
    assert f"{site.url}/recover" in texts[0]


def codes_asked_from(server: Any, forwarded: list[str]) -> list[int]:
    """Codes asked for (each for another address, so only the per-address limit applies) from one peer, each request
    saying it was forwarded for the given address."""
    client = browser(server, STRANGER_IP)
    return [client.post("/api/recover", json={"email": f"person{n}@example.com"},
                        headers={"X-Forwarded-For": address}).status_code for n, address in enumerate(forwarded)]


def test_it_ignores_x_forwarded_for_unless_told_how_many_proxies_to_trust(site: Any, server_factory: Any) -> None:
    # By default the header is anyone's to write: rotating it buys no new budget.
    assert codes_asked_from(site, [f"198.51.100.{n}" for n in range(21)]) == [202] * 20 + [429]

    proxied = server_factory()
    proxied.start(BACKSTOP_BASE_URL=proxied.url, BACKSTOP_TRUSTED_PROXY_COUNT="1")
    # Behind our proxy every visitor comes from the proxy's address: each is counted under the one it forwarded for.
    statuses = codes_asked_from(proxied, ["203.0.113.7"] * 21 + ["203.0.113.8", "2001:db8::1, 203.0.113.9"])
    assert statuses == [202] * 20 + [429, 202, 202]
