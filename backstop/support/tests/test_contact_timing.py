"""Writing to support over real HTTP: the answer takes as long and says the same whatever the address, strangers
cannot lock the owner out of the form, and a stranger's contacts email the owner once a day at most."""

from __future__ import annotations

from typing import Any

import httpx

from backstop.lib.tests.timing import compare
from backstop.support import messages
from conftest import Database, SmtpSink, wait_for

PASSWORD = "correct horse battery"


def _signup(http: httpx.Client, email: str, name: str = "Ann Lee") -> httpx.Response:
    answer = http.post("/api/signup", json={"name": name, "email": email, "phone": "+1 415 555 0100",
                                            "company": "Acme", "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return answer


def _state(database: Database, email: str) -> str:
    return str(database.scalar("SELECT state FROM accounts_account WHERE email = ?", (email,)))


def _contact(http: httpx.Client, email: str, text: str = "Is my account ok?") -> httpx.Response:
    return http.post("/api/support/contact", json={"email": email, "message": text})


def _public_shape(answer: httpx.Response) -> tuple[int, str]:
    body = answer.json()
    return answer.status_code, body["message"].replace(body["reference"], "REF")


def test_it_answers_a_contact_in_the_same_time_and_words_whatever_the_address(
    server_factory: Any, server_database: Database, smtp_sink: SmtpSink,
) -> None:
    # Limits counted as in production, but high enough for 160 contacts from one test address.
    # The look-up watches a retried setup for half a second (not 5): the test waits for each answer between requests.
    # The breaker never opens, as when a provider hangs before enough calls failed: a look-up in the request would
    # retry the setup and watch it.
    server = server_factory(BACKSTOP_FAULTS="workspace=error", BACKSTOP_SETUP_MAX_ATTEMPTS="3",
                            BACKSTOP_RATE_LIMIT_SCALE="100", BACKSTOP_SUPPORT_CONTACT_WAIT_SECONDS="0.5",
                            BACKSTOP_BREAKER_THRESHOLD="100000").start()
    with httpx.Client(base_url=server.url, timeout=60) as owner:
        _signup(owner, "stuck@example.com")
    wait_for(lambda: _state(server_database, "stuck@example.com") == "needs_attention", timeout=60,
             message="the account did not get stuck")
    # Now the provider hangs (each call times out): a second owner's setup is running against it.
    httpx.post(f"{server.url}/demo/api/faults", json={"workspace": "timeout"}).raise_for_status()
    with httpx.Client(base_url=server.url, timeout=60) as owner:
        _signup(owner, "hanging@example.com")

    stranger = httpx.Client(base_url=server.url, timeout=60)
    _contact(stranger, "warm-up@example.com")  # the first request of a process loads code: not part of the measure

    def answered(answer: httpx.Response) -> None:
        # Its workflow, and the delivery of what it sent, are over before the next request.
        wait_for(lambda: server_database.scalar("SELECT finding FROM support_contact WHERE our_reference = ?",
                                                (answer.json()["reference"],))
                 and server_database.scalar("SELECT COUNT(*) FROM notify_message WHERE kind = 'support_ack' AND "
                                            "status NOT IN ('sent', 'failed')") == 0, timeout=30, interval=0.02)

    for known in ("hanging@example.com", "stuck@example.com"):
        def to_known(i: int, known: str = known) -> httpx.Response:
            return _contact(stranger, known)

        def to_nobody(i: int, known: str = known) -> httpx.Response:
            return _contact(stranger, f"nobody-{known[:5]}-{i}@example.com")

        agree, described, rounds = compare(to_known, to_nobody, settle=answered)
        assert agree, f"{known} against unknown addresses: {described}"
        for with_account, without in (pair for comparison in rounds for pair in comparison.answers):
            assert _public_shape(with_account) == _public_shape(without) == (
                202, messages.CONTACT_PUBLIC.format(reference="REF"))
    stranger.close()

    # The look-ups ran after the answers: every contact was answered by its workflow, and each address was emailed
    # once for the forty contacts strangers sent about it.
    wait_for(lambda: server_database.scalar("SELECT COUNT(*) FROM support_contact WHERE answered_at IS NULL") == 0,
             timeout=120, message="contacts were left unanswered")
    wait_for(lambda: len(smtp_sink.to("stuck@example.com")) >= 1 and len(smtp_sink.to("hanging@example.com")) >= 1,
             timeout=60, message="no acknowledgement reached the owners")
    assert len([m for m in smtp_sink.to("stuck@example.com") if "got your message" in str(m["Subject"])]) == 1
    assert len([m for m in smtp_sink.to("hanging@example.com") if "got your message" in str(m["Subject"])]) == 1


def test_it_never_lets_strangers_block_the_signed_in_owner_and_emails_the_owner_once_a_day(
    server_factory: Any, server_database: Database, smtp_sink: SmtpSink,
) -> None:
    server = server_factory().start()
    owner = httpx.Client(base_url=server.url, timeout=60)
    _signup(owner, "ann@example.com")
    wait_for(lambda: _state(server_database, "ann@example.com") == "active", timeout=60,
             message="the owner's setup did not finish")

    stranger = httpx.Client(base_url=server.url, timeout=60)
    answers = [_contact(stranger, "ann@example.com", f"hello {i}").status_code for i in range(21)]
    assert answers == [202] * 20 + [429]  # the stranger is slowed where they write from

    mine = _contact(owner, "ann@example.com", "Where do I find my invoices?")
    assert mine.status_code == 202, mine.text
    # The owner waited for the look-up and sees what we found, not the stranger's sentence.
    assert not mine.json()["message"].startswith("Hello")  # the page's short answer, not the email's body
    assert "it is active and we don't see anything wrong" in mine.json()["message"]

    wait_for(lambda: server_database.scalar("SELECT COUNT(*) FROM support_contact WHERE answered_at IS NULL") == 0,
             timeout=60, message="contacts were left unanswered")
    acks = wait_for(lambda: [m for m in smtp_sink.to("ann@example.com") if "got your message" in str(m["Subject"])]
                    if len([m for m in smtp_sink.to("ann@example.com")
                            if "got your message" in str(m["Subject"])]) >= 2 else None,
                    timeout=60, message="the owner's acknowledgements did not arrive")
    # One for the twenty strangers' contacts, one for the owner's own; every contact still reached the case.
    assert len(acks) == 2
    assert server_database.scalar("SELECT COUNT(*) FROM support_contact WHERE customer_key = 'ann@example.com'") == 21
    assert server_database.scalar(
        "SELECT COUNT(*) FROM support_signal WHERE kind = 'contact' AND cleared_at IS NULL") >= 19
    owner.close()
    stranger.close()
