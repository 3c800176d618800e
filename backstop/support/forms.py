"""HTML forms only carry what was typed; the rules live in the services (contact, actions, replies) and apply to the
API too."""

import copy
from typing import Any

from django import forms

from backstop.accounts.forms import Typed
from backstop.support.actions import STAFF_ACTIONS


class ContactForm(forms.Form):
    email = Typed()
    message = Typed()
    reference = Typed()
    submission_key = Typed()


class ActionForm(forms.Form):
    """The action's name, the version of the case the page showed (with the action, the click's intent), and the
    parameters its registry entry declares (nothing else is taken)."""

    action = forms.CharField()
    case_version = forms.IntegerField(min_value=0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        action = STAFF_ACTIONS.get(str(self.data.get("action", "")))
        for param in action.params if action is not None else ():
            self.fields[param.name] = copy.deepcopy(param.field)


class NoteForm(forms.Form):
    idempotency_key = forms.CharField(max_length=80)
    body = forms.CharField(required=False, strip=False)


class ReplyForm(forms.Form):
    idempotency_key = forms.CharField(max_length=80)
    # The version of the case the page showed: the same reply sent from two tabs of one page is one email.
    case_version = forms.IntegerField(required=False, min_value=0)
    subject = forms.CharField(required=False, max_length=300)
    body = forms.CharField(required=False, strip=False)
    save_as = forms.CharField(required=False, max_length=100)
