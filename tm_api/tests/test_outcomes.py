"""A test's identity across runs (tm_api/outcomes.py)."""

import pytest

from tm_api import outcomes as O

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("file_path", "file_name", "identity"), [
    ("tests/test_api.py", "TestA::test_b[1]", "tests/test_api.py::TestA::test_b[1]"),  # pytest
    ("test_api.py", "test_login", "test_api.py::test_login"),
    ("com.acme.shop.CartServiceTest", "addsItem", "com.acme.shop.CartServiceTest::addsItem"),
    ("tests.test_api.TestA", "test_b[1]", "tests.test_api.TestA::test_b[1]"),  # pytest's JUnit
    ("/vtm/tests", "01_test.py", "/vtm/tests/01_test.py"),  # a directory and a script
    ("/vtm/tests/", "01_test.py", "/vtm/tests/01_test.py"),
    ("C:\\suite\\tests", "01_test.py", "C:\\suite\\tests/01_test.py"),
    ("", "test_login", "test_login"),  # only a name
    ("test_x.py", "test_x.py", "test_x.py"),  # a module-level item
])
def test_identity(file_path, file_name, identity):
    assert O.identity(file_path, file_name) == identity


def test_the_key_is_a_fixed_length_digest_of_the_identity():
    key = O.key_of("tests/test_api.py", "test_login")
    assert key == O.identity_key("tests/test_api.py::test_login") and len(key) == 32
    assert O.key_of("x" * 1024, "é" * 256) != key and len(O.key_of("x" * 1024, "é" * 256)) == 32
    assert O.identity_key("\ud800") != key  # a lone surrogate from a client does not crash
