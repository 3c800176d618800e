"""Abuse limits per IP and per address on signup, login and recovery, counted in the shared database."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest import mock

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from backstop.accounts.models import Account, AccountState
from backstop.lib import site_messages
from backstop.ratelimits.models import Counter
from backstop.ratelimits.services import (
    Limit,
    RateLimited,
    check_rate_limit,
    claim_attempt,
    count_failure,
    refuse_spent_budget,
)
from conftest import wait_for

PASSWORD = "correct horse battery"
# At RATE_LIMIT_SCALE 0.1: signup 3 per IP / 1 per address, login 6 / 1, recover 2 / 1.
SCALE = 0.1


pytestmark = pytest.mark.usefixtures("small_limits", "workflows_finish_before_cleanup")


@pytest.fixture
def small_limits(settings: Any) -> None:
    settings.RATE_LIMIT_SCALE = SCALE


def person(number: int) -> dict[str, str]:
    return {"name": f"Person {number}", "email": f"person{number}@example.com", "phone": "+1 415 555 0100",
            "company": "Acme", "password": PASSWORD}


def post(path: str, body: dict[str, str], ip: str = "198.51.100.1") -> Any:
    return Client().post(path, body, content_type="application/json", REMOTE_ADDR=ip)


def make_account(email: str = "ann@example.com") -> Account:
    account = Account(email=email, email_key=email, name="Ann Lee", company="Acme", phone="+14155550100",
                      state=AccountState.ACTIVE)
    account.set_password(PASSWORD)
    account.save()
    return account


def assert_rate_limited(response: Any, window_seconds: int) -> None:
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["code"] == "rate_limited"
    assert body["message"].startswith(site_messages.RATE_LIMITED.happened)
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= window_seconds
    assert body["retry_after"] == retry_after
    assert f"{-(-retry_after // 60)} minute" in body["message"]  # rounded up


def test_it_limits_signups_from_one_ip(engine_db: str) -> None:
    for number in range(3):
        assert post("/api/signup", person(number)).status_code == 201

    assert_rate_limited(post("/api/signup", person(3)), 3600)
    assert post("/api/signup", person(4), ip="198.51.100.2").status_code == 201
    assert Account.objects.count() == 4


def test_it_limits_signups_for_one_address_from_any_ip(engine_db: str) -> None:
    assert post("/api/signup", person(1), ip="198.51.100.1").status_code == 201

    again = post("/api/signup", {**person(1), "password": "another long passphrase"}, ip="198.51.100.2")

    assert_rate_limited(again, 3600)
    # The limit is on the address, however it is spelled.
    assert_rate_limited(post("/api/signup", {**person(1), "email": "PERSON1@example.com"}, ip="198.51.100.3"), 3600)
    assert Account.objects.count() == 1


def test_it_limits_logins_from_one_ip(db: Any) -> None:
    for number in range(6):
        assert post("/api/login", {"email": f"nobody{number}@example.com", "password": "wrong"}).status_code == 401

    assert_rate_limited(post("/api/login", {"email": "nobody9@example.com", "password": "wrong"}), 900)


def test_it_limits_logins_for_one_address_even_with_the_right_password(db: Any) -> None:
    make_account()
    assert post("/api/login", {"email": "ann@example.com", "password": "wrong guess"}).status_code == 401

    right = post("/api/login", {"email": "ann@example.com", "password": PASSWORD}, ip="198.51.100.2")

    assert_rate_limited(right, 900)
    assert not Account.objects.get().events.filter(kind="signed_in").exists()


def test_it_answers_a_rate_limited_page_with_429_and_when_to_come_back(db: Any) -> None:
    make_account()
    assert post("/api/login", {"email": "ann@example.com", "password": "wrong guess"}).status_code == 401

    page = Client().post("/login", {"email": "ann@example.com", "password": PASSWORD}, REMOTE_ADDR="198.51.100.2")

    assert page.status_code == 429
    retry_after = int(page["Retry-After"])
    assert 1 <= retry_after <= 900
    assert f"try again in {-(-retry_after // 60)} minute" in page.content.decode()  # rounded up
    assert 'value="ann@example.com"' in page.content.decode()


def test_it_limits_an_unknown_address_exactly_like_a_known_one(db: Any) -> None:
    make_account()
    for email in ("ann@example.com", "nobody@example.com"):
        assert post("/api/login", {"email": email, "password": "wrong"}, ip="198.51.100.7").status_code == 401
        limited = post("/api/login", {"email": email, "password": "wrong"}, ip="198.51.100.8")
        assert limited.status_code == 429


def test_it_limits_recovery_per_ip_and_per_address(engine_db: str) -> None:
    make_account()
    assert post("/api/recover", {"email": "ann@example.com"}).status_code == 202
    # Past the address's budget one request per code lifetime still sends (so a live sign-in link is always in the
    # owner's inbox or on its way); the next is refused.
    assert post("/api/recover", {"email": "ann@example.com"}, ip="198.51.100.2").status_code == 202
    assert_rate_limited(post("/api/recover", {"email": "ann@example.com"}, ip="198.51.100.2"), 3600)

    assert post("/api/recover", {"email": "nobody@example.com"}, ip="198.51.100.3").status_code == 202
    assert post("/api/recover", {"email": "other@example.com"}, ip="198.51.100.3").status_code == 202
    assert_rate_limited(post("/api/recover", {"email": "third@example.com"}, ip="198.51.100.3"), 3600)
    # The code is made by the request's workflow, after the answer.
    wait_for(lambda: Account.objects.get().codes.count() == 2, timeout=15, message="no code was made")
    assert Account.objects.get().codes.count() == 2


def test_it_never_stores_an_address_in_a_counter(db: Any) -> None:
    post("/api/login", {"email": "ann@example.com", "password": "wrong"})
    long_address = "a" * 5000 + "@example.com"
    assert post("/api/login", {"email": long_address, "password": "wrong"}).status_code == 401

    keys = list(Counter.objects.values_list("key", flat=True))
    assert len(keys) == 3  # one IP counter, one per address
    assert not any("example.com" in key for key in keys)
    assert all(len(key) <= 200 for key in keys)


def test_it_counts_within_a_window_and_starts_again_in_the_next(db: Any) -> None:
    limit = Limit(per_ip=20, per_email=100, window_seconds=60)  # 2 at the scale of these tests
    start = dt.datetime(2030, 1, 1, 12, 0, 10, tzinfo=dt.UTC)
    with mock.patch("backstop.ratelimits.models.timezone.now", return_value=start):
        for _ in range(2):
            check_rate_limit(action="probe", limit=limit, ip="203.0.113.9", email_key=None)
        with pytest.raises(RateLimited) as refused:
            check_rate_limit(action="probe", limit=limit, ip="203.0.113.9", email_key=None)
        check_rate_limit(action="probe", limit=limit, ip="203.0.113.10", email_key=None)
    assert refused.value.retry_after == 50  # until 12:01:00, when the next window starts

    with mock.patch("backstop.ratelimits.models.timezone.now", return_value=start + dt.timedelta(seconds=50)):
        check_rate_limit(action="probe", limit=limit, ip="203.0.113.9", email_key=None)


def test_it_keeps_counting_while_refusing(db: Any) -> None:
    for _ in range(5):
        Counter.objects.hit("probe:ip:x", limit=1, window_seconds=3600)
    assert Counter.objects.get(key="probe:ip:x").hits == 5
    assert Counter.objects.hit("probe:ip:x", limit=1, window_seconds=3600) > 0


def test_it_counts_every_one_of_simultaneous_hits_in_one_row(transactional_db: Any) -> None:
    def hit_ten_times() -> list[float]:
        try:
            return [Counter.objects.hit("probe:ip:busy", limit=70, window_seconds=3600) for _ in range(10)]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        waits = [wait for result in pool.map(lambda _: hit_ten_times(), range(8)) for wait in result]

    assert Counter.objects.get(key="probe:ip:busy").hits == 80  # none lost, one row
    # Every hit past the limit of 70 is refused. A hit reads the count after its own increment, which may already
    # include a simultaneous later one's: at the boundary a few more may be refused, never fewer.
    assert 10 <= sum(1 for wait in waits if wait > 0) <= 17


def test_it_forgets_old_windows(db: Any) -> None:
    Counter.objects.create(key="probe:ip:old", window_start=timezone.now() - dt.timedelta(days=2), hits=3)
    Counter.objects.hit("probe:ip:new", limit=1, window_seconds=60)

    assert Counter.objects.forget_before(timezone.now() - dt.timedelta(days=1)) == 1
    assert list(Counter.objects.values_list("key", flat=True)) == ["probe:ip:new"]


def test_it_switches_limits_off_at_scale_zero(db: Any, settings: Any) -> None:
    settings.RATE_LIMIT_SCALE = 0
    for _ in range(3):  # past the one attempt per address that scale 0.1 would allow
        assert post("/api/login", {"email": "nobody@example.com", "password": "wrong"}).status_code == 401
    assert not Counter.objects.exists()


def test_it_refuses_a_spent_failure_budget_without_counting_the_refusal(db: Any) -> None:
    limit = Limit(per_ip=20, per_email=10, window_seconds=900)  # 2 per IP, 1 per address at this scale
    for _ in range(3):
        refuse_spent_budget(action="probe", limit=limit, ip="203.0.113.9", email_key="ann@example.com")
    assert not Counter.objects.exists()  # looking spends nothing

    count_failure(action="probe", limit=limit, ip="203.0.113.9", email_key="ann@example.com")

    with pytest.raises(RateLimited):
        refuse_spent_budget(action="probe", limit=limit, email_key="ann@example.com")
    refuse_spent_budget(action="probe", limit=limit, ip="203.0.113.9")  # one of two failures spent
    assert sorted(Counter.objects.values_list("hits", flat=True)) == [1, 1]


def test_it_grants_exactly_the_limit_to_simultaneous_claims(transactional_db: Any) -> None:
    def claim() -> bool:
        try:
            return claim_attempt(key="code:1:ip:x", limit=5, window_seconds=3600)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        granted = list(pool.map(lambda _: claim(), range(12)))

    assert granted.count(True) == 5
    assert Counter.objects.get(key="code:1:ip:x").hits == 5


def test_it_treats_a_known_device_that_keeps_failing_as_any_browser(db: Any) -> None:
    make_account()
    browser = Client(REMOTE_ADDR="198.51.100.1")
    assert browser.post("/api/login", {"email": "ann@example.com", "password": PASSWORD},
                        content_type="application/json").status_code == 200
    assert browser.cookies["bk_device"].value
    assert post("/api/login", {"email": "ann@example.com", "password": "wrong"}, ip="198.51.100.9").status_code == 401
    # A stranger spent the account's budget; the known device is not held to it ...
    login = {"email": "ann@example.com", "password": PASSWORD}
    assert browser.post("/api/login", login, content_type="application/json").status_code == 200
    # ... until it fails itself past its own budget (one at this scale): then it is any browser.
    wrong = browser.post("/api/login", {**login, "password": "wrong"}, content_type="application/json")
    assert wrong.status_code == 401
    assert browser.post("/api/login", login, content_type="application/json").status_code == 429
