"""Pages with Django's client: access, content, empty states, the seed's paths, the script
modal's highlighted HTML."""

import pytest

from tm_api.models import Machine, Run, Test
from tm_api.templatetags.tm_format import human_duration
from tm_api.tests.conftest import SEED_DRY_RUN

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def machine(machines):
    machines.dry_run(SEED_DRY_RUN)
    machines.start(file_path="/PycharmProjects/system", file_name="01_01_test_lamp.py")
    return Machine.objects.get()


def test_pages_need_login_unless_public(client, machine, settings):
    settings.DASHBOARDS_PUBLIC = False
    run = Run.objects.get()
    for path in ["/machines/", f"/machines/{machine.pk}/", f"/machines/{machine.pk}/last/",
                 f"/machines/runs/{run.pk}/", f"/machines/script/test/{Test.objects.first().pk}/"]:
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), path


def test_machine_list(reader, machine):
    html = reader.get("/machines/").content.decode()
    assert "machine #1" in html and 'data-machine-id="%d"' % machine.pk in html
    assert 'class="badge status-running"' in html and "tm-bar" in html
    assert "0/4" in html and '<option value="25"' in html


def test_empty_machine_list_explains_how_machines_appear(reader):
    html = reader.get("/machines/").content.decode()
    assert "No machines have reported yet." in html and "demo_machines" in html


def test_machine_page_lists_runs(reader, machine):
    html = reader.get(f"/machines/{machine.pk}/").content.decode()
    assert f'data-run-id="{machine.last_run_id}"' in html
    assert f"/ws/machine/{machine.pk}/runs/" in html
    assert reader.get("/machines/999999/").status_code == 404


def test_last_run_page_embeds_the_last_data_body(reader, machine):
    html = reader.get(f"/machines/{machine.pk}/last/").content.decode()
    assert 'id="last-data"' in html and "01_02_test_lamp.py" in html
    assert f"/ws/machine/{machine.pk}/last/" in html


def test_run_page_shows_the_tree(reader, machine):
    html = reader.get(f"/machines/runs/{machine.last_run_id}/").content.decode()
    for name in ["scenario_master.py", "scenario_01_feature_lamp.py", "01_02_test_door.py"]:
        assert name in html
    assert "Follow it live" in html


def test_seed_page_paths_redirect(reader, machine):
    run = machine.last_run_id
    assert reader.get(f"/matchine/{machine.pk}")["Location"] == f"/machines/{machine.pk}/"
    assert reader.get(f"/machine/{machine.pk}/last")["Location"] == f"/machines/{machine.pk}/last/"
    assert reader.get(f"/machine/run_data/{run}")["Location"] == f"/machines/runs/{run}/"


def test_script_is_highlighted_on_the_server(reader, machine):
    test = Test.objects.get(file_name="01_02_test_lamp.py")
    html = reader.get(f"/machines/script/test/{test.pk}/").content.decode()
    assert 'class="highlight"' in html and '<span class="kn">from</span>' in html
    empty = Test.objects.get(file_name="01_01_test_door.py")
    assert "without a script" in reader.get(f"/machines/script/test/{empty.pk}/").content.decode()
    assert reader.get(f"/machines/script/nope/{test.pk}/").status_code == 404


@pytest.mark.parametrize("seconds, text", [(None, "—"), (2.5, "2.5 s"), (42, "42 s"),
                                           (184, "3 min 4 s"), (120, "2 min"),
                                           (3720, "1 h 2 min")])
def test_human_durations(seconds, text):
    assert human_duration(seconds) == text
