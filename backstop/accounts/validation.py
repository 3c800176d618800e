"""Input rules shared by the JSON API and the HTML forms; each problem is reported against its field."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import phonenumbers
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from backstop.accounts.messages import FIELD_ERRORS
from backstop.accounts.models import Account
from backstop.lib.email_identity import email_key, normalise_email
from backstop.lib.errors import InvalidInput

MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 150
MAX_PASSWORD_LENGTH = 1024
# Unicode's explicit direction embeddings, overrides and isolates.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Numbers an SMS sign-in code would never reach (where a country's numbering tells landlines from mobiles at all).
CANNOT_TAKE_SMS = {
    phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.PREMIUM_RATE, phonenumbers.PhoneNumberType.SHARED_COST,
    phonenumbers.PhoneNumberType.UAN, phonenumbers.PhoneNumberType.VOICEMAIL,
}


def normalise_text(value: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", value).split())


def normalise_password(value: str) -> str:
    """NFKC, at signup, sign-in and reset alike: one password, whichever form the keyboard sends it in."""
    return unicodedata.normalize("NFKC", value)


def clean_email(value: str, errors: dict[str, str]) -> str:
    email = normalise_email(value)
    if not email:
        errors["email"] = FIELD_ERRORS["email_required"]
    elif len(email) > MAX_EMAIL_LENGTH or len(email_key(email)) > MAX_EMAIL_LENGTH:
        errors["email"] = FIELD_ERRORS["email_too_long"]
    else:
        try:
            validate_email(email)
        except ValidationError:
            local = email.rpartition("@")[0]
            # Django refuses letters beyond ASCII before the @ (few mail servers take them): say so, not "invalid".
            errors["email"] = FIELD_ERRORS["email_not_ascii" if local and not local.isascii() else "email_invalid"]
    return email


def clean_phone(value: str, errors: dict[str, str]) -> str:
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        errors["phone"] = FIELD_ERRORS["phone_required"]
        return ""
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else "US")
    except phonenumbers.NumberParseException:
        errors["phone"] = FIELD_ERRORS["phone_invalid"]
        return text
    if not phonenumbers.is_valid_number(number):
        errors["phone"] = FIELD_ERRORS["phone_invalid"]
        return text
    if phonenumbers.number_type(number) in CANNOT_TAKE_SMS:
        errors["phone"] = FIELD_ERRORS["phone_not_mobile"]
        return text
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def clean_required_text(field: str, value: str, errors: dict[str, str]) -> str:
    text = normalise_text(value)
    if not any(unicodedata.category(char)[0] in "LNPS" for char in text):
        # Nothing visible (a zero-width space alone would greet the person as "Hello ,").
        errors[field] = FIELD_ERRORS[f"{field}_required"]
    elif len(text) > MAX_NAME_LENGTH:
        errors[field] = FIELD_ERRORS["too_long"].format(limit=MAX_NAME_LENGTH)
    elif has_control_characters(text) or not BIDI_CONTROLS.isdisjoint(text):
        # A direction override makes a name read otherwise than it is written (on the support desk too).
        errors[field] = FIELD_ERRORS["control_characters"]
    return text


def has_control_characters(text: str, *, allowed: str = "") -> bool:
    """Control characters besides ``allowed``: a NUL or bell typed into a field is never meant, and PostgreSQL refuses
    NUL in text outright."""
    return any(unicodedata.category(char) == "Cc" and char not in allowed for char in text)


@dataclass(frozen=True)
class SignupData:
    name: str
    email: str
    phone: str
    company: str
    password: str

    @property
    def email_key(self) -> str:
        return email_key(self.email)


def clean_signup(*, name: str, email: str, phone: str, company: str, password: str) -> SignupData:
    errors: dict[str, str] = {}
    data = SignupData(
        name=clean_required_text("name", name, errors),
        email=clean_email(email, errors),
        phone=clean_phone(phone, errors),
        company=clean_required_text("company", company, errors),
        password=normalise_password(password),
    )
    clean_new_password(data.password, errors, name=data.name, email=data.email, company=data.company)
    if errors:
        raise InvalidInput(errors)
    return data


def clean_new_password(
    password: str, errors: dict[str, str], *, name: str = "", email: str = "", company: str = ""
) -> None:
    if len(password) > MAX_PASSWORD_LENGTH:
        errors["password"] = FIELD_ERRORS["too_long"].format(limit=MAX_PASSWORD_LENGTH)
        return

    # UserAttributeSimilarityValidator compares the password with these attributes of a would-be user
    # (an unsaved Account: the validator also reads the fields' verbose names to word its message).
    try:
        password_validation.validate_password(password, user=Account(name=name, email=email, company=company))
    except ValidationError as error:
        errors["password"] = " ".join(error.messages)
