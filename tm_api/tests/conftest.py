import copy
import json
from collections import Counter

import pytest

from tm_api import status as S

# The test-machine API's documented example payloads, verbatim.
SEED_DRY_RUN = {
    "machine_name": "machine #1",
    "timestamp": "2018-12-30 13:01:57.461401",
    "master_scenario": {
        "file_path": "/virtual_testing_machine/src/test_cases/scenarios",
        "file_name": "scenario_master.py",
        "script": "import os\nfrom run import SCENARIOS_DIR",
        "scenarios": [
            {
                "file_path": "/virtual_testing_machine/src/test_cases/scenarios",
                "file_name": "scenario_01_feature_lamp.py",
                "script": "import os\nfrom run import TEST_CASES_DIR, run_test_case",
                "tests": [
                    {
                        "file_path": "/PycharmProjects/system",
                        "file_name": "01_01_test_lamp.py",
                        "script": "from time import sleep\n\n\nprint('Start 01_01_test_lamp.py')",
                    },
                    {
                        "file_path": "/virtual_testing_machine/src/test_cases/01_feature_lamp",
                        "file_name": "01_02_test_lamp.py",
                        "script": "from time import sleep\n\nsleep(2)\nRUN_DATA.last_status = 'warning'\n",
                    },
                ],
            },
            {
                "file_path": "/virtual_testing_machine/src/test_cases/scenarios",
                "file_name": "scenario_03_feature_trunk.py",
                "script": "import os\nfrom run import TEST_CASES_DIR, run_test_case\n",
                "tests": [
                    {
                        "file_path": "/virtual_testing_machine/src/test_cases/02_feature_door",
                        "file_name": "01_01_test_door.py",
                        "script": "",
                    },
                    {
                        "file_path": "/virtual_testing_machine/src/test_cases/02_feature_door",
                        "file_name": "01_02_test_door.py",
                        "script": "",
                    },
                ],
            },
        ],
    },
}
SEED_TEST_START = {
    "machine_name": "machine #1",
    "file_path": "/virtual_testing_machine/src/test_cases/01_feature_lamp",
    "file_name": "01_01_test_lamp.py",
    "timestamp_start": "2018-12-30 13:01:57.573828",
}
SEED_TEST_STOP = {
    "machine_name": "machine #1",
    "file_path": "/virtual_testing_machine/src/test_cases/01_feature_lamp",
    "file_name": "01_01_test_lamp.py",
    "status": "passed",
    "timestamp_stop": "2018-12-30 13:01:59.622177",
}
# The documented start/stop example names a file its dry-run example lists under another path; a
# run that really starts that file needs it in the dry run.
LAMP_1 = {"file_path": SEED_TEST_START["file_path"], "file_name": "01_01_test_lamp.py"}


def count_statuses(statuses) -> dict:
    """Counts of a run's or scenario's statuses made from scratch: what the counts the services
    keep (status.shift) must equal."""
    return {**S.empty_counts(), **Counter(statuses)}


def dry_run_payload(name="machine #1", timestamp="2018-12-30 13:01:57.461401", scenarios=None):
    payload = copy.deepcopy(SEED_DRY_RUN)
    payload["machine_name"] = name
    payload["timestamp"] = timestamp
    if scenarios is not None:
        payload["master_scenario"]["scenarios"] = scenarios
    return payload


def scenario(name, *tests):
    return {"file_path": "/s", "file_name": name, "script": "",
            "tests": [{"file_path": path, "file_name": file, "script": f"# {file}"}
                      for path, file in tests]}


class Machines:
    """Posts as a machine would, through the real views."""

    def __init__(self, client):
        self.client = client

    def post(self, path, body, **headers):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.client.post(path, data, content_type="application/json", **headers)

    def dry_run(self, payload=None, **headers):
        return self.post("/tm_api/dry_run/", payload or dry_run_payload(), **headers)

    def start(self, machine="machine #1", file_path="/s/t", file_name="a.py", **extra):
        return self.post("/tm_api/test_start/", {"machine_name": machine, "file_path": file_path,
                                                 "file_name": file_name, **extra})

    def stop(self, machine="machine #1", file_path="/s/t", file_name="a.py", status="passed",
             **extra):
        return self.post("/tm_api/test_stop/", {"machine_name": machine, "file_path": file_path,
                                                "file_name": file_name, "status": status,
                                                **extra})


@pytest.fixture
def machines(client, settings):
    settings.TM_ALLOW_ANONYMOUS_MACHINES = True
    return Machines(client)


@pytest.fixture
def reader(client, settings):
    settings.DASHBOARDS_PUBLIC = True
    return client
