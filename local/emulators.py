"""Local stand-ins for the cloud: the Pub/Sub and Firestore emulators and functions-framework servers.

Used by the test fixtures and by the local stack, so both start things the same way.

Why this shape:
- Each process gets a free port and runs in its own session (process group): the
  emulators are launchers (gcloud's Python, a bash script) that start a Java child, and
  killing only the launcher leaves an orphan JVM holding the port. ``stop()`` signals the
  whole group (SIGTERM, then SIGKILL after a grace period) and waits until no live
  process of the group remains.
- Readiness is an HTTP probe, not a log line: both emulators answer ``GET /`` with
  ``Ok`` once they serve, and functions-framework answers any request once gunicorn
  listens. A process that exits early or never answers fails with ONE line saying what
  is wrong and what to do, plus the log file to read.
- Output goes to a log file per process (the tests parse the function's structured logs).
- The Pub/Sub emulator also speaks REST/JSON on its port; set-up and publishing use it
  (plain HTTP, no gRPC client, and easy to read in a failing test).

Checked on this machine (SDK 528): the Pub/Sub emulator is ``gcloud beta emulators pubsub
start --host-port=H:P --project=P`` (ready in ~3-8 s); the Firestore emulator is started
through its own launcher ``$SDK/platform/cloud-firestore-emulator/cloud_firestore_emulator
start --host=H --port=P [--functions_emulator=H:P]`` (ready in ~3-5 s); its
``DELETE /emulator/v1/projects/P/databases/(default)/documents`` wipes a project's data.

Pub/Sub emulator push delivery, measured here: at most 2 pushes in flight per
subscription (so throughput is about 2 / handler latency); a failed push (non-2xx) is
retried after ~1 s when the subscription has no retry policy, and dead-lettered after
exactly ``maxDeliveryAttempts``. WITH a retry policy, nacked messages are sometimes never
redelivered (seen with 1-2 s and with 10-600 s backoff): leave ``min/max_backoff_seconds``
unset on push subscriptions in the emulator.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Self

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_PROJECT = "reviewsense-local"


class EmulatorError(RuntimeError):
    """A local process could not be started; the message says what is wrong and what to do."""


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # a port whose old connections linger in TIME_WAIT can be bound again by a server: count it as free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise EmulatorError(f"{tool} not found on PATH: {hint}")
    return path


@lru_cache(maxsize=1)
def sdk_root() -> Path:
    """The Google Cloud SDK's installation directory (where the emulator components live).

    What ``gcloud info --format='value(installation.sdk_root)'`` prints; read from the
    resolved ``gcloud`` path first (``SDK/bin/gcloud``) because ``gcloud info`` takes
    5-15 s on a busy machine, and asked of ``gcloud info`` only when that layout differs.
    """
    gcloud = _require("gcloud", "install the Google Cloud SDK (https://cloud.google.com/sdk/docs/install)")
    candidate = Path(gcloud).resolve().parent.parent
    if (candidate / "platform").is_dir() and (candidate / "lib" / "gcloud.py").exists():
        return candidate
    try:
        out = subprocess.run([gcloud, "info", "--format=value(installation.sdk_root)"], capture_output=True,
                             text=True, timeout=60, check=True).stdout.strip()
    except (subprocess.SubprocessError, OSError) as exc:
        raise EmulatorError(f"`gcloud info` failed ({exc}); check that the Google Cloud SDK works") from None
    if not out:
        raise EmulatorError("`gcloud info` did not report installation.sdk_root; check the Google Cloud SDK install")
    return Path(out)


def proc_stats() -> Iterator[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process, read from /proc (Linux only)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces: read the fields after the last ')'
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2:
            yield int(entry.name), fields[0], int(fields[1]), int(fields[2])


def _live_group_members(pgid: int) -> list[int]:
    """Processes of a group that still run (zombies excluded: they hold no port and no memory)."""
    if not Path("/proc").is_dir():  # not Linux: fall back to "the group exists"
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    return [pid for pid, state, _, group in proc_stats() if state != "Z" and group == pgid]


def _signal_group(proc: subprocess.Popen[bytes], pgid: int, sig: int, wait: float) -> bool:
    """Signal a process group; True once the leader is reaped and no live member is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.1)
        if proc.poll() is not None and not _live_group_members(pgid):
            return True
    return False


class ManagedProcess:
    """A child process in its own group with a log file, an HTTP readiness probe and a clean stop."""

    name = "process"
    ready_path = "/"
    startup_timeout = 180.0  # a JVM on two cores shared with a training run can take minutes
    stop_grace = 10.0

    def __init__(self, port: int | None = None, host: str = HOST, log_dir: Path | str | None = None,
                 startup_timeout: float | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="reviewsense-local-"))
        self.log_path = self.log_dir / f"{self.name}-{self.port}.log"
        if startup_timeout is not None:
            self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- what subclasses define -------------------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def process_env(self) -> dict[str, str]:
        return dict(os.environ)

    def cwd(self) -> Path | None:
        return None

    def is_ready_response(self, response: requests.Response) -> bool:
        return response.status_code == 200

    def warm_up(self) -> None:
        """Run once after the readiness probe passes (first requests to a cold JVM are slow)."""

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process (and group) id while started; the local stack records it to clean up after a killed run."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Self:
        if self._proc is not None:
            return self
        if not port_is_free(self.port, self.host):
            raise EmulatorError(f"{self.name}: port {self.address} is busy; stop whatever listens there or use "
                                "another port (free_port() picks one)")
        command = self.command()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        try:
            self._proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=self.process_env(), cwd=self.cwd(),
                                          start_new_session=True)
        except OSError as exc:
            self._log.close()
            self._log = None
            raise EmulatorError(f"{self.name}: cannot run {command[0]} ({exc})") from None
        atexit.register(self.stop)
        try:
            self._wait_ready()
            self.warm_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise EmulatorError(self._early_exit_message(code))
            with contextlib.suppress(requests.RequestException):
                if self.is_ready_response(requests.get(self.url + self.ready_path, timeout=2)):
                    return
            if time.monotonic() > deadline:
                raise EmulatorError(f"{self.name} on {self.address} was not ready after {self.startup_timeout:.0f} s; "
                                    f"the machine may be overloaded (raise startup_timeout) - last log line: "
                                    f"{self.last_log_line()!r} (log: {self.log_path})")
            time.sleep(0.25)

    def _early_exit_message(self, code: int) -> str:
        text = self.log_text()
        if "Address already in use" in text or "BindException" in text:
            return f"{self.name}: port {self.address} is busy; stop whatever listens there or use another port"
        return (f"{self.name} exited with code {code} before it was ready - last log line: "
                f"{self.last_log_line()!r} (log: {self.log_path})")

    def stop(self) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL whatever outlives the grace period."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        pgid = proc.pid  # session leader: its pid is the group id
        if not _signal_group(proc, pgid, signal.SIGTERM, self.stop_grace):
            _signal_group(proc, pgid, signal.SIGKILL, 5.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- logs -------------------------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def last_log_line(self) -> str:
        lines = [line for line in self.log_text().splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""


def _java() -> None:
    _require("java", "the emulators are Java programs; install a JRE 11+ (e.g. apt-get install default-jre-headless)")


class PubSubEmulator(ManagedProcess):
    """``gcloud beta emulators pubsub start``, plus the REST calls the tests and the local stack need."""

    name = "pubsub-emulator"

    def __init__(self, project: str = DEFAULT_PROJECT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project = project
        self._http = requests.Session()

    def command(self) -> list[str]:
        gcloud = _require("gcloud", "install the Google Cloud SDK with the beta and pubsub-emulator components")
        _java()
        return [gcloud, "beta", "emulators", "pubsub", "start", f"--host-port={self.address}",
                f"--project={self.project}", "--quiet"]

    def process_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CLOUDSDK_CORE_DISABLE_PROMPTS"] = "1"
        return env

    def env(self) -> dict[str, str]:
        """What a client needs to talk to this emulator."""
        return {"PUBSUB_EMULATOR_HOST": self.address, "PUBSUB_PROJECT_ID": self.project,
                "GOOGLE_CLOUD_PROJECT": self.project}

    # -- REST -------------------------------------------------------------------------------------
    def _api(self, method: str, path: str, body: Mapping[str, Any] | None = None,
             ok: Iterable[int] = (200,)) -> dict[str, Any]:
        response = self._http.request(method, f"{self.url}/v1/{path}", json=body, timeout=30)
        if response.status_code not in set(ok):
            raise EmulatorError(f"pubsub emulator: {method} {path} answered {response.status_code}: "
                                f"{response.text[:300]}")
        result: dict[str, Any] = response.json() if response.content else {}
        return result

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def subscription_path(self, subscription: str) -> str:
        return f"projects/{self.project}/subscriptions/{subscription}"

    def create_topic(self, topic: str) -> None:
        """Create a topic; an existing one is kept."""
        self._api("PUT", self.topic_path(topic), {}, ok=(200, 409))

    def create_subscription(self, subscription: str, topic: str, *, push_endpoint: str | None = None,
                            ack_deadline_seconds: int = 10, min_backoff_seconds: float | None = None,
                            max_backoff_seconds: float | None = None, dead_letter_topic: str | None = None,
                            max_delivery_attempts: int | None = None) -> None:
        """Create a (push or pull) subscription; mirrors the Terraform settings that matter to delivery.

        Do not set a backoff on push subscriptions unless you test that very thing: the
        emulator may then stop redelivering nacked messages (see the module docstring).
        """
        body: dict[str, Any] = {"topic": self.topic_path(topic), "ackDeadlineSeconds": ack_deadline_seconds}
        if push_endpoint:
            body["pushConfig"] = {"pushEndpoint": push_endpoint}
        if min_backoff_seconds is not None or max_backoff_seconds is not None:
            body["retryPolicy"] = {"minimumBackoff": f"{min_backoff_seconds or 10}s",
                                   "maximumBackoff": f"{max_backoff_seconds or 600}s"}
        if dead_letter_topic:
            body["deadLetterPolicy"] = {"deadLetterTopic": self.topic_path(dead_letter_topic),
                                        "maxDeliveryAttempts": max_delivery_attempts or 5}
        self._api("PUT", self.subscription_path(subscription), body)

    def delete_subscription(self, subscription: str) -> None:
        self._api("DELETE", self.subscription_path(subscription), ok=(200, 404))

    def push_endpoint(self, server: ManagedProcess, topic: str) -> str:
        """A push URL for ``server`` whose path names the topic (functions-framework puts it in the event source)."""
        return f"{server.url}/{self.topic_path(topic)}"

    def publish(self, topic: str, messages: Sequence[bytes | str | Mapping[str, Any]]) -> list[str]:
        """Publish messages (bytes/str payloads, or {"data": ..., "attributes": {...}}); returns their ids in order."""
        encoded = []
        for message in messages:
            if isinstance(message, Mapping):
                data, attributes = message.get("data", b""), dict(message.get("attributes") or {})
            else:
                data, attributes = message, {}
            raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            item: dict[str, Any] = {"data": base64.b64encode(raw).decode("ascii")}
            if attributes:
                item["attributes"] = attributes
            encoded.append(item)
        ids: list[str] = []
        for start in range(0, len(encoded), 500):  # well under the 1000-message request limit
            ids += self._api("POST", f"{self.topic_path(topic)}:publish", {"messages": encoded[start:start + 500]})[
                "messageIds"]
        return ids

    def pull(self, subscription: str, max_messages: int = 100, ack: bool = True) -> list[dict[str, Any]]:
        """Pull what is waiting (the emulator answers at once, possibly with nothing) and acknowledge it."""
        received = self._api("POST", f"{self.subscription_path(subscription)}:pull",
                             {"maxMessages": max_messages, "returnImmediately": True}).get("receivedMessages", [])
        if ack and received:
            self._api("POST", f"{self.subscription_path(subscription)}:acknowledge",
                      {"ackIds": [r["ackId"] for r in received]})
        return [r["message"] for r in received]


class FirestoreEmulator(ManagedProcess):
    """The Firestore emulator, started through its own launcher.

    ``functions_emulator="HOST:PORT"`` makes the emulator deliver Firestore triggers to that
    address (what the local stack uses for ``on_review_labeled``).
    """

    name = "firestore-emulator"

    def __init__(self, project: str = DEFAULT_PROJECT, functions_emulator: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.functions_emulator = functions_emulator

    def command(self) -> list[str]:
        _java()
        launcher = sdk_root() / "platform" / "cloud-firestore-emulator" / "cloud_firestore_emulator"
        if not launcher.exists():
            raise EmulatorError(f"{launcher} not found: install the Firestore emulator "
                                "(gcloud components install cloud-firestore-emulator, or apt-get install "
                                "google-cloud-cli-firestore-emulator)")
        command = [str(launcher), "start", f"--host={self.host}", f"--port={self.port}"]
        if self.functions_emulator:
            command.append(f"--functions_emulator={self.functions_emulator}")
        return command

    def env(self) -> dict[str, str]:
        return {"FIRESTORE_EMULATOR_HOST": self.address, "GOOGLE_CLOUD_PROJECT": self.project}

    def warm_up(self) -> None:
        """Write, read and delete a throwaway document: ``GET /`` answers long before the document path
        is fast, and on a busy machine a cold emulator's first client call can exceed a 10 s deadline."""
        base = f"{self.url}/v1/projects/{self.project}/databases/(default)/documents/_warmup"
        try:
            for response in (
                    requests.post(f"{base}?documentId=ping", json={"fields": {"ok": {"booleanValue": True}}},
                                  timeout=self.startup_timeout),
                    requests.get(f"{base}/ping", timeout=self.startup_timeout),
                    requests.delete(f"{base}/ping", timeout=self.startup_timeout)):
                response.raise_for_status()
        except requests.RequestException as exc:
            raise EmulatorError(f"{self.name} on {self.address} answers but cannot store documents ({exc}); "
                                f"see {self.log_path}") from None

    def client(self) -> Any:
        """A ``google.cloud.firestore.Client`` bound to this emulator (it reads the host at construction)."""
        from google.cloud import firestore

        saved = os.environ.get("FIRESTORE_EMULATOR_HOST")
        os.environ["FIRESTORE_EMULATOR_HOST"] = self.address
        try:
            return firestore.Client(project=self.project)
        finally:
            if saved is None:
                del os.environ["FIRESTORE_EMULATOR_HOST"]
            else:
                os.environ["FIRESTORE_EMULATOR_HOST"] = saved

    def reset(self, project: str | None = None) -> None:
        """Delete every document of a project (default: this emulator's)."""
        project = project or self.project
        response = requests.delete(f"{self.url}/emulator/v1/projects/{project}/databases/(default)/documents",
                                   timeout=30)
        if response.status_code != 200:
            raise EmulatorError(f"firestore emulator: reset of {project} answered {response.status_code}: "
                                f"{response.text[:300]}")


class FunctionServer(ManagedProcess):
    """``functions-framework --source main.py --target NAME`` from the repository root, with a given environment."""

    name = "functions-framework"
    ready_path = "/robots.txt"  # answered (404/405) once gunicorn serves; never runs the function
    startup_timeout = 120.0

    def __init__(self, target: str, env: Mapping[str, str] | None = None, source: str = "main.py",
                 **kwargs: Any) -> None:
        self.target = target
        self.name = f"functions-framework-{target}"
        super().__init__(**kwargs)
        self.extra_env = dict(env or {})
        self.source = source

    def command(self) -> list[str]:
        beside = Path(sys.executable).with_name("functions-framework")
        if beside.exists():
            launcher = [str(beside)]
        elif shutil.which("functions-framework"):
            launcher = ["functions-framework"]
        else:
            launcher = [sys.executable, "-m", "functions_framework"]
        return [*launcher, "--source", self.source, "--target", self.target, "--host", self.host,
                "--port", str(self.port)]

    def process_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.extra_env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def cwd(self) -> Path:
        return REPO_ROOT

    def is_ready_response(self, response: requests.Response) -> bool:
        return True

    def structured_logs(self) -> list[dict[str, Any]]:
        """The function's JSON log entries (``shared.logs``), in order; other output is skipped."""
        entries = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    entry = json.loads(line)
                    if isinstance(entry, dict):
                        entries.append(entry)
        return entries
