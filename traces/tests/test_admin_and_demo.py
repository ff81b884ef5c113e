import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from traces.management.commands.send_demo_traces import DEMO_SPACING_SECONDS
from traces.models import Trace
from traces.tests.helpers import README_EXAMPLE, store_trace

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_demo_command_fills_a_fresh_install_and_can_run_again():
    out = io.StringIO()
    call_command("send_demo_traces", "--count", "6", "--seed", "1", stdout=out)
    assert "Stored 6 demo traces (1..6)" in out.getvalue()
    statuses = list(Trace.objects.order_by("id").values_list("status", flat=True))
    assert statuses == ["complete"] * 5 + ["open"]
    assert all(t.span_count >= 4 and t.name for t in Trace.objects.all())
    call_command("send_demo_traces", "--count", "2", stdout=io.StringIO())
    assert Trace.objects.count() == 8
    assert Trace.objects.filter(status="open").count() == 1  # one open at a time


def test_demo_traces_of_any_seed_are_stored_whole():
    # With --seed=17 the demo shuffled a TRACE_END into the first frame of its 17th trace: the trace
    # completed early and its second frame was refused, ending `demo` one run in eight.
    call_command("send_demo_traces", "--count", "20", "--seed", "17", stdout=io.StringIO())
    assert Trace.objects.count() == 20


def test_demo_tops_up_only_the_time_since_its_newest_trace_and_resets_its_own():
    store_trace(1, README_EXAMPLE)  # a program's trace
    call_command("send_demo_traces", "--count", "5", "--top-up", stdout=io.StringIO())
    assert Trace.objects.count() == 6
    out = io.StringIO()
    call_command("send_demo_traces", "--count", "5", "--top-up", stdout=out)
    assert "up to date" in out.getvalue() and Trace.objects.count() == 6
    # Three minutes later: about three more (one per DEMO_SPACING_SECONDS), not five.
    Trace.objects.exclude(id=1).update(created=timezone.now() - timedelta(minutes=3))
    call_command("send_demo_traces", "--count", "5", "--top-up", stdout=io.StringIO())
    assert Trace.objects.count() == 6 + 180 // DEMO_SPACING_SECONDS
    call_command("send_demo_traces", "--count", "2", "--reset", stdout=io.StringIO())
    assert Trace.objects.filter(id=1).exists() and Trace.objects.count() == 3


def test_admin_lists_and_searches_traces_by_span_name(admin_client):
    store_trace(1, README_EXAMPLE)
    store_trace(2, README_EXAMPLE[:2])
    response = admin_client.get("/admin/traces/trace/?q=movies_network_load")
    assert response.status_code == 200
    assert 'href="/admin/traces/trace/1/change/?' in response.content.decode()
    assert 'href="/admin/traces/trace/2/change/?' not in response.content.decode()
    assert admin_client.get("/admin/traces/trace/1/change/").status_code == 200
    assert admin_client.get("/admin/traces/span/?q=movies").status_code == 200
    assert admin_client.get("/admin/traces/trace/add/").status_code == 403
