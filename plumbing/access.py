"""Who may look at dashboards: one rule for pages, REST reads and live sockets.

DASHBOARDS_PUBLIC=True opens reading to anonymous visitors; writing through the REST API always
needs a logged-in user (machines and trackers authenticate with their own tokens, per app).
"""

import functools

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from rest_framework.permissions import SAFE_METHODS, BasePermission


def may_view_dashboards(user) -> bool:
    return settings.DASHBOARDS_PUBLIC or bool(user is not None and user.is_authenticated)


class DashboardReader(BasePermission):
    """Reads follow DASHBOARDS_PUBLIC; anything else needs a logged-in user."""

    message = "Log in to see this (or set DASHBOARDS_PUBLIC=True to open dashboards)."

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS:
            return may_view_dashboards(request.user)
        return bool(request.user and request.user.is_authenticated)


def dashboard_page(view):
    """Page decorator: redirect to the login page unless the visitor may view dashboards."""

    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(request, *args, **kwargs):
            user = await request.auser()
            if not may_view_dashboards(user):
                return redirect_to_login(request.get_full_path())
            return await view(request, *args, **kwargs)

        return async_wrapper

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not may_view_dashboards(request.user):
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapper
