"""HTML forms only carry what was typed; the rules live in validation.py and apply to the API too."""

from django import forms
from django.core.validators import ProhibitNullCharactersValidator


class Typed(forms.CharField):
    """A field's text as typed. Django's own refusal of NUL would make the form invalid without a word on the page;
    validation.py refuses it against the field, as it does for the API."""

    def __init__(self, *, strip: bool = True) -> None:
        super().__init__(required=False, strip=strip)
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]


class SignupForm(forms.Form):
    name = Typed()
    email = Typed()
    phone = Typed()
    company = Typed()
    password = Typed(strip=False)


class LoginForm(forms.Form):
    email = Typed()
    password = Typed(strip=False)


class RecoverForm(forms.Form):
    email = Typed()


class VerifyForm(forms.Form):
    email = Typed()
    code = Typed()
    new_password = Typed(strip=False)


class SignInLinkForm(forms.Form):
    new_password = Typed(strip=False)
