"""JSON from clients: whatever the decoder cannot hold is bad input (a 400, a 4000 close), never
a 500 or a "send it again later".

Python's decoder raises more than JSONDecodeError on hostile input: RecursionError for deep
nesting (100,000 `[` in a row), and ValueError for an integer of over 4,300 digits (the
int-from-string limit against quadratic conversion). Each way in reads client JSON through
`loads` here, or through plumbing.rest_json.JSONParser for DRF views. No Django import: the
pure domain modules use it.

Out: `dumps_deep` for values nested past the C encoder's limit, and `database_json` for the
JSON texts the ingest paths hand PostgreSQL.
"""

import json
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

import orjson


class JSONInputError(ValueError):
    """The text is not JSON this server can read; the message says why, briefly."""


def loads(data: str | bytes):
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise JSONInputError(
            f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    except RecursionError:
        raise JSONInputError("JSON nested too deeply") from None
    except UnicodeDecodeError:
        raise JSONInputError("not UTF-8 text") from None
    except ValueError as error:  # an integer over sys.get_int_max_str_digits() digits
        raise JSONInputError(f"invalid JSON: {str(error).split(';')[0]}") from None



class _Token(str):
    """Already-encoded JSON text on the encoder's stack (as opposed to a string value)."""


def _key(key) -> str:
    """A dict key as json.dumps converts it."""
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return json.dumps(key)
    if isinstance(key, (int, float)):
        return json.dumps(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def dumps_deep(value, default=None, ensure_ascii: bool = True, allow_nan: bool = True) -> str:
    """Compact json.dumps without recursion, for values nested deeper than the C encoder's
    recursion limit allows (a span tree 500 spans deep is 1,000 levels of objects and lists).
    The stack is a list, so the depth is bounded only by memory."""
    scalar = json.JSONEncoder(ensure_ascii=ensure_ascii, allow_nan=allow_nan,
                              separators=(",", ":"))
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Token):
            out.append(item)
        elif isinstance(item, dict):
            parts = [_Token("}")]
            for index, (key, child) in enumerate(reversed(item.items())):
                parts += [child, _Token(scalar.encode(_key(key)) + ":")]
                if index < len(item) - 1:
                    parts.append(_Token(","))
            parts.append(_Token("{"))
            stack.extend(parts)
        elif isinstance(item, (list, tuple)):
            parts = [_Token("]")]
            for index, child in enumerate(reversed(item)):
                parts.append(child)
                if index < len(item) - 1:
                    parts.append(_Token(","))
            parts.append(_Token("["))
            stack.extend(parts)
        elif item is None or isinstance(item, (str, int, float, bool)):
            out.append(scalar.encode(item))
        elif default is not None:
            stack.append(default(item))
        else:
            raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")
    return "".join(out)


def _json_encoder():
    """json.dumps's text, compact and without its per-call set-up: the standard library's C
    encoder, made once."""
    if c_make_encoder is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(separators=(",", ":")).encode
    encode = c_make_encoder(None, None, encode_basestring_ascii, None, ":", ",", False, False,
                            True)
    return lambda value: "".join(encode(value, 0))


_encode_json = _json_encoder()


def database_json(value) -> str:
    """JSON text for PostgreSQL (a batch's spans, request metrics' rows): orjson's (a tenth of
    the standard library's time, on an ingest path's one core), the standard library's where
    orjson refuses the value (nesting past its 254 levels, an integer past 64 bits). Neither
    PostgreSQL's jsonb nor its text columns store NUL: an escaped one becomes U+FFFD."""
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        text = _encode_json(value)
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text
