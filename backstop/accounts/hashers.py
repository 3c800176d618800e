"""Django's Argon2 hasher, a bounded number of hashes at a time per process.

Each Argon2 hash holds its memory cost (100 MiB with Django's parameters) while it runs and, with 8 lanes, already
keeps every core of a small machine busy. Without a bound, a burst of sign-ins or signups hashes once per web thread
at a time: 16 threads measured 1.6 GB of peak memory in one web process, and each hash took as long as all of them.
With the bound, the extra requests wait their turn in arrival order (``lib/turns.py``) and memory stays at a few
hashes' worth.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher

from backstop.lib.turns import Turns


@functools.cache
def _turns(at_once: int) -> Turns:
    # One line per configured size: a process has one, tests that change the setting get their own.
    return Turns(at_once)


class BoundedArgon2PasswordHasher(Argon2PasswordHasher):
    """Same algorithm name and encoding as Django's: existing hashes verify, none is rewritten.

    The memory cost is a setting (Django's 100 MiB unless lowered for the test suite); a hash records its own
    parameters, so hashes made with another cost still verify and are upgraded at the next sign-in.
    """

    @property
    def memory_cost(self) -> int:  # type: ignore[override]
        return int(settings.PASSWORD_ARGON2_MEMORY_KIB)

    def encode(self, password: str, salt: str) -> str:
        with _turns(settings.PASSWORD_HASHES_AT_ONCE):
            return super().encode(password, salt)

    def verify(self, password: str, encoded: str) -> bool:
        with _turns(settings.PASSWORD_HASHES_AT_ONCE):
            return super().verify(password, encoded)
