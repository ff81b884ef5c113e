import gzip
import json
import time

import pytest

from tracking.models import Project


@pytest.fixture
def project_and_token(db):
    return Project.create_with_token("Shop")


def seed_body(token, **overrides):
    """A body exactly as rigidanalytics-tracker 2.0.5 sends it (the legacy tracker)."""
    data = {
        "view_name": "home",
        "header_data": {"HTTP_HOST": "shop.example", "HTTP_USER_AGENT": "Mozilla/5.0 Test",
                        "HTTP_COOKIE": "sessionid=abc; csrftoken=def",
                        "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": ""},
        "full_url": "http://shop.example/cart/?item=3&page=2",
        "ra_session_id": "0f3c5d0e9a7b4c1d8e2f3a4b5c6d7e8f",
        "time_request_received_ns": time.time_ns() - 5_000_000_000,
        "processing_time_ns": 12_345_678,
        "response_data": {"status_code": 200, "cookies": {}},
    }
    data.update(overrides)
    return {"project_token": token, "event_type": "page_view", "ra_tracker_version": "v2.0.5",
            "event_data": data}


def batch_event(**overrides):
    event = {"time": time.time() - 2, "duration_ms": 8.5, "method": "get", "path": "/api/items/",
             "query": "page=2", "view": "items-list", "status": 200, "session_id": "s1",
             "user_agent": "curl/8", "client_ip": "203.0.113.9", "response_size": 512,
             "headers": {"Host": "shop.example", "Accept": "application/json"}}
    event.update(overrides)
    return event


def gzip_json(payload):
    return gzip.compress(json.dumps(payload).encode())
