"""Password hashing: Django's Argon2, a bounded number of hashes at a time (each holds 100 MiB while it runs)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher, check_password, make_password

PASSWORD = "correct horse battery staple"


def test_it_stores_argon2_hashes_that_djangos_own_hasher_reads_and_the_other_way_round() -> None:
    ours = make_password(PASSWORD)
    djangos = Argon2PasswordHasher().encode(PASSWORD, Argon2PasswordHasher().salt())

    assert ours.startswith("argon2$argon2id$")
    assert Argon2PasswordHasher().verify(PASSWORD, ours)
    assert check_password(PASSWORD, djangos)
    assert not check_password(PASSWORD + "!", djangos)


class HashRecorder:
    """Stands in for the Argon2 work: records how many hashes run at the same moment."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def work(self) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1


@pytest.mark.parametrize("at_once", [1, 2, 3])
def test_it_runs_at_most_the_configured_number_of_hashes_at_once(settings: Any, monkeypatch: Any,
                                                                   at_once: int) -> None:
    settings.PASSWORD_HASHES_AT_ONCE = at_once
    stored = make_password(PASSWORD)  # a real hash, for sign-in to read its parameters from
    recorder = HashRecorder()

    def encode(self: Any, password: str, salt: str) -> str:
        recorder.work()
        return f"argon2$recorded${salt}"

    def verify(self: Any, password: str, encoded: str) -> bool:
        recorder.work()
        return True

    monkeypatch.setattr(Argon2PasswordHasher, "encode", encode)
    monkeypatch.setattr(Argon2PasswordHasher, "verify", verify)

    # Twelve web threads at once, signups and sign-ins mixed.
    with ThreadPoolExecutor(max_workers=12) as pool:
        signups = [pool.submit(make_password, PASSWORD) for _ in range(6)]
        sign_ins = [pool.submit(check_password, PASSWORD, stored) for _ in range(6)]
        results = [bool(call.result()) for call in signups] + [call.result() for call in sign_ins]

    assert recorder.most == at_once
    assert all(results)
