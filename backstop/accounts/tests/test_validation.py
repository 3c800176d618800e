"""Bad signup input: every problem named against its field, unreadable requests refused, nothing half-written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from backstop.accounts import messages
from backstop.accounts.models import Account, AccountEvent, SetupStep
from backstop.lib import site_messages
from backstop.notify.models import Message
from backstop.ratelimits.models import Counter

ANN = {"name": "Ann Lee", "email": "ann@example.com", "phone": "+1 415 555 0100", "company": "Acme",
       "password": "correct horse battery"}


def signup(**fields: Any) -> Any:
    return Client().post("/api/signup", fields, content_type="application/json")


def signup_raw(body: str | bytes) -> Any:
    return Client().post("/api/signup", body, content_type="application/json")


def assert_nothing_written() -> None:
    assert Account.objects.count() == 0
    assert SetupStep.objects.count() == 0
    assert AccountEvent.objects.count() == 0
    assert Message.objects.count() == 0


def assert_invalid(response: Any, *fields: str) -> dict[str, str]:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_input"
    assert body["message"] == site_messages.INVALID_INPUT.text
    assert set(body["fields"]) == set(fields), body["fields"]
    assert all(text.strip() for text in body["fields"].values())
    assert_nothing_written()
    return dict(body["fields"])


def long_email(length: int) -> str:
    """A syntactically valid address of exactly ``length`` characters (DNS labels of at most 63)."""
    local = "a" * 64
    remaining = length - len(local) - len("@") - len("com")
    labels = []
    while remaining > 0:
        size = min(63, remaining - 1)
        labels.append("b" * size + ".")
        remaining -= size + 1
    email = f"{local}@{''.join(labels)}com"
    assert len(email) == length
    return email


@pytest.mark.parametrize(("field", "value"), [
    ("email", "not-an-address"),
    ("email", "ann@"),
    ("email", "ann@@example.com"),
    ("email", "ann example@example.com"),
    ("email", ""),
    ("phone", "12"),
    ("phone", "+1 555 0100 0000 1"),
    ("phone", "call me maybe"),
    ("phone", ""),
    ("name", ""),
    ("name", "   "),
    ("company", ""),
    ("company", "\t\n"),
    ("name", "x" * 151),
])
def test_it_names_the_field_with_the_problem(db: Any, field: str, value: str) -> None:
    assert_invalid(signup(**{**ANN, field: value}), field)


@pytest.mark.parametrize("password", [
    "short",                  # shorter than 10
    "1234567890123",          # entirely numeric
    "qwertyuiop",             # on the common-passwords list
    "password123",            # on the common-passwords list
    "annexample.com",         # too close to the email
    "x" * 1025,               # beyond what we hash
])
def test_it_refuses_a_weak_password_against_the_password_field(db: Any, password: str) -> None:
    assert_invalid(signup(**{**ANN, "password": password}), "password")


@pytest.mark.parametrize("email", ["Ünïcode@example.com", "ünïcode@example.com", "用户@example.com"])
def test_it_says_why_it_cannot_take_an_address_with_letters_beyond_ascii_before_the_at(db: Any, email: str) -> None:
    fields = assert_invalid(signup(**{**ANN, "email": email}), "email")

    assert fields["email"] == messages.FIELD_ERRORS["email_not_ascii"]
    assert_nothing_written()


@pytest.mark.parametrize("phone", ["+44 20 7946 0000", "+1 900 555 0123", "+1 800 555 0199"])
def test_it_asks_for_a_mobile_number_instead_of_a_landline_or_service_number(db: Any, phone: str) -> None:
    fields = assert_invalid(signup(**{**ANN, "phone": phone}), "phone")

    assert fields["phone"] == messages.FIELD_ERRORS["phone_not_mobile"]


@pytest.mark.parametrize("phone", ["+33 6 12 34 56 78", "(415) 555-0100"])
def test_it_takes_a_mobile_number_or_one_its_country_does_not_tell_apart(db: Any, phone: str) -> None:
    assert signup(**{**ANN, "phone": phone}).status_code == 201


def test_it_takes_an_address_with_an_international_domain(db: Any) -> None:
    assert signup(**{**ANN, "email": "ann@bücher.example"}).status_code == 201


def test_it_refuses_an_address_longer_than_254_characters(db: Any) -> None:
    fields = assert_invalid(signup(**{**ANN, "email": long_email(255)}), "email")
    assert fields["email"] == messages.FIELD_ERRORS["email_too_long"]


def test_it_reports_every_problem_at_once(db: Any) -> None:
    response = signup(name="", email="nope", phone="x", company="", password="123")
    assert_invalid(response, "name", "email", "phone", "company", "password")


def test_it_names_each_missing_field(db: Any) -> None:
    response = signup(email="ann@example.com")
    fields = assert_invalid(response, "name", "phone", "company", "password")
    assert len(set(fields.values())) == 1


@pytest.mark.parametrize(("field", "value"), [
    ("email", 42), ("email", None), ("name", ["Ann"]), ("password", {"p": 1}), ("phone", True),
])
def test_it_names_the_field_sent_with_the_wrong_type(db: Any, field: str, value: Any) -> None:
    assert_invalid(signup(**{**ANN, field: value}), field)


@pytest.mark.parametrize("body", [
    "{", "not json", "", "null", "[]", json.dumps([ANN]), '"a string"', "42",
    b"\xff\xfe{}",
    json.dumps({**ANN, "name": "Ann \ud800"}),   # half a surrogate pair: not text any database can hold
])
def test_it_refuses_a_request_it_cannot_read(db: Any, body: str | bytes) -> None:
    response = signup_raw(body)

    assert response.status_code == 400, response.content
    assert response.json() == {"code": "malformed_request", "message": site_messages.MALFORMED_REQUEST.text}
    assert_nothing_written()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_it_refuses_a_body_not_sent_as_json(db: Any, content_type: str) -> None:
    response = Client().generic("POST", "/api/signup", json.dumps(ANN), content_type=content_type)

    assert response.status_code == 415, response.content
    assert response.json() == {"code": "unsupported_media_type", "message": site_messages.UNSUPPORTED_MEDIA_TYPE.text}
    assert_nothing_written()


def test_it_reads_json_declared_with_a_charset(db: Any) -> None:
    response = Client().post("/api/signup", json.dumps(ANN), content_type="application/json; charset=utf-8")

    assert response.status_code == 201, response.content


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("get", "/api/signup", 405, "method_not_allowed"),
    ("put", "/api/login", 405, "method_not_allowed"),
    ("post", "/api/signup/", 404, "not_found"),
    ("get", "/api/no-such-thing", 404, "not_found"),
])
def test_it_answers_a_wrong_path_or_method_in_the_api_error_shape(
        db: Any, method: str, path: str, status: int, code: str) -> None:
    response = getattr(Client(), method)(path)

    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == code
    assert response.json()["message"]


def test_it_refuses_a_body_over_the_size_limit(db: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = signup(**{**ANN, "company": "x" * 4096})

    assert response.status_code == 400, response.content
    assert response.json() == {"code": "body_too_large", "message": site_messages.BODY_TOO_LARGE.text}
    assert_nothing_written()


def test_it_refuses_a_body_over_the_configured_default_limit(db: Any) -> None:
    response = signup_raw(json.dumps({**ANN, "padding": "x" * (64 * 1024)}))

    assert response.status_code == 400
    assert response.json()["code"] == "body_too_large"
    assert_nothing_written()


@pytest.mark.parametrize("field", ["name", "company"])
def test_it_refuses_control_characters_against_their_field(db: Any, field: str) -> None:
    assert_invalid(signup(**{**ANN, field: "Acme\x00 Corp"}), field)


@pytest.mark.parametrize("field", ["name", "company"])
def test_it_asks_for_a_visible_name_instead_of_only_invisible_characters(db: Any, field: str) -> None:
    fields = assert_invalid(signup(**{**ANN, field: "\u200b\u200d"}), field)

    assert fields[field] == messages.FIELD_ERRORS[f"{field}_required"]


def test_it_refuses_a_direction_override_that_makes_a_name_read_otherwise(db: Any) -> None:
    assert_invalid(signup(**{**ANN, "company": "Acme\u202egnp.exe"}), "company")


def test_it_keeps_a_joiner_inside_a_name_written_with_one(db: Any) -> None:
    response = signup(**{**ANN, "name": "\u0915\u094d\u200d\u0937 Lee"})

    assert response.status_code == 201
    assert Account.objects.get().name == "\u0915\u094d\u200d\u0937 Lee"


def test_it_does_not_count_refused_input_against_the_rate_limit(db: Any) -> None:
    signup(**{**ANN, "email": "broken"})
    assert Counter.objects.count() == 0


def test_it_signs_up_an_address_of_exactly_254_characters(engine_db: str) -> None:
    email = long_email(254)
    response = signup(**{**ANN, "email": email})

    assert response.status_code == 201, response.content
    assert Account.objects.get().email == email


def test_it_refuses_an_address_whose_case_folded_form_is_too_long(db: Any) -> None:
    # "ß" case-folds to "ss": the address is 250 characters, the identity key it would be stored under 430.
    email = "a" * 64 + "@" + ".".join(["\u00df" * 60] * 3) + ".de"
    assert len(email) == 250

    fields = assert_invalid(signup(**{**ANN, "email": email}), "email")
    assert fields["email"] == messages.FIELD_ERRORS["email_too_long"]
