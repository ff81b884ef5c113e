"""Machines, their runs (the test-machine API's dry-run data) and the scripts of each run.

A run's scripts form a tree: one master scenario, its scenarios, their tests. Scenarios and the
master scenario store their status roll-up and per-status test counts; services move those in
the same transaction as the test row (tm_api.status.shift), so pages never scan tests.
"""

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from plumbing.times import exact
from tm_api import outcomes as O
from tm_api import status as S

STATUS_CHOICES = [(s, s) for s in S.PRIORITY]


def machine_key(name: str) -> str:
    """Machines are matched by name, case-insensitively (as the test-machine API always did)."""
    return name.casefold()


class Machine(models.Model):
    machine_name = models.CharField(max_length=256)
    name_key = models.CharField(max_length=256, unique=True, editable=False)
    # The run with the largest client timestamp; kept up to date by the dry-run service.
    last_run = models.ForeignKey(
        "Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["machine_name", "pk"]

    def __str__(self):
        return self.machine_name

    def save(self, *args, **kwargs):
        self.name_key = machine_key(self.machine_name)
        super().save(*args, **kwargs)

    @property
    def status(self) -> str:
        """Status of the last run; `not-available` before the first run. Needs last_run and its
        master_scenario selected to stay one query for a list."""
        if self.last_run_id is None:
            return S.NOT_AVAILABLE
        return self.last_run.master_scenario.status

    def get_absolute_url(self):
        return reverse("tm_api:machine", args=[self.pk])


class Script(models.Model):
    file_path = models.CharField(max_length=1024)
    file_name = models.CharField(max_length=256)
    script = models.TextField(blank=True, default="")
    status = models.CharField(max_length=9, choices=STATUS_CHOICES, default=S.WAITING)
    timestamp_start = models.DateTimeField(null=True, blank=True)
    timestamp_stop = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self):
        return self.file_name

    @property
    def duration(self) -> float | None:
        return S.duration_seconds(self.timestamp_start, self.timestamp_stop)


def _empty_counts():
    return S.empty_counts()


class RolledUp(Script):
    """A script whose status is the roll-up of its tests."""

    tests_statistics = models.JSONField(default=_empty_counts)
    tests_count = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True

    def apply(self, changes, when):
        """Move counts by (old, new) test status pairs; stamp start and stop times."""
        self.tests_statistics = S.shift(self.tests_statistics, changes)
        self.status = S.roll_up(self.tests_statistics)
        if any(new == S.RUNNING for _, new in changes) and self.timestamp_start is None:
            self.timestamp_start = when
        if not S.is_ongoing(self.tests_statistics):
            if self.timestamp_stop is None and self.timestamp_start is not None:
                self.timestamp_stop = when
        else:
            self.timestamp_stop = None


CI_FIELDS = ("commit", "branch", "build_url")


def ci_of(data) -> dict:
    """A run's CI fields from a report (absent ones empty)."""
    return {name: data.get(name) or "" for name in CI_FIELDS}


class Run(models.Model):
    """One dry run of a machine and everything its wet run reported since."""

    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="runs")
    timestamp = models.DateTimeField(help_text="the machine's own time of the dry run")
    received = models.DateTimeField(auto_now_add=True)

    # Where the run's code came from, as CI says it (optional; the pytest plugin and JUnit
    # imports fill them from the CI's environment variables).
    commit = models.CharField(max_length=100, blank=True, default="")
    branch = models.CharField(max_length=255, blank=True, default="")
    build_url = models.CharField(max_length=2048, blank=True, default="")

    class Meta:
        ordering = ["-timestamp", "-pk"]
        indexes = [models.Index(fields=["machine", "-timestamp", "-id"]),
                   models.Index(fields=["branch", "-timestamp"]),
                   models.Index(fields=["commit"]),
                   # The runs of the flaky-test window (tm_api.history).
                   models.Index(fields=["received"])]

    def __str__(self):
        return f"{self.machine} · {exact(self.timestamp)}"

    def get_absolute_url(self):
        return reverse("tm_api:run", args=[self.pk])


class MasterScenario(RolledUp):
    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="master_scenario")
    scenarios_count = models.PositiveIntegerField(default=0)
    # Server time of the machine's latest report about this run: silence is measured on it,
    # never on the machine's own clock.
    last_report = models.DateTimeField(default=timezone.now, db_index=True)
    # What the run's time left is computed from (tm_api.progress: the expected time of its
    # unfinished tests, its finished tests' time), moved by every report in the same UPDATE as
    # the roll-ups. Null for runs recorded before it was kept.
    progress = models.JSONField(null=True, blank=True, default=None, editable=False)


class Scenario(RolledUp):
    master_scenario = models.ForeignKey(
        MasterScenario, on_delete=models.CASCADE, related_name="scenarios"
    )
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["master_scenario", "position"]


class Test(Script):
    __test__ = False  # a model, not a pytest class
    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="tests")
    # Denormalised so start/stop find a test and lock its run in one indexed query.
    # Neither has an index of its own (db_index=False): the composite indexes of Meta lead with
    # each, and serve every lookup by it. A second index was one more entry to write per test at
    # every dry run, start and stop, and, while a growing table had no statistics yet,
    # PostgreSQL took machine_id's alone to find a batch's tests: it read every test the machine
    # ever ran (23 ms against 2.5 for a batch of 250 reports on 51 runs of 2,000 tests).
    master_scenario = models.ForeignKey(
        MasterScenario, on_delete=models.CASCADE, related_name="tests", db_index=False
    )
    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="tests",
                                db_index=False)
    position = models.PositiveIntegerField(help_text="order in the run's dry run")
    # The digest of the test's identity (tm_api.outcomes.identity: its file_path and file_name
    # as one name), the same in every run: what history, flaky tests and comparisons match on.
    identity_key = models.CharField(max_length=32, default="", editable=False)
    # How long it is expected to take (ms), from its recent durations when the dry run was
    # recorded (tm_api.progress.expected_of); null: never timed before.
    expected_ms = models.PositiveIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["master_scenario", "position"]
        indexes = [
            models.Index(fields=["machine", "file_name", "status"]),
            models.Index(fields=["master_scenario", "status"]),
            # A test's history, newest first, is an index range scan.
            models.Index(fields=["identity_key", "-id"], name="tm_api_test_identity_idx"),
            # ?name= with a test's name alone finds its identities.
            models.Index(fields=["file_name"], name="tm_api_test_file_name_idx"),
        ]

    @property
    def identity(self) -> str:
        return O.identity(self.file_path, self.file_name)


class TestResult(models.Model):
    """What a test's stop said beyond its status: the tool's outcome, its attempts and, for a
    failure, why. Beside the test, not in it: machines that send only a status (the
    test-machine API's first clients) never write one, and the hot start/stop path stays as
    narrow as it was."""

    __test__ = False
    test = models.OneToOneField(Test, primary_key=True, on_delete=models.CASCADE,
                                related_name="result")
    outcome = models.CharField(max_length=8, blank=True, default="",
                               help_text="passed, failed, error, skipped, xfailed or xpassed")
    # The outcome of each attempt, the last the test's own (more than one: it was retried).
    attempts = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    stdout = models.TextField(blank=True, default="")
    stderr = models.TextField(blank=True, default="")
    log = models.TextField(blank=True, default="")
    # Failed, then passed on a retry within the run (outcomes.is_flaky_attempts): flaky on
    # its own, found without reading every result's attempts.
    passed_on_retry = models.BooleanField(default=False)
    # The W3C trace id the test ran in (32 lowercase hex digits; the pytest plugin starts one
    # per test): the traces and tracked requests carrying it are the test's.
    trace_id = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001 - NULL: none

    class Meta:
        indexes = [models.Index(fields=["trace_id"], name="tm_result_trace",
                                condition=models.Q(trace_id__isnull=False)),
                   # The few tests that passed on a retry: a run's end looks its tests up among
                   # them (history.window_results) without reading every result.
                   models.Index(fields=["test"], name="tm_result_retried",
                                condition=models.Q(passed_on_retry=True))]

    def __str__(self):
        return f"{self.test_id}: {self.outcome}"

    @property
    def has_details(self) -> bool:
        return any((self.message, self.traceback, self.stdout, self.stderr, self.log))


class Quarantine(models.Model):
    """A test a person marked as known flaky (or broken) while it is being fixed: its
    failures are still recorded, and every page that shows the test says it is quarantined."""

    identity_key = models.CharField(max_length=32, unique=True, editable=False)
    # The test's identity as it was set (file_path and file_name of a run's test).
    file_path = models.CharField(max_length=1024, blank=True, default="")
    file_name = models.CharField(max_length=256)
    reason = models.CharField(max_length=1000, blank=True, default="")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                           on_delete=models.SET_NULL, related_name="+")
    by_name = models.CharField(max_length=150, blank=True, default="",
                               help_text="who set it (kept when the account is deleted)")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self):
        return self.identity

    @property
    def identity(self) -> str:
        return O.identity(self.file_path, self.file_name)


class MachineToken(models.Model):
    """A secret a machine sends as `Authorization: Token <token>`. Only its digest is stored.
    Without a machine it is a team token, good for every machine."""

    name = models.CharField(max_length=100, help_text="who holds it, e.g. 'lab rack 3'")
    machine = models.ForeignKey(
        Machine, null=True, blank=True, on_delete=models.CASCADE, related_name="tokens",
        help_text="empty: a team token, valid for every machine name",
    )
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=16, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self):
        return f"{self.name} ({self.hint})"

    def allows(self, machine_name: str) -> bool:
        return self.machine_id is None or self.machine.name_key == machine_key(machine_name)
