"""HTML forms only carry what was typed; the rules live in the services (contact, actions, replies) and apply to the
API too."""

import copy
from typing import Any

from django import forms

from backstop.accounts.forms import Typed
from backstop.support import messages
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


# What the case page's forms carry without showing it: a problem there is a page to reload, not a field to fix.
HIDDEN_FIELDS = frozenset({"action", "case_version", "idempotency_key"})


def form_problem(form: forms.Form) -> str:
    """The desk's forms answer with a redirect to the case page, whose inputs show no errors: what was wrong is said
    in words there, each problem named by the label of the input it is about."""
    if HIDDEN_FIELDS & set(form.errors):
        return messages.DESK_PAGE_OUT_OF_DATE
    action = STAFF_ACTIONS.get(str(form.data.get("action", "")))
    texts = action.text.inputs if action is not None else {}
    problems: list[str] = []
    for name, errors in form.errors.items():
        label = texts[name].label if name in texts else str(form.fields[name].label or form[name].label)
        problems.extend(messages.DESK_INPUT_PROBLEM.format(label=label, error=error) for error in errors)
    return messages.DESK_INPUT_INVALID.format(problems=" ".join(problems))


class NoteForm(forms.Form):
    idempotency_key = forms.CharField(max_length=80)
    body = forms.CharField(required=False, strip=False, label="Internal note")


class ReplyForm(forms.Form):
    idempotency_key = forms.CharField(max_length=80)
    # The version of the case the page showed: the same reply sent from two tabs of one page is one email.
    case_version = forms.IntegerField(required=False, min_value=0)
    subject = forms.CharField(required=False, max_length=300, label="Subject")
    body = forms.CharField(required=False, strip=False, label="Message")
    save_as = forms.CharField(required=False, max_length=100, label="Reply template name")
    # What of the conversation the page showed (support.presence.timeline_marker): a newer message asks first.
    seen_through = forms.CharField(required=False, max_length=40)
