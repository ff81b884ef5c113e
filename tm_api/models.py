"""Machines, their runs (the test-machine API's dry-run data) and the scripts of each run.

A run's scripts form a tree: one master scenario, its scenarios, their tests. Scenarios and the
master scenario store their status roll-up and per-status test counts; services move those in
the same transaction as the test row (tm_api.status.shift), so pages never scan tests.
"""

from django.db import models
from django.urls import reverse
from django.utils import timezone

from plumbing.times import exact
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
                   models.Index(fields=["commit"])]

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
    master_scenario = models.ForeignKey(
        MasterScenario, on_delete=models.CASCADE, related_name="tests"
    )
    machine = models.ForeignKey(Machine, on_delete=models.CASCADE, related_name="tests")
    position = models.PositiveIntegerField(help_text="order in the run's dry run")

    class Meta:
        ordering = ["master_scenario", "position"]
        indexes = [
            models.Index(fields=["machine", "file_name", "status"]),
            models.Index(fields=["master_scenario", "status"]),
        ]


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
    # The W3C trace id the test ran in (32 lowercase hex digits; the pytest plugin starts one
    # per test): the traces and tracked requests carrying it are the test's.
    trace_id = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001 - NULL: none

    class Meta:
        indexes = [models.Index(fields=["trace_id"], name="tm_result_trace",
                                condition=models.Q(trace_id__isnull=False))]

    def __str__(self):
        return f"{self.test_id}: {self.outcome}"

    @property
    def has_details(self) -> bool:
        return any((self.message, self.traceback, self.stdout, self.stderr, self.log))


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
