import pytest
from django.core.management import call_command

from tm_api import status as S
from tm_api.models import Machine, Test

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
