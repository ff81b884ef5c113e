"""plumbing/jsonio.py: client JSON that the decoder cannot hold is a JSONInputError, and
values of any depth encode."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plumbing import jsonio

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
    ("9" * 5000, "invalid JSON: Exceeds the limit (4300 digits)"),
    ("[1,", "invalid JSON at line 1 column 4"),
    (b"[\"\xff\"]", "not UTF-8 text"),
])
def test_what_the_decoder_cannot_hold_is_a_json_input_error(text, message):
    with pytest.raises(jsonio.JSONInputError) as caught:
        jsonio.loads(text)
    assert str(caught.value).startswith(message)
    assert len(str(caught.value)) < 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(json_values)
def test_dumps_deep_writes_what_json_dumps_writes(value):
    assert jsonio.dumps_deep(value) == json.dumps(value, separators=(",", ":"))


def test_dumps_deep_has_no_recursion_limit():
    value = leaf = {}
    for _ in range(100_000):
        leaf["children"] = [{}]
        leaf = leaf["children"][0]
    text = jsonio.dumps_deep(value)
    assert text.startswith('{"children":[{"children":[{') and text.count("[") == 100_000


def test_dumps_deep_converts_with_default_and_keys_as_json_does():
    keys = {1: 2.5, 2.5: "f", False: None, None: (1,)}
    assert jsonio.dumps_deep(keys) == json.dumps(keys, separators=(",", ":"))
    assert jsonio.dumps_deep({"when": object()}, default=lambda o: "x") == '{"when":"x"}'
    with pytest.raises(TypeError):
        jsonio.dumps_deep({"when": object()})
