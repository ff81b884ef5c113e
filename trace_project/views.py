import asyncio

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from trace_project import health


def home(request):
    return render(request, "home.html")


@never_cache
async def healthz(request):
    database, channel_layer = await asyncio.gather(
        health.check_database(), health.check_channel_layer()
    )
    checks = {"database": database, "channel_layer": channel_layer}
    failing = [name for name, check in checks.items() if not check["ok"]]
    body = {"status": "ok" if not failing else "unavailable", "failing": failing, **checks}
    return JsonResponse(body, status=503 if failing else 200)
