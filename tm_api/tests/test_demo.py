import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from plumbing.devserver import free_port
from tm_api import services
from tm_api import status as S
from tm_api.management.commands.demo_machines import MACHINES, master_tree
from tm_api.models import Machine, Run, Test

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_demo_machines_once_in_process_fills_every_machine(capsys):
    call_command("demo_machines", "--once", "--in-process")
    assert Machine.objects.count() == 3
    assert not Test.objects.filter(status__in=S.ONGOING).exists()
    assert Test.objects.count() == 30
    for machine in Machine.objects.select_related("last_run__master_scenario"):
        assert machine.status in S.FINISHED
    assert "through service functions" in capsys.readouterr().out


def test_demo_machines_over_http(server_factory, capsys):
    server = server_factory(TM_ALLOW_ANONYMOUS_MACHINES="True")
    call_command("demo_machines", "--once", "--url", server.url, "--machines", "1")
    assert "through the HTTP API" in capsys.readouterr().out
    assert Machine.objects.get().machine_name == "rack-01 lamp"
    assert Test.objects.filter(status__in=S.FINISHED).count() == 10


def test_demo_machines_are_reused_and_reset_alone(capsys):
    services.record_dry_run("my rig", timezone.now(), master_tree())  # a machine of the lab
    call_command("demo_machines", "--once", "--in-process")
    call_command("demo_machines", "--once", "--in-process")
    assert Machine.objects.count() == 4
    assert Run.objects.filter(machine__machine_name__in=MACHINES).count() == 6
    call_command("demo_machines", "--once", "--in-process", "--reset")
    assert "reset: deleted 3 demo machines and 6 runs" in capsys.readouterr().out
    assert Run.objects.filter(machine__machine_name__in=MACHINES).count() == 3
    assert Run.objects.filter(machine__machine_name="my rig").count() == 1


def test_demo_machines_without_a_server_say_so_in_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CommandError) as raised:
        call_command("demo_machines", "--once", "--url", url)
    assert str(raised.value) == (
        f"the server at {url} is not reachable (connection refused); start it with `make run`")
    assert not Machine.objects.exists()


def test_demo_machines_without_a_token_where_one_is_needed_say_so(server_factory):
    server = server_factory()  # DEBUG off: machines need a token
    with pytest.raises(CommandError, match=r"answered 401 to /tm_api/dry_run/: .+; pass a "
                                           r"machine token with --token"):
        call_command("demo_machines", "--once", "--url", server.url, "--machines", "1")
