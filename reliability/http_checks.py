"""Hostile requests and load against ``classify_http`` as served (functions-framework on gunicorn, loopback only).

Why raw sockets: a lying ``Content-Length`` or a body that never arrives is a property of the
connection, which an HTTP library will not produce. Every fuzz case must be answered with a
4xx JSON error (never a 5xx, never a hang); load is measured at a few concurrency levels with
the function's memory (the resident set of its process group) before and after.
"""

from __future__ import annotations

import json
import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from local.emulators import FunctionServer, proc_stats


@dataclass
class FuzzResult:
    case: str
    status: int
    code: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return 400 <= self.status < 500 and self.code is not None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    throughput_rps: float
    rss_before_mib: float
    rss_after_mib: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _post(body: bytes, content_type: str = "application/json", length: int | None = None) -> bytes:
    head = (f"POST / HTTP/1.1\r\nHost: reliability\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


LONG_REVIEW = ("The order arrived late and the box was crushed, but support replaced it within a week. " * 60)[:4800]

CASES: list[tuple[str, bytes]] = [
    ("JSON nested 100,000 deep", _post(b"[" * 100_000)),
    ("a number of 100,000 digits", _post(b'{"review": "ok", "n": ' + b"9" * 100_000 + b"}")),
    ("a lone surrogate", _post(b'{"review": "\\ud800 hi"}')),
    ("an unknown field", _post(_json({"review": "Fine.", "priority": "high"}))),
    ("a duplicated key", _post(b'{"review": "good", "review": "bad"}')),
    ("NaN", _post(b'{"reviews": ["a"], "x": NaN}')),
    ("bytes that are not UTF-8", _post(b'{"review": "\xff\xfe"}')),
    ("truncated JSON", _post(b'{"review": "half')),
    ("a JSON array", _post(b'["a review"]')),
    ("an empty body", _post(b"")),
    ("text/plain", _post(b"a review", content_type="text/plain")),
    ("a whitespace-only review", _post(_json({"review": " \u0085 "}))),
    ("65 reviews", _post(_json({"reviews": ["ok"] * 65}))),
    ("a review of 5,001 characters", _post(_json({"review": "y" * 5001}))),
    ("a body over 1 MB", _post(_json({"reviews": ["z" * 4000] * 300}))),
    ("64 reviews of 4,800 characters (compute budget)", _post(_json({"reviews": [LONG_REVIEW] * 64}))),
    ("Content-Length 2 GB, no body", _post(b"", length=2_000_000_000)),
    ("Content-Length 500, 2 bytes sent", _post(b'{"', length=500)),
    ("PUT", b"PUT / HTTP/1.1\r\nHost: reliability\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"),
    ("DELETE", b"DELETE / HTTP/1.1\r\nHost: reliability\r\nConnection: close\r\n\r\n"),
    ("GET without a review", b"GET /?text=hi HTTP/1.1\r\nHost: reliability\r\nConnection: close\r\n\r\n"),
]


def send_raw(server: FunctionServer, raw: bytes, wait: float = 60.0) -> tuple[int, dict[str, Any] | None]:
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=wait) as conn:
        conn.sendall(raw)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if length is not None and len(body) >= length:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    return status, parsed if isinstance(parsed, dict) else None


def fuzz(server: FunctionServer) -> list[FuzzResult]:
    results = []
    for name, raw in CASES:
        started = time.monotonic()
        try:
            status, body = send_raw(server, raw)
        except OSError:
            status, body = 0, None
        code = (body or {}).get("error", {}).get("code") if isinstance((body or {}).get("error"), dict) else None
        results.append(FuzzResult(name, status, code, round(time.monotonic() - started, 2)))
    return results


def group_rss_mib(pgid: int) -> float:
    total = 0
    for pid, state, _, group in proc_stats():
        if group != pgid or state == "Z":
            continue
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def load(server: FunctionServer, concurrency: int, requests_per_level: int) -> LoadResult:
    assert server.pid is not None
    review = {"review": "Arrived a day late, but it works well and support was friendly."}
    before = group_rss_mib(server.pid)
    latencies: list[float] = []
    errors = 0

    def one(_: int) -> tuple[float, bool]:
        started = time.perf_counter()
        try:
            ok = requests.post(server.url, json=review, timeout=60).status_code == 200
        except requests.RequestException:
            ok = False
        return (time.perf_counter() - started) * 1000, ok

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for latency, ok in pool.map(one, range(requests_per_level)):
            latencies.append(latency)
            errors += not ok
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return LoadResult(concurrency, requests_per_level, errors, round(statistics.median(ordered), 1),
                      round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
                      round(requests_per_level / elapsed, 1), before, group_rss_mib(server.pid))
