"""`python -m plumbing.library_internals.uvicorn_fd <uvicorn's arguments, --fd N among them>`:
uvicorn serving an inherited TCP listening socket as TCP.

For `--fd`, uvicorn makes its socket object with `socket.fromfd(fd, AF_UNIX, SOCK_STREAM)`
whatever the descriptor is (`Server.startup`), and uvloop serves a socket object of family
AF_UNIX as a Unix socket: every TCP connection then runs as a pipe, without TCP_NODELAY, so a
keep-alive client's next request waits for the delayed ACK of the last response's second write,
about 40 ms a request (bench/scaling.py, two processes: 153 req/s, p50 50 ms, the machine idle,
against 414 req/s for one process bound by host and port). Here uvicorn's server module sees a
`socket.fromfd` that keeps the descriptor's own family and type, as `socket.socket(fileno=...)`
finds them; nothing else in the process is touched.

It relies on uvicorn.server importing the `socket` module and calling `socket.fromfd` for
`--fd`; plumbing/tests/test_library_internals.py fails, naming uvicorn and its pinned version,
when that changes. plumbing.serve runs each of several server processes this way (Workers).
"""

import os
import socket
import sys
import types


def fromfd(fd, family=None, type=None, proto=0):
    """A socket object on a duplicate of `fd`, of the family and type the descriptor has."""
    return socket.socket(fileno=os.dup(fd))


class _SocketModule(types.ModuleType):
    """The socket module with fromfd above, for uvicorn.server only."""

    fromfd = staticmethod(fromfd)

    def __getattr__(self, name):
        return getattr(socket, name)


def install():
    import uvicorn.server

    uvicorn.server.socket = _SocketModule("socket")


def main():
    import uvicorn

    install()
    sys.argv[0] = "uvicorn"
    uvicorn.main()


if __name__ == "__main__":
    main()
