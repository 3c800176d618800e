"""Which address a request is counted under: the peer, unless the site says how many proxies of its own stand in
front (X-Forwarded-For is anyone's to write); an IPv6 address by its /64, which one subscriber rotates at will."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory

from backstop.checks import check_trusted_proxies
from backstop.lib.http import client_ip, rate_limit_address
from backstop.ratelimits.services import Limit, RateLimited, count_failure, refuse_spent_budget
from backstop.web.proxies import TrustedProxyMiddleware

FORWARDED = "203.0.113.9, 198.51.100.7, 192.0.2.1"


def request_from(peer: str, forwarded: str = "") -> Any:
    """A request as the views see it, through the middleware that reads X-Forwarded-For."""
    request = RequestFactory().get("/", REMOTE_ADDR=peer)
    if forwarded:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded
    TrustedProxyMiddleware(lambda seen: seen)(request)  # type: ignore[arg-type, return-value]
    return request


def test_it_ignores_x_forwarded_for_by_default(settings: Any) -> None:
    assert settings.TRUSTED_PROXY_COUNT == 0
    assert client_ip(request_from("10.0.0.5", FORWARDED)) == "10.0.0.5"


def test_it_takes_the_address_our_outermost_proxy_saw_with_a_trusted_proxy_count(settings: Any) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request_from("10.0.0.5", FORWARDED)) == "192.0.2.1"
    settings.TRUSTED_PROXY_COUNT = 2  # what the visitor wrote themselves (left of our proxies' entries) is never used
    assert client_ip(request_from("10.0.0.5", FORWARDED)) == "198.51.100.7"
    # Fewer entries than proxies, or no address where one should be: only the peer is known.
    assert client_ip(request_from("10.0.0.5", "192.0.2.1")) == "10.0.0.5"
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request_from("10.0.0.5", "192.0.2.1, not-an-address")) == "10.0.0.5"
    assert client_ip(request_from("10.0.0.5")) == "10.0.0.5"


def test_it_counts_an_ipv6_address_by_its_64_and_ipv4_as_it_is() -> None:
    assert rate_limit_address("2001:db8:1:2:aaaa::1") == rate_limit_address("2001:db8:1:2:ffff:1:2:3") \
        == "2001:db8:1:2::/64"
    assert rate_limit_address("2001:db8:1:3::1") != rate_limit_address("2001:db8:1:2::1")
    assert rate_limit_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert rate_limit_address("192.0.2.1") != rate_limit_address("192.0.2.2")
    assert rate_limit_address("unknown") == "unknown"


@pytest.mark.django_db
def test_it_spends_one_budget_for_every_address_of_an_ipv6_64() -> None:
    limit = Limit(per_ip=3, per_email=0, window_seconds=60)
    for n in range(3):
        count_failure(action="login", limit=limit, ip=f"2001:db8:5:6::{n + 1:x}")
    with pytest.raises(RateLimited):
        refuse_spent_budget(action="login", limit=limit, ip="2001:db8:5:6:dead:beef:0:1")
    refuse_spent_budget(action="login", limit=limit, ip="2001:db8:5:7::1")  # the next /64 is someone else


def test_it_refuses_to_start_with_a_trusted_proxy_count_it_cannot_read(settings: Any) -> None:
    for good in ("0", "1", "5"):
        settings.TRUSTED_PROXY_COUNT_SETTING, settings.TRUSTED_PROXY_COUNT = good, int(good)
        assert check_trusted_proxies() == []
    for bad in ("two", "-1", "6", "1.5"):
        settings.TRUSTED_PROXY_COUNT_SETTING, settings.TRUSTED_PROXY_COUNT = bad, 0
        assert [str(error.id) for error in check_trusted_proxies()] == ["backstop.E010"]
