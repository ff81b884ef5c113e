import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from channels.layers import get_channel_layer
from django.db import connection

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]


def test_healthz_ok_on_the_configured_services(client, settings):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert body["database"]["ok"] is True
    assert body["database"]["vendor"] == connection.vendor
    assert body["channel_layer"]["ok"] is True
    expected_layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[1]
    assert body["channel_layer"]["backend"] == expected_layer
    assert response["Cache-Control"].startswith("max-age=0")


def test_healthz_ok_on_redis(client, settings, redis_url):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": f"monitor-test-health-{os.getpid()}"},
        }
    }
    body = client.get("/healthz").json()
    assert body["channel_layer"] == {**body["channel_layer"], "ok": True,
                                     "backend": "RedisPubSubChannelLayer"}


def test_healthz_names_an_unreachable_channel_layer(client, settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["channel_layer"]
    assert body["channel_layer"]["ok"] is False and body["channel_layer"]["error"]
    assert body["database"]["ok"] is True


def test_healthz_names_an_unreachable_database():
    # A process of its own, configured as an operator would, with nothing listening on port 1.
    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/healthz');"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    env = {key: value for key, value in os.environ.items() if key not in ("DB_DEFAULT", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="trace_project.settings",
        DATABASE_URL="postgres://monitor@127.0.0.1:1/monitor",
        ALLOWED_HOSTS="testserver",
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503
    assert answer["body"]["failing"] == ["database"]
    error = answer["body"]["database"]["error"]
    assert "127.0.0.1" in error or "connection" in error.lower()  # refused, or the pool gave up
    assert answer["body"]["channel_layer"]["ok"] is True


async def test_channel_layer_round_trip_through_redis(redis_url):
    from channels_redis.pubsub import RedisPubSubChannelLayer

    # A prefix of this process's: Redis pub/sub channels are shared by all its databases, and
    # CI runs two suites at once on one Redis.
    layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix=f"monitor-test-roundtrip-{os.getpid()}")
    channel = await layer.new_channel()
    await layer.group_add("roundtrip", channel)
    await layer.group_send("roundtrip", {"type": "probe", "n": 1})
    assert await layer.receive(channel) == {"type": "probe", "n": 1}
    await layer.send(channel, {"type": "probe", "n": 2})
    assert (await layer.receive(channel))["n"] == 2
    await layer.group_discard("roundtrip", channel)
    await layer.flush()


async def test_configured_channel_layer_round_trip():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "probe", "payload": "x" * 1000})
    assert (await layer.receive(channel))["payload"] == "x" * 1000
