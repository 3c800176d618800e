from __future__ import annotations

from django.utils import timezone

from backstop.accounts.models import Account, AccountState
from backstop.lib.email_identity import email_key


def ensure_staff_account(*, email: str, password: str) -> Account:
    """Create (or reset the password of) a staff account for the demo."""
    account, _ = Account.objects.get_or_create(
        email_key=email_key(email),
        defaults={"email": email, "name": "Support", "company": "Backstop", "state": AccountState.ACTIVE,
                  "is_staff": True, "is_superuser": True, "email_verified_at": timezone.now(),
                  "activated_at": timezone.now()},
    )
    account.set_password(password)
    account.save(update_fields=["password"])
    return account
