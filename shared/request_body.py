"""Reading a request body from a client we do not trust to send it, with a size limit and a deadline.

Why: a server thread reading a body blocks until the bytes arrive. A client that announces
``Content-Length: 500`` and sends 2 bytes held a thread forever, and 8 of them took every thread
of the server (gunicorn's gthread worker, what functions-framework runs in production and
``make serve`` runs here), with or without an API key. So:

- an announced length over the limit is answered 413 at once, before a byte is read;
- the body must arrive within ``BODY_READ_TIMEOUT_SECONDS`` in total (a trickle that keeps each
  single read short is stopped too): the server's socket gets the remaining time as its timeout
  before every read, and a read that runs out is answered 408;
- a body that turns out longer than the limit (no or a wrong ``Content-Length``) is 413 as well.

The socket is the one the WSGI server puts in the environ (``gunicorn.socket``, or werkzeug's);
without one (an in-process test client) the deadline is checked between reads only.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Mapping
from typing import Any, Protocol

from shared.errors import PayloadTooLargeError, RequestTimeoutError

CHUNK = 64 * 1024
SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def server_socket(environ: Mapping[str, Any]) -> socket.socket | None:
    for key in SOCKET_KEYS:
        candidate = environ.get(key)
        if isinstance(candidate, socket.socket):
            return candidate
    return None


def check_length(content_length: int | None, limit: int) -> None:
    if content_length is not None and content_length > limit:
        raise PayloadTooLargeError(f"body of {content_length} bytes; at most {limit}")


def read_body(stream: Readable, content_length: int | None, limit: int, timeout: float,
              sock: socket.socket | None = None) -> bytes:
    """The whole body (at most ``limit`` bytes) within ``timeout`` seconds, or a 413/408 error."""
    check_length(content_length, limit)
    wanted = limit + 1 if content_length is None else content_length
    deadline = time.monotonic() + timeout
    previous = sock.gettimeout() if sock is not None else None
    chunks: list[bytes] = []
    received = 0
    try:
        while received < wanted:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _late(received, content_length, timeout)
            if sock is not None:
                sock.settimeout(left)
            try:
                chunk = stream.read(min(CHUNK, wanted - received))
            except (TimeoutError, OSError):  # socket.timeout is TimeoutError; a reset peer is an OSError
                raise _late(received, content_length, timeout) from None
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):  # the client is gone; the server notices on its own
                sock.settimeout(previous)
    body = b"".join(chunks)
    if len(body) > limit:
        raise PayloadTooLargeError(f"body of more than {limit} bytes; at most {limit}")
    return body


def _late(received: int, content_length: int | None, timeout: float) -> RequestTimeoutError:
    announced = f" of {content_length}" if content_length is not None else ""
    return RequestTimeoutError(f"the body did not arrive within {timeout:g} s ({received}{announced} bytes received)")
