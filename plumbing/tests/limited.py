"""Test helper: a real server with some limits of docs/limits.md on and the others off."""

import uuid

SECRET = {"SECRET_KEY": "limits-" + "x" * 50}


def limited_server(server_factory, **limits):
    """A server with the given limits; the others off, so that only these can answer. Its
    own Redis key prefix, so that buckets of other runs never count."""
    env = {"HTTP_MAX_BODY_BYTES": "0", "WEBSOCKET_MAX_FRAME_BYTES": "0",
           "WEBSOCKET_MESSAGES_PER_SECOND": "0", "WEBSOCKET_MAX_CONNECTIONS_PER_CLIENT": "0",
           "RATE_LIMIT_MACHINE_TOKEN": "0", "RATE_LIMIT_PROJECT_TOKEN": "0",
           "RATE_LIMIT_CLIENT": "0", "REDIS_PREFIX": f"limits-{uuid.uuid4().hex[:8]}",
           "TM_ALLOW_ANONYMOUS_MACHINES": "True", "DASHBOARDS_PUBLIC": "True", **SECRET}
    env.update({key: str(value) for key, value in limits.items()})
    return server_factory(**env)


def dry_run(name="machine #1", script=""):
    return {"machine_name": name, "timestamp": "2024-01-01 10:00:00",
            "master_scenario": {"file_path": "/m", "file_name": "master.py", "script": script,
                                "scenarios": [{"file_path": "/s", "file_name": "s.py",
                                               "script": "", "tests": []}]}}
