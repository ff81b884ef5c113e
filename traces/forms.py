from django import forms

from traces.assembly import COMPLETE, INCONSISTENT, OPEN


class TraceFilterForm(forms.Form):
    """The trace list's filters, for the page and the REST list alike."""

    name = forms.CharField(required=False, max_length=255,
                           help_text="Traces with a span of exactly this name.")
    service = forms.CharField(required=False, max_length=255)
    status = forms.ChoiceField(required=False, choices=[
        ("", "any"), (OPEN, "open"), (COMPLETE, "complete"), (INCONSISTENT, "inconsistent"),
    ])
    min_duration = forms.DecimalField(required=False, min_value=0, label="Min duration",
                                      help_text="Whole trace, in the trace's own unit.")
    max_duration = forms.DecimalField(required=False, min_value=0, label="Max duration")
    since = forms.DateTimeField(required=False, help_text="Received at or after (ISO time).")
    until = forms.DateTimeField(required=False, help_text="Received before (ISO time).")

    def clean(self):
        data = super().clean()
        low, high = data.get("min_duration"), data.get("max_duration")
        if low is not None and high is not None and low > high:
            self.add_error("max_duration", "must not be less than min_duration")
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "must not be before since")
        return data
