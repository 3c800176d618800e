"""HTML forms only carry what was typed; the rules live in validation.py and apply to the API too."""

from django import forms


class SignupForm(forms.Form):
    name = forms.CharField(required=False)
    email = forms.CharField(required=False)
    phone = forms.CharField(required=False)
    company = forms.CharField(required=False)
    password = forms.CharField(required=False, strip=False)


class LoginForm(forms.Form):
    email = forms.CharField(required=False)
    password = forms.CharField(required=False, strip=False)


class RecoverForm(forms.Form):
    email = forms.CharField(required=False)


class VerifyForm(forms.Form):
    email = forms.CharField(required=False)
    code = forms.CharField(required=False)
    new_password = forms.CharField(required=False, strip=False)
