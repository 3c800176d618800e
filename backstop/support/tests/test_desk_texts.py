"""What the desk shows of what we stored: escaped exactly once, so staff read "Seán O'Brien" and "Smith & Sons"."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password

from backstop.accounts import signup
from backstop.accounts.validation import clean_signup
from backstop.notify.models import Message
from backstop.support import contact
from backstop.support.models import Case
from backstop.support.tests.helpers import contacts_answered, desk_client, staff_account

pytestmark = pytest.mark.django_db


def test_it_stores_names_as_typed_and_the_desk_escapes_them_once() -> None:
    data = clean_signup(name="Seán O'Brien", email="sean@example.com", phone="+1 415 555 0100",
                        company="Smith & Sons", password="correct horse battery")
    signup._create_account(data, make_password(None))
    contact.receive_contact(email="sean@example.com", text="Did my welcome email go out?", ip="10.0.0.2")
    contacts_answered()  # its workflow joins the contact to the customer's case
    welcome = Message.objects.get(kind="welcome")

    assert welcome.subject == "Welcome to Backstop, Seán O'Brien: please confirm your email"
    assert "Hello Seán O'Brien," in welcome.text and "for Smith & Sons is created" in welcome.text
    assert "Hello Seán O&#x27;Brien," in welcome.html and "Smith &amp; Sons" in welcome.html
    page = desk_client(staff_account()).get(f"/desk/cases/{Case.objects.get().pk}").content.decode()
    assert "Welcome to Backstop, Seán O&#x27;Brien: please confirm your email" in page
    assert "Smith &amp; Sons" in page  # the customer panel
    assert "&amp;#x27;" not in page and "&amp;amp;" not in page
