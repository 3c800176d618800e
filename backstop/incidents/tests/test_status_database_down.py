"""/status keeps answering while PostgreSQL refuses every connection to the main database: `backstop serve` with a
live incident, then the database closed to new connections and its open ones ended. The status page, its JSON, the
banner's script and its answer still answer, to a signed-in visitor too (whose session Django would have read), while
a page that needs the database fails: the proof that it is down."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import httpx
import psycopg
import pytest

from backstop.support.tests.test_desk_browser import STAFF, _create_staff
from conftest import ROOT

pytestmark = pytest.mark.skipif(not os.environ.get("DATABASE_URL"),
                                reason="PostgreSQL only; on SQLite test_status_page blocks the database in-process")


def _open_incident_by_hand(server: Any) -> None:
    code = ("from backstop.incidents import lifecycle\n"
            "from backstop.incidents.status_page import write_status_file\n"
            "lifecycle.open_incident(title='Sign-in is slow after a deploy', capability='sign_in')\n"
            "write_status_file()")
    subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", code], env={**os.environ, **server.env},
                   cwd=ROOT, check=True, capture_output=True, timeout=60)


def _signed_in(base_url: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=10)
    page = client.get("/login")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token
    answer = client.post("/login", headers={"Referer": f"{base_url}/login"}, data={
        "email": STAFF["email"], "password": STAFF["password"], "csrfmiddlewaretoken": token.group(1)})
    assert answer.status_code == 302 and "sessionid" in client.cookies
    return client


def test_it_answers_status_while_postgresql_refuses_the_main_database(server_factory: Any) -> None:
    server = server_factory()
    server.start()
    _create_staff(server)
    _open_incident_by_hand(server)
    visitor = _signed_in(server.url)
    name = server.database.url.rsplit("/", 1)[1]
    admin_url = server.database.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        try:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                          "AND pid <> pg_backend_pid()", (name,))
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(server.database.url).close()
            assert visitor.get("/desk").status_code == 500  # the database is really out of reach

            page = visitor.get("/status")
            assert page.status_code == 200
            assert "Some things are not working" in page.text and "Sign-in is slow after a deploy" in page.text
            anonymous = httpx.get(f"{server.url}/status.json", timeout=10)
            assert anonymous.status_code == 200 and anonymous.json()["live"][0]["capability"] == "sign_in"
            assert httpx.get(f"{server.url}/status/banner.js", timeout=10).status_code == 200
            # The banner's answer too (an incident opened by hand is for every visitor: nothing counts whom it hurts).
            banner = httpx.get(f"{server.url}/status/banner.json", headers={"X-Banner-Token": "0" * 32}, timeout=10)
            assert banner.status_code == 200 and banner.json()["live"][0]["capability"] == "sign_in"
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
