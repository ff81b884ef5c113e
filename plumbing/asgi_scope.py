"""Reading an ASGI scope."""


def header(scope, name: bytes) -> bytes | None:
    """The value of the first header called `name` (lower case), None without one."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None
