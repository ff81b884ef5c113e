# The test machines' fixtures, shared with tm_api's tests.
from tm_api.tests.conftest import machines  # noqa: F401 (a fixture: pytest finds it by name)
