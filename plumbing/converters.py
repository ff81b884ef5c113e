"""Path converters shared by the apps' HTTP and websocket routes."""

from django.urls import register_converter


class DatabaseId:
    """A positive database id: 1 to 18 digits, so always within a BIGINT, and never one of the
    4,300-digit numbers whose int() Python refuses with a ValueError (a 500 with the built-in
    `int` converter). A longer number matches no route: 404, or a refused websocket handshake."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(value)


register_converter(DatabaseId, "id")
