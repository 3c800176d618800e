"""HTML forms only carry what was typed; the rules live in the services (contact, actions, replies) and apply to the
API too."""

from django import forms

from backstop.accounts.forms import Typed


class ContactForm(forms.Form):
    email = Typed()
    message = Typed()
    reference = Typed()


class ActionForm(forms.Form):
    action = forms.CharField()
    idempotency_key = forms.CharField(max_length=80)
    external_id = forms.CharField(required=False)
    target = forms.CharField(required=False)
    note = forms.CharField(required=False)
    payment_id = forms.CharField(required=False)
    reference = forms.CharField(required=False)
    reason = forms.CharField(required=False)
    days = forms.IntegerField(required=False, min_value=1, max_value=3650)


class ReplyForm(forms.Form):
    idempotency_key = forms.CharField(max_length=80)
    subject = forms.CharField(required=False, max_length=300)
    body = forms.CharField(required=False, strip=False)
    save_as = forms.CharField(required=False, max_length=100)
