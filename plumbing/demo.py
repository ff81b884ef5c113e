"""The server the demo commands report to over HTTP, and what they say when it is not there.

A demo run by a person who forgot to start the server, or whose server stopped, ends with one
line that says so and how to start it, never with urllib's traceback.
"""

import errno
import http.client
import socket
import urllib.error
import urllib.request

from django.core.management.base import CommandError

START_HINT = "start it with `make run`"


def reason_of(error: BaseException) -> str:
    """'connection refused', 'timed out', ... : what went wrong with the connection, briefly."""
    reason = getattr(error, "reason", error)  # URLError wraps the socket's error
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, http.client.RemoteDisconnected):
        return "connection closed"
    if isinstance(reason, OSError) and reason.errno is not None:
        return (reason.strerror or errno.errorcode.get(reason.errno, str(reason))).lower()
    return str(reason).lower() or type(reason).__name__


def server_gone(url: str, error: BaseException, started: bool = True) -> CommandError:
    """The one line a command ends with when the server at `url` stopped answering (or never
    answered): manage.py prints it, without a traceback, and exits with status 1."""
    what = "went away" if started else "is not reachable"
    return CommandError(f"the server at {url} {what} ({reason_of(error)}); {START_HINT}")


def check_server(url: str, timeout: float = 3.0) -> None:
    """Raises server_gone's error unless a server answers /healthz at `url` (any status: a 503 of a
    server whose Redis is away is still a server to report to)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise server_gone(url.rstrip("/"), error, started=False) from None
