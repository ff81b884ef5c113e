"""`manage.py demo` against a real server: safe to run again, --reset starts over, and one line
when the server is not there or goes away."""

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from plumbing.devserver import free_port
from tm_api import services as tm_services
from tm_api.management.commands.demo_machines import MACHINES, master_tree
from tm_api.models import Machine, Run
from traces.management.commands.send_demo_traces import DEMO_GROUP_PREFIX
from traces.models import Trace
from traces.tests.helpers import README_EXAMPLE, store_trace
from tracking.models import Project, RequestMetric
from tracking.services import project_for_token

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


def demo(server, *arguments):
    """One bounded demo (--once) reporting to `server`; the project it printed."""
    out = io.StringIO()
    call_command("demo", "--url", server.url, "--once", *arguments, stdout=out,
                 stderr=io.StringIO())
    return json.loads(next(line for line in out.getvalue().splitlines()
                           if line.startswith('{"id"')))


def demo_data():
    return {
        "traces": Trace.objects.filter(group_id__startswith=DEMO_GROUP_PREFIX).count(),
        "requests": RequestMetric.objects.filter(project__name="Demo shop").count(),
        "machines": Machine.objects.filter(machine_name__in=MACHINES).count(),
        "runs": Run.objects.filter(machine__machine_name__in=MACHINES).count(),
    }


@pytest.fixture
def server(server_factory):
    return server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True")


def test_running_the_demo_again_keeps_its_project_token_and_machines(server):
    first = demo(server)
    filled = demo_data()
    assert filled == {"traces": 20, "requests": 15_000, "machines": 3, "runs": 3}
    assert str(project_for_token(first["token"]).public_id) == first["id"]

    assert demo(server) == first
    again = demo_data()
    assert Project.objects.filter(name="Demo shop").count() == 1
    assert project_for_token(first["token"]) is not None
    # Topped up: a run per machine more (that is the session), and only the traces and
    # requests of the seconds between the two runs (15,000 over 6 hours: about 0.7/s).
    assert again["machines"] == 3 and again["runs"] == 6
    assert again["traces"] - filled["traces"] <= 1
    assert again["requests"] - filled["requests"] < 300


def test_reset_deletes_the_demos_own_data_only_and_starts_over(server):
    store_trace(1, README_EXAMPLE)  # a program's trace, a user's project, a rig
    _, token = Project.create_with_token("Shop")
    tm_services.record_dry_run("my rig", timezone.now(), master_tree())
    first = demo(server)
    demo(server)

    reset = demo(server, "--reset")
    assert reset["token"] == first["token"] and reset["id"] != first["id"]
    assert demo_data() == {"traces": 20, "requests": 15_000, "machines": 3, "runs": 3}
    assert Trace.objects.filter(id=1).exists()
    assert project_for_token(token).name == "Shop"
    assert Run.objects.filter(machine__machine_name="my rig").count() == 1


def test_demo_without_a_server_stores_nothing_and_says_so(transactional_db):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CommandError) as raised:
        call_command("demo", "--url", url, stdout=io.StringIO())
    assert str(raised.value) == (
        f"the server at {url} is not reachable (connection refused); start it with `make run`")
    assert not Trace.objects.exists() and not Project.objects.exists()


def test_demo_says_in_one_line_that_the_server_went_away(server, database_env):
    env = {**os.environ, **database_env}
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--url", server.url],  # until Ctrl-C, as in README
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not Run.objects.filter(machine__machine_name__in=MACHINES).exists():
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.2)
        server.stop()
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 1
    assert "Traceback" not in err and "URLError" not in err
    gone = [line for line in err.splitlines() if "went away" in line]
    assert len(gone) == 1 and err.rstrip().endswith(gone[0])
    assert re.fullmatch(
        rf"CommandError: the server at {re.escape(server.url)} went away \((connection refused|"
        r"connection closed|connection reset by peer)\); start it with `make run`", gone[0])
