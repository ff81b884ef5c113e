"""Pages with Django's client: access, content, empty states, the old page paths, the script
modal's highlighted HTML."""

import json
import re

import pytest

from tm_api import status as S
from tm_api.models import Machine, Run, Test
from tm_api.templatetags.tm_format import FORMAT_TABLE, human_duration
from tm_api.tests.conftest import SEED_DRY_RUN, dry_run_payload, scenario

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
    assert "machine #1" in html and f'data-machine-id="{machine.pk}"' in html
    assert 'class="badge status-running"' in html and "tm-bar" in html
    assert "0/4" in html and '<option value="25"' in html


def test_every_page_with_live_rows_carries_the_format_table_tm_js_reads(reader, machine):
    # static/tm/tm.js has no status order or badge markup of its own: it reads this table.
    run = Run.objects.get()
    for path in ["/machines/", f"/machines/{machine.pk}/", f"/machines/{machine.pk}/last/",
                 f"/machines/runs/{run.pk}/"]:
        html = reader.get(path).content.decode()
        found = re.search(r'<script id="tm-format" type="application/json">(.*?)</script>', html)
        assert found and json.loads(found.group(1)) == FORMAT_TABLE, path
        assert html.index('id="tm-format"') < html.index("tm/tm.js"), path
    assert FORMAT_TABLE["priority"] == list(S.PRIORITY)
    assert set(FORMAT_TABLE["ongoing"]) == S.ONGOING


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


def _machine_names(html):
    return re.findall(r'<td><a href="/machines/\d+/">([^<]*)</a></td>', html)


def test_machine_list_sorts_by_name_status_and_start(reader, machines):
    for name, timestamp in (("bravo", "2024-01-02 10:00:00"), ("alpha", "2024-01-03 10:00:00"),
                            ("charlie", "2024-01-01 10:00:00")):
        machines.dry_run(dry_run_payload(name=name, timestamp=timestamp))
    machines.start(machine="alpha", file_path="/PycharmProjects/system",
                   file_name="01_01_test_lamp.py")
    assert _machine_names(reader.get("/machines/").content.decode()) == [
        "alpha", "bravo", "charlie"]
    assert _machine_names(reader.get("/machines/?sort=-machine").content.decode()) == [
        "charlie", "bravo", "alpha"]
    html = reader.get("/machines/?sort=-last_run").content.decode()
    assert _machine_names(html) == ["alpha", "bravo", "charlie"]
    assert 'aria-sort="descending"' in html and 'href="?sort=last_run"' in html
    assert 'data-sort="last_run"' in html  # the live script says when rows changed since
    assert _machine_names(reader.get("/machines/?sort=last_run").content.decode()) == [
        "charlie", "bravo", "alpha"]
    # running < waiting: alpha has a test started, the others wait; equal status keeps pk order
    assert _machine_names(reader.get("/machines/?sort=status").content.decode()) == [
        "alpha", "bravo", "charlie"]
    for unknown in ("colour", "-tokens__digest", "machine_name"):
        response = reader.get(f"/machines/?sort={unknown}")
        assert response.status_code == 200
        assert _machine_names(response.content.decode()) == ["alpha", "bravo", "charlie"]


def test_machine_list_sort_survives_pages_and_page_size(reader, machines):
    for index in range(12):
        machines.dry_run(dry_run_payload(name=f"m{index:02}"))
    html = reader.get("/machines/?sort=-machine").content.decode()
    assert _machine_names(html)[0] == "m11"
    assert 'href="?page=2&amp;page_size=10&amp;sort=-machine"' in html
    assert '<input type="hidden" name="sort" value="-machine">' in html
    assert _machine_names(reader.get("/machines/?sort=-machine&page=2").content.decode()) == [
        "m01", "m00"]


def test_an_invalid_page_size_is_said_beside_the_field(reader, machine):
    html = reader.get("/machines/?page_size=lots").content.decode()
    assert re.search(r'<select name="page_size"[^>]*>.*?</select><ul class="errorlist"><li>'
                     r"&#x27;lots&#x27; is not a page size; showing 10 per page", html, re.S)
    assert "machine #1" in html
    html = reader.get(f"/machines/{machine.pk}/?page_size=7").content.decode()
    assert "&#x27;7&#x27; is not a page size" in html
    assert "errorlist" not in reader.get("/machines/?page_size=25").content.decode()


def test_run_page_sorts_its_tests_in_one_list(reader, machines):
    machines.dry_run(dry_run_payload(scenarios=[
        scenario("s1.py", ("/t", "slow.py"), ("/t", "quick.py")),
        scenario("s2.py", ("/t", "middle.py"), ("/t", "never.py")),
    ]))
    for name, start, stop, status in (("slow.py", "10:00:00", "10:00:30", "passed"),
                                      ("quick.py", "10:00:30", "10:00:31", "failed"),
                                      ("middle.py", "10:00:31", "10:00:41", "passed")):
        machines.start(file_path="/t", file_name=name, timestamp_start=f"2024-01-01 {start}")
        machines.stop(file_path="/t", file_name=name, status=status,
                      timestamp_stop=f"2024-01-01 {stop}")
    run = Run.objects.get()
    tests = lambda html: re.findall(r'<td class="test tm-file">([^<]*)<small>', html)
    html = reader.get(f"/machines/runs/{run.pk}/").content.decode()
    assert 'class="tm-tree"' in html and tests(html) == ["slow.py", "quick.py", "middle.py",
                                                         "never.py"]
    assert 'href="?sort=-duration"' in html and 'href="?sort=status"' in html
    html = reader.get(f"/machines/runs/{run.pk}/?sort=-duration").content.decode()
    assert 'class="tm-tests"' in html and "sorted by duration" in html
    assert tests(html) == ["slow.py", "middle.py", "quick.py", "never.py"]  # not run: last
    assert re.search(r'aria-sort="descending"><a class="sort active" href="\?sort=duration"', html)
    html = reader.get(f"/machines/runs/{run.pk}/?sort=test").content.decode()
    assert tests(html) == ["middle.py", "never.py", "quick.py", "slow.py"]
    assert tests(reader.get(f"/machines/runs/{run.pk}/?sort=-started").content.decode()) == [
        "middle.py", "quick.py", "slow.py", "never.py"]
    html = reader.get(f"/machines/runs/{run.pk}/?sort=bogus").content.decode()
    assert 'class="tm-tree"' in html and tests(html)[0] == "slow.py"
