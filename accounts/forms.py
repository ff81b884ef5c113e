from django import forms

from accounts.models import ApiToken

EXPIRY_CHOICES = [("7", "in 7 days"), ("30", "in 30 days"), ("90", "in 90 days"),
                  ("365", "in a year"), ("", "never")]


class NewTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. “CI quarantine job”.",
                           error_messages={"required": "Give the token a name."},
                           widget=forms.TextInput(attrs={"autocomplete": "off"}))
    scope = forms.ChoiceField(
        choices=ApiToken.SCOPES, initial=ApiToken.READ,
        help_text="Read: GET on every API this account may read. Read-write: also the API's "
                  "writes this account may make (today: deleting a trace).")
    expires = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="90", required=False,
                                label="Expires")

    def expires_in_days(self) -> int | None:
        value = self.cleaned_data.get("expires")
        return int(value) if value else None
