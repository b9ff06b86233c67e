"""``classify_http`` as production serves it (functions-framework on gunicorn), against clients that misbehave.

Why a real server and raw sockets: a slow or lying client is a property of the connection,
which an in-process test client cannot produce. Each case had a server thread stuck forever,
or an answer that came 40 s late, before the body was read with a deadline.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from local.emulators import FunctionServer

TIMEOUT = 2.0  # BODY_READ_TIMEOUT_SECONDS for these tests
THREADS = 4  # gunicorn's threads: fewer than the slow clients below


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionServer]:
    env = {"BODY_READ_TIMEOUT_SECONDS": str(TIMEOUT), "THREADS": str(THREADS), "ORT_INTRA_OP_THREADS": "1",
           "LOG_LEVEL": "INFO"}
    with FunctionServer("classify_http", env=env, log_dir=tmp_path_factory.mktemp("served")) as server:
        yield server


def exchange(server: FunctionServer, head: str, body: bytes = b"", wait: float = 30.0) -> tuple[int, dict[str, str],
                                                                                               dict[str, object]]:
    """Send a raw request (possibly an incomplete body) and read the answer: status, headers, JSON body."""
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=wait) as conn:
        conn.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    raw_head, _, content = data.partition(b"\r\n\r\n")
    lines = raw_head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(content or b"{}")


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def post_head(length: int) -> str:
    return f"POST / HTTP/1.1\nHost: test\nContent-Type: application/json\nContent-Length: {length}\n"


def test_a_body_that_never_arrives_is_408_within_the_deadline(served: FunctionServer) -> None:
    started = time.monotonic()
    status, _, body = exchange(served, post_head(500), b'{"')
    assert status == 408 and body["error"]["code"] == "body_timeout"  # type: ignore[index]
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 5


def test_a_huge_content_length_is_413_at_once(served: FunctionServer) -> None:
    started = time.monotonic()
    status, _, body = exchange(served, post_head(2_000_000_000), wait=10)
    assert status == 413 and body["error"]["code"] == "payload_too_large"  # type: ignore[index]
    assert time.monotonic() - started < 2


def test_slow_clients_cannot_take_every_thread(served: FunctionServer) -> None:
    """Twice as many stalled bodies as the server has threads, then a real request: answered once they time out."""
    with ThreadPoolExecutor(max_workers=2 * THREADS) as pool:
        stalled = [pool.submit(exchange, served, post_head(500), b'{"re') for _ in range(2 * THREADS)]
        time.sleep(0.5)
        started = time.monotonic()
        review = json.dumps({"review": "Arrived broken and support never answered."}).encode()
        status, _, body = exchange(served, post_head(len(review)), review, wait=60)
        waited = time.monotonic() - started
        assert status == 200 and body["results"][0]["label"] in ("negative", "neutral", "positive")  # type: ignore[index]
        assert waited < 3 * TIMEOUT + 10, f"a real request waited {waited:.1f} s behind stalled ones"
        assert all(f.result()[0] == 408 for f in stalled)


def test_an_answer_sent_before_the_body_is_not_held_back_by_it(served: FunctionServer) -> None:
    """A GET (or a 405, a 401) that announces a body it never sends is answered at once, not after the body."""
    started = time.monotonic()
    status, _, body = exchange(served, "GET /?review=Great%20value HTTP/1.1\nHost: test\nContent-Length: 500\n",
                               wait=10)
    assert status == 200 and body["results"][0]["label"] == "positive"  # type: ignore[index]
    status, headers, _ = exchange(served, "PUT / HTTP/1.1\nHost: test\nContent-Length: 500\n", wait=10)
    assert status == 405 and headers["Allow"] == "GET, POST"
    assert time.monotonic() - started < TIMEOUT
