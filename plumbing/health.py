"""/healthz: each check does real work against its service, within a deadline."""

import asyncio
import time
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

CHECK_TIMEOUT_SECONDS = 3.0


def _select_one():
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return connection.vendor
    finally:
        # This runs in a worker thread of its own; do not leave a connection behind in it.
        connection.close()


async def check_database() -> dict:
    return await _timed(sync_to_async(_select_one, thread_sensitive=False)(), "vendor")


async def _channel_layer_round_trip():
    layer = get_channel_layer()
    channel = await layer.new_channel("healthz.")
    try:
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "health.ping", "token": token})
        message = await layer.receive(channel)
        if message.get("token") != token:
            raise RuntimeError("received a different message than the one sent")
    finally:
        # The pub/sub layer keeps a channel's subscription until told otherwise: without this,
        # each probe would leave one behind (and redis-py would make them all again after
        # each reconnection).
        forget = getattr(layer, "forget_channel", None)
        if forget is not None:
            try:
                await forget(channel)
            except Exception:  # noqa: BLE001 - the check's own answer matters more
                pass
    return type(layer).__name__


async def check_channel_layer() -> dict:
    result = await _timed(_channel_layer_round_trip(), "backend")
    if not result["ok"]:
        result["error"] = f"{_channel_layer_name()}: {result['error']}"
    from plumbing.library_internals.channels_redis_pubsub import OUTAGE_COUNTS

    if OUTAGE_COUNTS:  # since this process started: frames lost to Redis outages, ...
        result["outages"] = dict(OUTAGE_COUNTS)
    return result


def _channel_layer_name() -> str:
    """'Redis at 127.0.0.1:6379' (never the password of the URL), or the backend's name."""
    from urllib.parse import urlsplit

    from django.conf import settings

    layer = settings.CHANNEL_LAYERS["default"]
    hosts = layer.get("CONFIG", {}).get("hosts") or []
    if hosts:
        host = hosts[0]
        address = host.get("address", "") if isinstance(host, dict) else host
        if isinstance(address, str) and address:
            parts = urlsplit(address)
            return f"Redis at {parts.hostname or parts.path}" + (
                f":{parts.port}" if parts.port else "")
    return layer["BACKEND"].rsplit(".", 1)[-1]


async def _timed(awaitable, label: str) -> dict:
    started = time.perf_counter()
    try:
        value = await asyncio.wait_for(awaitable, CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"}
    except Exception as error:  # noqa: BLE001 - any failure is the answer
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    return {"ok": True, label: value, "ms": elapsed_ms}


@never_cache
async def healthz(request):
    database, channel_layer = await asyncio.gather(check_database(), check_channel_layer())
    checks = {"database": database, "channel_layer": channel_layer}
    failing = [name for name, check in checks.items() if not check["ok"]]
    body = {"status": "ok" if not failing else "unavailable", "failing": failing, **checks}
    return JsonResponse(body, status=503 if failing else 200)
