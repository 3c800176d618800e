"""A forged session cookie with a NUL in it (``"\\000..."``, unquoted by Django's cookie parser) is nobody's session,
on every page and on a draft save: not a 500 from PostgreSQL, which refuses the NUL in the session lookup."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from backstop.drafts.models import Draft


@pytest.mark.django_db
def test_it_treats_a_session_cookie_with_a_nul_as_nobody() -> None:
    for forged in ('"\\000abcdefghijklmnop"', '"abcdefghijklmnop\\000"'):
        client = Client()
        client.cookies.load(f"sessionid={forged}")
        assert "\x00" in client.cookies["sessionid"].value

        page = client.get("/support/contact")
        assert page.status_code == 200
        saved = client.put("/api/drafts/contact", json.dumps({
            "fields": {"body": "hello"}, "base_version": 0, "save_id": str(uuid.uuid4())}),
            content_type="application/json", headers={"X-CSRFToken": client.cookies["csrftoken"].value})
        assert saved.status_code == 200
        assert client.get("/app").status_code == 302  # to the sign-in page: nobody is signed in
    assert {draft.owner.split(":")[0] for draft in Draft.objects.all()} == {"anon"}
