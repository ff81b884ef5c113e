"""The request metrics' part of the home page's overview: projects over their limits now.

The window and the limits are the alert's (check_projects: PROJECT_ALERT_WINDOW_MINUTES, the
last whole minutes and the current one; PROJECT_ALERT_ERROR_RATE, PROJECT_ALERT_P95_MS,
PROJECT_ALERT_MIN_REQUESTS), so the page shows what the alert would say, read for every project
in one query.
"""

from datetime import timedelta

from django.conf import settings
from django.urls import reverse

from notifications.rules import limits_crossed
from tracking import services
from tracking.models import Project


def alert_window(now) -> services.Window:
    until = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return services.Window(until - timedelta(minutes=settings.PROJECT_ALERT_WINDOW_MINUTES), until)


def projects_over_limits(now) -> dict:
    window = alert_window(now)
    items = []
    for stats in services.window_totals(list(Project.objects.all()), window):
        crossed = limits_crossed(stats)
        if crossed:
            project = stats["project"]
            items.append({
                "project": project.name,
                "project_id": str(project.public_id),
                "limits": [description for _, description in crossed],
                "requests": stats["count"],
                "error_rate": stats["error_rate"],
                "p95_ms": stats["p95_ms"],
                "url": reverse("tracking:project", args=[project.public_id]),
            })
    return {"count": len(items), "items": items,
            "window_minutes": settings.PROJECT_ALERT_WINDOW_MINUTES}
