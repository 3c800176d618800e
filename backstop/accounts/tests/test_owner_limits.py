"""Rate limits that protect owners, over real HTTP against a real server process: a stranger's failures slow the
stranger and never stop the owner; correct sign-ins never count; a password change is told on every channel.

Each address is a real source address on the loopback network (127.0.0.x), so the server sees it as REMOTE_ADDR.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest

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


def stranger_fails(site: Any, email: str, *, passwords: int = 11, codes: int = 0) -> list[int]:
    """A stranger at STRANGER_IP tries wrong passwords, then asks for a code and tries wrong codes."""
    stranger = browser(site, STRANGER_IP)
    statuses = [api_login(stranger, email, f"wrong guess {n}").status_code for n in range(passwords)]
    if codes:
        stranger.post("/api/recover", json={"email": email})
        statuses += [stranger.post("/api/recover/verify", json={"email": email, "code": f"{n:06d}"}).status_code
                     for n in range(codes)]
    return statuses


def codes_sent(sink: Any, email: str) -> list[str]:
    found = (re.search(r"sign-in code: (\d{6})", str(m["Subject"])) for m in sink.to(email))
    return [match.group(1) for match in found if match]


def new_code(sink: Any, email: str, before: int) -> str:
    codes = wait_for(lambda: codes_sent(sink, email)[before:], timeout=30, message="the sign-in code never arrived")
    return str(codes[-1])


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


def test_it_lets_the_owner_in_with_a_fresh_code_after_a_strangers_wrong_passwords_and_codes(
    site: Any, smtp_sink: Any
) -> None:
    statuses = stranger_fails(site, OWNER["email"], passwords=11, codes=11)
    assert statuses[-12] == 429 and 429 not in statuses[:10]

    owner = browser(site, OWNER_IP)
    before = len(wait_for(lambda: codes_sent(smtp_sink, OWNER["email"]), timeout=30))
    assert owner.post("/api/recover", json={"email": OWNER["email"]}).status_code == 202
    code = new_code(smtp_sink, OWNER["email"], before)

    signed_in = owner.post("/api/recover/verify", json={"email": OWNER["email"], "code": code})

    assert signed_in.status_code == 200, signed_in.text
    assert owner.get("/api/setup").status_code == 200
    assert owner.cookies.get("bk_device")  # and from now on this browser is a known device


def test_it_keeps_the_code_the_owner_holds_usable_through_a_strangers_guesses(site: Any, smtp_sink: Any) -> None:
    stranger = browser(site, STRANGER_IP)
    assert stranger.post("/api/recover", json={"email": OWNER["email"]}).status_code == 202
    code = new_code(smtp_sink, OWNER["email"], 0)  # it went to the owner, not to the stranger
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    guesses = [stranger.post("/api/recover/verify", json={"email": OWNER["email"], "code": wrong}).status_code
               for _ in range(11)]
    assert guesses == [400] * 11
    # The stranger's address has spent its tries at this code: even the right code is refused from there.
    assert stranger.post("/api/recover/verify", json={"email": OWNER["email"], "code": code}).status_code == 400

    owner = browser(site, OWNER_IP)
    assert owner.post("/api/recover/verify", json={"email": OWNER["email"], "code": code}).status_code == 200


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


def test_it_still_slows_the_strangers_address_without_slowing_the_owner(site: Any) -> None:
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
