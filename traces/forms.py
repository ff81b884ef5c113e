from datetime import UTC

from django import forms

from plumbing import time_range
from traces.assembly import COMPLETE, INCONSISTENT, OPEN

MAX_DURATION = 10**20  # timestamps are below 1e20 (traces/messages.py), so are durations


class ReceivedField(forms.DateTimeField):
    """A received-time filter in the accepted range (plumbing.time_range), sent to the
    database in UTC: PostgreSQL knows no zone offset beyond 15:59 (+20:23 was a 500)."""

    def clean(self, value):
        moment = super().clean(value)
        if moment is None:
            return None
        if not time_range.accepted(moment):
            raise forms.ValidationError(f"must be {time_range.RANGE}")
        return moment.astimezone(UTC)


class TraceFilterForm(forms.Form):
    """The trace list's filters, for the page and the REST list alike."""

    # The page labels the time filters "Received since/until": a URL written after the labels
    # filters the same (and shows the same errors) instead of being ignored.
    ALIASES = {"received_since": "since", "received_until": "until"}

    name = forms.CharField(required=False, max_length=255, label="Span name",
                           help_text="Traces with a span of exactly this name.")
    service = forms.CharField(required=False, max_length=255)
    operation = forms.CharField(required=False, max_length=255,
                                help_text="Traces with a span of exactly this name.")
    error = forms.NullBooleanField(required=False, label="Errors", widget=forms.Select(
        choices=[("", "any"), ("true", "with errors"), ("false", "without errors")]),
        help_text="true: traces with a span in error; false: without.")
    status = forms.ChoiceField(required=False, choices=[
        ("", "any"), (OPEN, "open"), (COMPLETE, "complete"), (INCONSISTENT, "inconsistent"),
    ])
    # Bounded like the stored durations (a float): PostgreSQL refuses to compare with
    # 9e999999999 or 1e-999999999 at all, which was a 500. Text inputs, not type=number: a
    # browser shows nothing for a value it cannot read as a number, so the person would not see
    # what they typed beside the error.
    min_duration = forms.DecimalField(required=False, min_value=0, max_value=MAX_DURATION,
                                      decimal_places=9, label="Min duration",
                                      help_text="Whole trace, in the trace's own unit.",
                                      widget=forms.TextInput(attrs={"inputmode": "decimal"}))
    max_duration = forms.DecimalField(required=False, min_value=0, max_value=MAX_DURATION,
                                      decimal_places=9, label="Max duration",
                                      widget=forms.TextInput(attrs={"inputmode": "decimal"}))
    since = ReceivedField(required=False, label="Received since",
                          help_text="Received at or after (ISO time).")
    until = ReceivedField(required=False, label="Received until",
                          help_text="Received before (ISO time).")

    def __init__(self, data=None, *args, **kwargs):
        if data is not None and any(alias in data for alias in self.ALIASES):
            data = data.copy()  # a QueryDict: .get() below keeps its last value, as forms do
            for alias, field in self.ALIASES.items():
                if alias in data and field not in data:
                    data[field] = data.get(alias)
        super().__init__(data, *args, **kwargs)

    def clean(self):
        data = super().clean()
        low, high = data.get("min_duration"), data.get("max_duration")
        if low is not None and high is not None and low > high:
            self.add_error("max_duration", "must not be less than min_duration")
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "must not be before since")
        return data
