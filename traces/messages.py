"""The trace websocket protocol's messages: parsing and validating one websocket frame, and
the server's replies (no Django import).

A frame is a JSON list of messages, or a single message object. Every problem is reported as a
FrameError whose text names the message (0-based index in the frame), its type and the key, so a
client can fix its input; a frame with any problem is refused as a whole.

The server answers once per connection: when the trace is decided, or for the frame it refuses,
a text frame {"message": <reply>}, then it closes the socket with the reply's close code
(docs/traces.md, "Replies and close codes").
"""

import json
import math
import re
from typing import NamedTuple

from plumbing import jsonio

TRACE_START = "TRACE_START"
TRACE_END = "TRACE_END"
SPAN_START = "SPAN_START"
SPAN_END = "SPAN_END"
EVENT = "EVENT"
MESSAGE_TYPES = (TRACE_START, TRACE_END, SPAN_START, SPAN_END, EVENT)

REQUIRED_KEYS = {
    TRACE_START: ("timestamp", "group_id"),
    TRACE_END: ("timestamp", "group_id"),
    SPAN_START: ("timestamp", "group_id", "name"),
    SPAN_END: ("timestamp", "group_id"),
    EVENT: ("timestamp", "name"),
}

# Timestamps are stored as NUMERIC(26, 6): 20 integer digits hold nanoseconds since 1970 too.
MAX_TIMESTAMP = 10**20
MAX_TEXT = 255  # group ids, names and services are stored in 255-character columns
# A SPAN_END's optional "status": {"code": one of these, "message": text} (OpenTelemetry's).
STATUS_CODES = {"unset": 0, "ok": 1, "error": 2}
MAX_ATTRIBUTES = 128  # OpenTelemetry SDKs' default limit per span or event
MAX_STATUS_MESSAGE = 4096


STORED_REPLY = "Trace stored. Closing the connection"  # seed clients match this text
SERVER_ERROR_REPLY = ("Error: the server could not store this frame; nothing from it was stored, "
                      "send it again later")
CLOSE_STORED = 1000  # the trace is complete and stored
CLOSE_ERROR = 4000  # the client sent something wrong, or the trace is inconsistent
# The server could not store the frame; nothing of it was kept: send it again later. Not 1011:
# autobahn (daphne) sends only 1000 and 3000-4999 from a server, and left such a socket open.
CLOSE_SERVER_ERROR = 4011


def error_reply(reason) -> str:
    """The reply to a refused frame, or to a trace decided inconsistent."""
    return f"Error: {reason}"


def inconsistent_reply(trace_id: int, problems: list[str]) -> str:
    return error_reply(f"trace {trace_id} is inconsistent: {'; '.join(problems)}")


def close_code(reply: str) -> int:
    """The close code that follows `reply`: the one place it is chosen."""
    if reply == STORED_REPLY:
        return CLOSE_STORED
    return CLOSE_SERVER_ERROR if reply == SERVER_ERROR_REPLY else CLOSE_ERROR


class FrameError(ValueError):
    """A frame that cannot be accepted; the text says what and where."""


class Message(NamedTuple):
    type: str
    timestamp: int | float
    group_id: str | None = None
    name: str | None = None
    # Optional, this project's addition to the protocol: the service that emitted a TRACE_START or SPAN_START.
    service: str = ""
    # Optional additions too: a span's (SPAN_START, SPAN_END) or an EVENT's attributes, and a
    # SPAN_END's status (STATUS_CODES' code, message).
    attributes: dict | None = None
    status: tuple[int, str] | None = None


def parse_frame(data: str | bytes, max_bytes: int, max_messages: int) -> list[Message]:
    """JSON text of one frame -> its messages, validated; FrameError otherwise."""
    document, data = _load(data, max_bytes)
    return _messages(document, data, max_messages)


def parse_acked_frame(data: str | bytes, max_bytes: int,
                      max_messages: int) -> tuple[int, list[Message]]:
    """A frame of a connection that asked for acknowledgements (/ws/trace/<id>?ack=1):
    {"seq": <integer from 1>, "messages": <a frame as without acks>} -> (seq, messages); FrameError
    otherwise."""
    document, data = _load(data, max_bytes)
    if not isinstance(document, dict) or set(document) != {"seq", "messages"}:
        raise FrameError(
            'with ?ack=1 a frame must be an object {"seq": <integer from 1>, "messages": '
            f"[<messages>]}}, got {_json_type(document)}"
            + (f" with keys {sorted(document)}" if isinstance(document, dict) else "")
        )
    seq = document["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
        raise FrameError(f"'seq' must be an integer from 1 to {MAX_SEQ}, got {seq!r}"[:300])
    return seq, _messages(document["messages"], data, max_messages)


MAX_SEQ = 2**63 - 1  # stored in a BIGINT
# A JSON escape of a UTF-16 surrogate: paired ones make one character, a lone one cannot be stored.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _load(data: str | bytes, max_bytes: int) -> tuple[object, str]:
    """(the JSON document of a frame, its text); FrameError if too big, not UTF-8 or not JSON."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > max_bytes:
        raise FrameError(f"frame of {size} bytes is over the limit of {max_bytes} bytes")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise FrameError(f"frame is not UTF-8 text: {error}") from None
    try:
        document = jsonio.loads(data)
    except jsonio.JSONInputError as error:
        raise FrameError(str(error)) from None
    return document, data


def _messages(document, data: str, max_messages: int) -> list[Message]:
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list):
        raise FrameError(
            f"a frame must be a JSON list of messages (or one message object), "
            f"got {_json_type(document)}"
        )
    if len(document) > max_messages:
        raise FrameError(
            f"frame of {len(document)} messages is over the limit of {max_messages} messages"
        )
    if "\\u0000" in data or "\x00" in data or _SURROGATE_ESCAPE.search(data):
        # A NUL or a lone surrogate can come only through a JSON escape; no database text
        # column stores either, so such frames take the checked path, which names the key.
        return [_parse_message_checked(item, index) for index, item in enumerate(document)]
    return [parse_message(item, index) for index, item in enumerate(document)]


# type -> (needs group_id, needs name), for the fast path below
_KEYS = {TRACE_START: (True, False), TRACE_END: (True, False), SPAN_START: (True, True),
         SPAN_END: (True, False), EVENT: (False, True)}


def parse_message(item, index: int = 0) -> Message:
    """One message, validated. Well-formed messages take a fast path (ingestion parses tens of
    thousands a second); anything else goes through the checks that name the problem."""
    try:
        kind = item["type"]
        timestamp = item["timestamp"]
        needs_group, needs_name = _KEYS[kind]
    except (TypeError, KeyError):
        return _parse_message_checked(item, index)
    if "attributes" in item or "status" in item:
        return _parse_message_checked(item, index)
    kind_of_timestamp = type(timestamp)
    if kind_of_timestamp is float:
        valid = 0 <= timestamp < MAX_TIMESTAMP  # False for NaN and infinities too
        timestamp = round(timestamp, 6) if valid else timestamp
    else:
        valid = kind_of_timestamp is int and 0 <= timestamp < MAX_TIMESTAMP
    group_id = item.get("group_id") if needs_group else None
    name = item.get("name") if needs_name else None
    service = item.get("service") if kind in (TRACE_START, SPAN_START) else None
    if (
        valid
        and (not needs_group or (type(group_id) is str and 0 < len(group_id) <= MAX_TEXT))
        and (not needs_name or (type(name) is str and 0 < len(name) <= MAX_TEXT))
        and (service is None or (type(service) is str and len(service) <= MAX_TEXT))
    ):
        return Message(kind, timestamp, group_id, name, service or "")
    return _parse_message_checked(item, index)


def _parse_message_checked(item, index: int) -> Message:
    where = f"message {index}"
    if not isinstance(item, dict):
        raise FrameError(f"{where}: a message must be a JSON object, got {_json_type(item)}")
    kind = item.get("type")
    if kind is None:
        raise FrameError(f"{where}: missing key 'type' (one of {', '.join(MESSAGE_TYPES)})")
    if kind not in MESSAGE_TYPES:
        raise FrameError(
            f"{where}: unknown type {_short(kind)}; expected one of {', '.join(MESSAGE_TYPES)}"
        )
    where = f"{where} ({kind})"
    for key in REQUIRED_KEYS[kind]:
        if key not in item:
            raise FrameError(f"{where}: missing key '{key}'")
    timestamp = item["timestamp"]
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        raise FrameError(
            f"{where}: 'timestamp' must be a number, got {_json_type(timestamp)} {_short(timestamp)}"
        )
    # Range first: math.isfinite() of an integer too large for a float raises OverflowError.
    if not 0 <= timestamp < MAX_TIMESTAMP or not math.isfinite(timestamp):
        raise FrameError(
            f"{where}: 'timestamp' must be a finite number from 0 to 1e20, got {_short(timestamp)}"
        )
    if isinstance(timestamp, float):
        # Stored with 6 decimals (microseconds for Unix seconds); rounding here keeps what is
        # compared (repeats after a reconnect) equal to what is stored.
        timestamp = round(timestamp, 6)
    group_id = _text(item, "group_id", where) if "group_id" in REQUIRED_KEYS[kind] else None
    name = _text(item, "name", where) if "name" in REQUIRED_KEYS[kind] else None
    service = ""
    if kind in (TRACE_START, SPAN_START) and item.get("service") is not None:
        service = _text(item, "service", where, allow_empty=True)
    attributes = status = None
    if kind in (SPAN_START, SPAN_END, EVENT) and item.get("attributes") is not None:
        attributes = _attributes(item["attributes"], where)
    if kind == SPAN_END and item.get("status") is not None:
        status = _status(item["status"], where)
    return Message(kind, timestamp, group_id, name, service, attributes, status)


def _attributes(value, where: str) -> dict:
    """{key: string, number, boolean or a list of those}, as OpenTelemetry's attributes."""
    if not isinstance(value, dict):
        raise FrameError(f"{where}: 'attributes' must be an object, got {_json_type(value)}")
    if len(value) > MAX_ATTRIBUTES:
        raise FrameError(f"{where}: more than {MAX_ATTRIBUTES} attributes")
    for key, item in value.items():
        values = item if isinstance(item, list) else [item]
        if not key or len(key) > MAX_TEXT or "\x00" in key or not all(
                isinstance(v, (str, int, float, bool)) and not isinstance(v, dict)
                and (not isinstance(v, str) or "\x00" not in v) for v in values):
            raise FrameError(
                f"{where}: attribute {_short(key)} must have a key of 1 to {MAX_TEXT} characters "
                "and a string, number or boolean value (or a list of those), without NUL")
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        raise FrameError(f"{where}: 'attributes' are not text or hold a non-finite number") from None
    return value


def _status(value, where: str) -> tuple[int, str]:
    if not isinstance(value, dict) or value.get("code") not in STATUS_CODES:
        raise FrameError(f"{where}: 'status' must be an object {{\"code\": \"unset\", \"ok\" or "
                         f"\"error\", \"message\": text}}, got {_short(value)}")
    message = value.get("message") or ""
    if not isinstance(message, str) or "\x00" in message:
        raise FrameError(f"{where}: 'status' message must be text without NUL")
    return STATUS_CODES[value["code"]], message[:MAX_STATUS_MESSAGE]


def _text(item: dict, key: str, where: str, allow_empty: bool = False) -> str:
    value = item[key]
    if not isinstance(value, str):
        raise FrameError(f"{where}: '{key}' must be a string, got {_json_type(value)}")
    if not value and not allow_empty:
        raise FrameError(f"{where}: '{key}' must not be empty")
    if len(value) > MAX_TEXT:
        raise FrameError(f"{where}: '{key}' is longer than {MAX_TEXT} characters")
    if "\x00" in value:
        raise FrameError(
            f"{where}: '{key}' contains a NUL character (\\u0000), which cannot be stored"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FrameError(
            f"{where}: '{key}' contains a lone surrogate (\\ud800-\\udfff), which is not text"
        ) from None
    return value


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
