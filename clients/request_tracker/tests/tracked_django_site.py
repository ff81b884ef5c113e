"""A small Django site tracked by the middleware: settings, URLs and views in one module.

Run in its own process (the test suite's process already runs the Monitor's settings):
DJANGO_SETTINGS_MODULE=tracked_django_site.
"""

import asyncio
import json
import os

from django.http import HttpResponse, JsonResponse
from django.urls import path

SECRET_KEY = "tracked-site-test-key"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
DATABASES = {}
USE_TZ = True
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "monitor_request_tracker.django.RequestTrackerMiddleware",
]
RIGID_ANALYTICS = {
    "PROJECT_ID": os.environ["RA_PROJECT_ID"],
    "PROJECT_TOKEN": os.environ["RA_PROJECT_TOKEN"],
    "DEBUG_DISABLE_ANALYTICS": None,  # follows DEBUG (False here): tracking on
    "BACKEND_ENDPOINT": os.environ.get("RA_BACKEND_ENDPOINT", ""),
    "FLUSH_INTERVAL": 0.1,
    **json.loads(os.environ.get("RA_TEST_TUNING", "{}")),  # the outage tests' small queue
}


def home(request):
    return HttpResponse("hello")


async def slow_async(request):
    await asyncio.sleep(0.02)
    return JsonResponse({"async": True})


def broken(request):
    raise RuntimeError("boom")


def after(request):
    return HttpResponse("after")


def tracker_state(request):
    from tracked_app_server import state  # the outage tests serve this site with it

    return JsonResponse(state(request.GET.get("dump")))


def item(request, item_id):
    return JsonResponse({"id": item_id}, status=404 if item_id == 0 else 200)


urlpatterns = [
    path("", home, name="home"),
    path("items/<int:item_id>/", item, name="item"),
    path("async/", slow_async, name="slow-async"),
    path("broken/", broken, name="broken"),
    path("after/", after, name="after"),
    path("_tracker/", tracker_state, name="tracker-state"),
]
