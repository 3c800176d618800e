from __future__ import annotations

from django import forms

from backstop.incidents.models import IncidentState, Priority, Severity


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


class PostMortemForm(forms.Form):
    markdown = forms.CharField(max_length=100_000, strip=False)  # a Markdown file ends with its newline


class ActionItemForm(forms.Form):
    title = forms.CharField(max_length=300)
    owner = forms.IntegerField()
    priority = forms.ChoiceField(choices=Priority.choices)
    due = forms.DateField()
    estimate_hours = forms.IntegerField(min_value=1, max_value=1000)


class CapacityForm(forms.Form):
    people = forms.IntegerField(min_value=1, max_value=1000)
    hours_per_week = forms.IntegerField(min_value=1, max_value=80)


class AmendsForm(forms.Form):
    credit_days = forms.IntegerField(min_value=0, max_value=90, required=False)
    idempotency_key = forms.CharField(max_length=120)
