"""The conditions that raise notifications. Each builds its message and key and calls
raise_notification(), which applies the cooldown per (rule, key)."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from notifications.models import Notification, Rule
from notifications.services import raise_notification
from plumbing.times import exact


def server_error(request, error) -> None:
    path = getattr(request, "path", "?")
    method = getattr(request, "method", "?")
    kind = type(error).__name__ if error else "Error"
    # The cooldown is per path, and anyone can choose the path (/tracking/<any uuid>): a total
    # rate keeps a client that finds one 500 from spamming every channel through many paths.
    window = timedelta(seconds=settings.NOTIFY_SERVER_ERROR_WINDOW_SECONDS)
    recent = Notification.objects.filter(rule=Rule.SERVER_ERROR,
                                         created_at__gte=timezone.now() - window)
    if recent.count() >= settings.NOTIFY_SERVER_ERROR_MAX:
        return
    raise_notification(
        Rule.SERVER_ERROR,
        key=f"{kind}:{method}:{path}",
        title=f"Server error: {kind} on {method} {path}",
        text=str(error)[:1000] if error else "",
        facts=[["Path", path], ["Method", method], ["Exception", kind]],
        link=f"{settings.SITE_URL}/admin/",
    )


FAILING = ("failed", "error")
MAX_LISTED_TESTS = 15


def _run_link(run) -> str:
    return settings.SITE_URL + run.get_absolute_url()


def run_finished(master) -> None:
    """A test run ended (nothing waiting or running) with failed or error tests."""
    counts = master.tests_statistics
    failing = {status: counts.get(status, 0) for status in FAILING}
    if not any(failing.values()):
        return
    run = master.run
    machine = run.machine.machine_name
    tests = list(
        master.tests.filter(status__in=FAILING).order_by("position")
        .values_list("file_path", "file_name", "status")[:MAX_LISTED_TESTS + 1]
    )
    listed = [f"{status.upper()}  {path}/{name}" for path, name, status in tests[:MAX_LISTED_TESTS]]
    if len(tests) > MAX_LISTED_TESTS:
        listed.append(f"… and {sum(failing.values()) - MAX_LISTED_TESTS} more")
    summary = ", ".join(f"{count} {status}" for status, count in failing.items() if count)
    raise_notification(
        Rule.RUN_FAILED,
        key=f"run:{run.pk}",
        title=f"{machine}: run {master.file_name} finished with {summary}",
        text="\n".join(listed),
        facts=[["Machine", machine], ["Run", master.file_name]]
        + [[status.capitalize(), count] for status, count in sorted(counts.items()) if count],
        link=_run_link(run),
        machine=machine,
    )


def machine_silent(master, quiet_since) -> None:
    """A machine stopped reporting during a run; its ongoing tests were marked unknown."""
    run = master.run
    machine = run.machine.machine_name
    raise_notification(
        Rule.MACHINE_SILENT,
        key=f"run:{run.pk}",
        title=f"{machine} went silent during run {master.file_name}",
        text=f"No report since {exact(quiet_since)}; its waiting and running tests are now "
             f"unknown.",
        facts=[["Machine", machine], ["Last report", exact(quiet_since)]],
        link=_run_link(run),
        machine=machine,
    )


def limits_crossed(stats: dict) -> list[tuple[str, str]]:
    """The limits (PROJECT_ALERT_ERROR_RATE, PROJECT_ALERT_P95_MS) a project's figures over a
    window are over, as (limit, description) pairs; none below PROJECT_ALERT_MIN_REQUESTS
    requests. The alert below and the home page's overview both ask this."""
    if stats["count"] < settings.PROJECT_ALERT_MIN_REQUESTS:
        return []
    crossed = []
    error_rate, p95 = stats["error_rate"], stats["p95_ms"]
    if error_rate > settings.PROJECT_ALERT_ERROR_RATE:
        crossed.append(("error_rate", f"error rate {error_rate:.1%} "
                                      f"(limit {settings.PROJECT_ALERT_ERROR_RATE:.1%})"))
    if p95 is not None and p95 > settings.PROJECT_ALERT_P95_MS:
        crossed.append(("p95", f"p95 latency {p95:.0f} ms "
                               f"(limit {settings.PROJECT_ALERT_P95_MS:.0f} ms)"))
    return crossed


def project_degraded(project, stats: dict, window_minutes: int) -> list[str]:
    """A tracked project over its error-rate or p95 limit during the last window. Returns the
    limits crossed (each has its own cooldown key, so a latency alert does not hide an
    error-rate one)."""
    crossed = limits_crossed(stats)
    error_rate, p95 = stats["error_rate"], stats["p95_ms"]
    for limit, description in crossed:
        raise_notification(
            Rule.PROJECT_DEGRADED,
            key=f"project:{project.public_id}:{limit}",
            title=f"{project.name}: {description} over the last {window_minutes} min",
            text=f"{stats['count']} requests in the window, {stats['server_errors']} with 5xx.",
            facts=[["Project", project.name], ["Requests", stats["count"]],
                   ["Error rate (5xx)", f"{error_rate:.1%}"],
                   ["p95", f"{p95:.0f} ms" if p95 is not None else "-"]],
            link=f"{settings.SITE_URL}/metrics/{project.public_id}/",
            project=str(project.public_id),
        )
    return [limit for limit, _ in crossed]


def daily_digest(day: str, lines: list[str], facts: list) -> None:
    raise_notification(
        Rule.DAILY_DIGEST, key=f"digest:{day}", title=f"Monitor digest for {day}",
        text="\n".join(lines), facts=facts, link=f"{settings.SITE_URL}/",
    )
