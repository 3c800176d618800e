from __future__ import annotations

from django import forms

from backstop.incidents.models import IncidentState, Severity


class OpenIncidentForm(forms.Form):
    title = forms.CharField(max_length=200)
    capability = forms.CharField(max_length=40, required=False)
    severity = forms.TypedChoiceField(choices=Severity.choices, coerce=int, initial=Severity.SEV2)


class UpdateForm(forms.Form):
    body = forms.CharField(max_length=1000)
    state = forms.ChoiceField(choices=IncidentState.choices)
    idempotency_key = forms.CharField(max_length=120)


class SeverityForm(forms.Form):
    severity = forms.TypedChoiceField(choices=Severity.choices, coerce=int)
