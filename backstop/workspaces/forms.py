"""The notes form carries what was typed; the rules live in notes.py."""

from django import forms
from django.core.validators import ProhibitNullCharactersValidator


class Typed(forms.CharField):
    """Text as typed: notes.py refuses control characters against the field (Django's NUL check would not say)."""

    def __init__(self, *, strip: bool = False, max_length: int | None = None) -> None:
        super().__init__(required=False, strip=strip, max_length=max_length)
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]


class NoteForm(forms.Form):
    title = Typed()
    body = Typed()
    key = Typed(strip=True, max_length=80)
    version = forms.IntegerField(required=False, min_value=0)
