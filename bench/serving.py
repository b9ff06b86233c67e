"""An HTTP function served by functions-framework in its own process group, and a client for it.

Why a real server: the product is the HTTP function, so its cold start
includes functions-framework, gunicorn and the first request's model load, and
its latency includes the HTTP layer. functions-framework runs gunicorn, whose
master forks one worker: the worker is the serving process whose memory is
reported; the whole group's proportional set size is reported beside it.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import procs
from local.emulators import free_port

ROOT = Path(__file__).resolve().parents[1]
# What the HTTP path must not import: the other functions' clients and the training stack.
FORBIDDEN_IMPORTS = ("torch", "transformers", "google.cloud.firestore", "google.cloud.pubsub", "grpc")


def functions_framework_command() -> list[str]:
    script = Path(sys.executable).parent / "functions-framework"
    return [str(script)] if script.exists() else [sys.executable, "-m", "functions_framework"]


class Server:
    """One functions-framework process: start, first answer, requests, memory, stop."""

    def __init__(self, source: Path, target: str, env: dict[str, str], log_path: Path) -> None:
        self.source, self.target, self.env, self.log_path = source, target, env, log_path
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned = 0.0
        self._conn: http.client.HTTPConnection | None = None

    def start(self) -> None:
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT)}
        command = [*functions_framework_command(), "--source", str(self.source), "--target", self.target,
                   "--host", "127.0.0.1", "--port", str(self.port)]
        self.log = self.log_path.open("wb")
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def first_answer(self, texts: list[str], timeout: float = 300.0) -> float:
        """Seconds from spawning the process to the first classified answer."""
        assert self.proc is not None
        deadline = self.spawned + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.source} exited with {self.proc.returncode} before answering; "
                                   f"see {self.log_path}:\n{self.log_tail()}")
            try:
                status, body = self.post(texts, timeout=timeout)
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                self._conn = None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.source} did not answer within {timeout:.0f} s") from None
                time.sleep(0.005)
                continue
            answered = time.monotonic()
            if status != 200:
                raise RuntimeError(f"{self.source} answered {status}: {body}\n{self.log_tail()}")
            return answered - self.spawned

    def post(self, texts: list[str], timeout: float = 120.0) -> tuple[int, dict[str, Any]]:
        """POST ``{"reviews": texts}`` on a kept-alive connection (reconnects once if the server closed it)."""
        body = json.dumps({"reviews": texts}).encode()
        headers = {"Content-Type": "application/json"}
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                self._conn.request("POST", "/", body=body, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
                return response.status, json.loads(data or b"{}")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._conn.close()
                self._conn = None
                if attempt == 2 or self.proc is None or self.proc.poll() is not None:
                    raise
        raise AssertionError("unreachable")

    def labels(self, texts: list[str]) -> list[str]:
        status, body = self.post(texts)
        if status != 200:
            raise RuntimeError(f"{self.source} answered {status}: {body}")
        return [str(row["label"]) for row in body["results"]]

    def serving_pid(self) -> int:
        """The gunicorn worker (the process that loads the model), or the server itself if it did not fork."""
        assert self.proc is not None
        kids = procs.children(self.proc.pid)
        return kids[0] if kids else self.proc.pid

    def memory(self) -> dict[str, Any]:
        assert self.proc is not None
        group = procs.tree(self.proc.pid)
        pss = [procs.pss_mb(pid) for pid in group]
        return {"serving_process": procs.memory_mb(self.serving_pid()),
                "processes": len(group),
                "group_pss_mb": round(sum(p for p in pss if p is not None), 1) if all(
                    p is not None for p in pss) else None}

    def first_request_ms(self) -> float | None:
        """The first request's own latency (model load included) as the function logged it."""
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if entry.get("message") == "classified" and entry.get("cold_start"):
                    return float(entry["latency_ms"])
        return None

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.proc is not None:
            procs.stop_group(self.proc)
        if hasattr(self, "log"):
            self.log.close()


IMPORT_PROBE = """
import json, sys, time
started = time.monotonic()
import functions_framework
import main
imported = time.monotonic()
forbidden = {forbidden!r}
loaded = sorted({{name.split(".")[0] for name in sys.modules}})
hits = sorted(f for f in forbidden if f in sys.modules)
print(json.dumps({{"import_seconds": imported - started, "forbidden_loaded": hits, "top_level_modules": len(loaded)}}))
"""


def import_check(env: dict[str, str]) -> dict[str, Any]:
    """Import the HTTP path (functions_framework + main) in a fresh process: time, and what it dragged in."""
    code = IMPORT_PROBE.format(forbidden=FORBIDDEN_IMPORTS)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=300, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["import_seconds"] = round(result["import_seconds"], 4)
    result["checked"] = list(FORBIDDEN_IMPORTS)
    return result
