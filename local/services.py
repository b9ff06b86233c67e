"""The processes and Pub/Sub wiring of one local run: emulators, functions, topics, the trigger, the push relay.

Every child runs in its own process group (``local.emulators``), so a stop or a startup
failure stops the JVMs too. Ports are picked afresh on every run and the state file is
rewritten, so a second run needs no clean-up; a stale state file from a run that was killed
outright has its recorded process groups stopped first. Startup failures are one line saying
what is wrong and what to do, checked before anything starts where possible (Java, gcloud,
the emulator components, the HTTP port).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from rich.console import Console

from local.emulators import (
    HOST,
    EmulatorError,
    FirestoreEmulator,
    FunctionServer,
    ManagedProcess,
    PubSubEmulator,
    free_port,
    port_is_free,
    process_alive,
    sdk_root,
)
from local.firestore_triggers import register_written_trigger
from local.interrupts import checkpoint
from local.push_relay import PushRelay
from shared.config import PROJECT_ROOT, Settings, names

DEFAULT_LOG_DIR = PROJECT_ROOT / "build" / "local" / "logs"
SUMMARY_FILE = "summary.json"
LOG_PATTERNS = ("pubsub-emulator-*.log", "firestore-emulator-*.log", "functions-framework-*.log", SUMMARY_FILE)
# Process names a stale state file may list, and what their command line must contain before we stop them.
PROCESS_MARKERS = {"pubsub": "pubsub", "firestore": "firestore", "classify_http": "functions",
                   "ingest_review": "functions", "on_review_labeled": "functions"}


class StartupError(RuntimeError):
    """The stack cannot start; the message is one line: what is wrong and what to do."""


def view_subscription(followup_topic: str) -> str:
    """The local-only pull subscription the live view reads follow-up notifications from."""
    return f"{followup_topic}-local-view"


# --- before anything starts --------------------------------------------------------------------

def preflight(http_port: int) -> None:
    """Fail fast, one line each, on what would otherwise fail halfway through the start."""
    if shutil.which("java") is None:
        raise StartupError("java not found on PATH: the Firestore and Pub/Sub emulators are Java programs; install a "
                           "JRE 11+ (e.g. `sudo apt-get install default-jre-headless`) and run again")
    if shutil.which("gcloud") is None:
        raise StartupError("gcloud not found on PATH: install the Google Cloud SDK (https://cloud.google.com/sdk/docs/"
                           "install) with the beta, pubsub-emulator and cloud-firestore-emulator components")
    try:
        root = sdk_root()
    except EmulatorError as exc:
        raise StartupError(str(exc)) from None
    for component, package in (("pubsub-emulator", "google-cloud-cli-pubsub-emulator"),
                               ("cloud-firestore-emulator", "google-cloud-cli-firestore-emulator")):
        if not (root / "platform" / component).is_dir():
            raise StartupError(f"the {component} component is missing from {root}: run `gcloud components install "
                               f"{component}` (or `sudo apt-get install {package}`)")
    if not port_is_free(http_port):
        raise StartupError(f"port {http_port} (the HTTP function) is busy: stop what listens there, or pick another "
                           f"port with --http-port N (make run PORT=N)")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def check_previous_run(state_path: Path, console: Console) -> None:
    """Refuse to start beside a running stack; stop what a killed one left behind."""
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    pid = state.get("pid")
    if isinstance(pid, int) and pid != os.getpid() and process_alive(pid) and "local.stack" in _cmdline(pid):
        raise StartupError(f"a local stack is already running (pid {pid}, HTTP on "
                           f"{state.get('functions', {}).get('classify_http')}): use it, or stop it with Ctrl-C "
                           f"in its terminal (kill {pid}) first")
    for name, child in (state.get("processes") or {}).items():
        marker = PROCESS_MARKERS.get(name)
        if not isinstance(child, int) or marker is None or not process_alive(child) or marker not in _cmdline(child):
            continue
        with contextlib.suppress(OSError):
            if os.getpgid(child) == child:  # still the group leader we started
                console.print(f"stopping {name} (process group {child}) left by a previous run that was killed")
                os.killpg(child, signal.SIGKILL)


def clean_logs(log_dir: Path) -> None:
    """Remove the previous run's logs from the folder (ports change, so names would pile up)."""
    for pattern in LOG_PATTERNS:
        for path in log_dir.glob(pattern):
            with contextlib.suppress(OSError):
                path.unlink()


def _background(work: Callable[[], None]) -> Callable[[], None]:
    """Run ``work`` in a daemon thread (an interrupted run must not wait for it); the returned call joins it
    and raises what it raised."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, daemon=True, name=getattr(work, "__name__", "work"))
    thread.start()

    def join() -> None:
        while thread.is_alive():
            thread.join(0.25)
            checkpoint()
        if failure:
            if isinstance(failure[0], EmulatorError | requests.RequestException):
                raise StartupError(str(failure[0])) from None
            raise failure[0]

    return join


# --- the stack ---------------------------------------------------------------------------------

@dataclass
class Stack:
    """The processes and Pub/Sub resources of one local run."""

    project: str
    http_port: int
    log_dir: Path
    state_path: Path
    startup_timeout: float
    settings: Settings
    console: Console
    pubsub: PubSubEmulator | None = None
    firestore: FirestoreEmulator | None = None
    functions: dict[str, FunctionServer] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    started: list[ManagedProcess] = field(default_factory=list)
    relay: PushRelay | None = None

    @property
    def processes(self) -> list[ManagedProcess]:
        found: list[ManagedProcess | None] = [*self.functions.values(), self.pubsub, self.firestore]
        return [p for p in found if p is not None]

    # -- start ------------------------------------------------------------------------------------
    def start(self) -> None:
        n = names()
        targets = n["functions"]
        self.write_state("starting")
        ports = {targets["classify_http"]: self.http_port}
        for name in (targets["ingest_review"], targets["on_review_labeled"]):
            port = free_port()
            while port in ports.values():
                port = free_port()
            ports[name] = port
        common: dict[str, Any] = {"startup_timeout": self.startup_timeout, "log_dir": self.log_dir}
        self.pubsub = PubSubEmulator(project=self.project, **common)
        self.firestore = FirestoreEmulator(project=self.project, functions_emulator=f"{HOST}:"
                                           f"{ports[targets['on_review_labeled']]}", **common)
        with self.step("Pub/Sub and Firestore emulators"):
            self._start_all([self.pubsub, self.firestore])
        env = {**self.pubsub.env(), **self.firestore.env(), "GOOGLE_CLOUD_PROJECT": self.project,
               "ORT_INTRA_OP_THREADS": os.environ.get("ORT_INTRA_OP_THREADS", "1"),
               "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO")}
        self.functions = {name: FunctionServer(name, env=env, port=port, **common) for name, port in ports.items()}
        # Wiring needs only the addresses, and the emulators' first answers are slow (JIT warm-up, ~10 s for the
        # first trigger on a busy machine): do it while the functions start.
        wiring = [_background(self.wire_pubsub), _background(self.register_trigger)]
        with self.step("functions " + ", ".join(f"{name} :{port}" for name, port in ports.items())):
            self._start_all(list(self.functions.values()))
        with self.step("topics, subscriptions and the Firestore trigger"):
            for join in wiring:
                join()
            if self.relay is not None:
                self.relay.start()
        self.write_state("warming")
        with self.step("model warm-up through classify_http"):
            _background(self.warm_up)()
        self.write_state("ready")

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        started = time.monotonic()
        self.console.print(f"  starting {what} ...", highlight=False)
        yield
        checkpoint()
        self.console.print(f"  [green]ok[/] {what} ({time.monotonic() - started:.1f} s)", highlight=False)

    def _start_all(self, processes: Sequence[ManagedProcess]) -> None:
        """Start in parallel (each waits for its readiness probe); the first failure is raised."""
        pool = ThreadPoolExecutor(max_workers=len(processes), thread_name_prefix="start")
        try:
            futures = [pool.submit(process.start) for process in processes]
            while wait(futures, timeout=0.25).not_done:
                checkpoint()
            errors = []
            for future in futures:
                try:
                    future.result()
                except EmulatorError as exc:
                    errors.append(exc)
            if errors:
                raise StartupError(str(errors[0]))
            self.started += processes
        except BaseException:
            for process in processes:  # a readiness wait notices its process is gone and returns
                process.stop()
            raise
        finally:
            pool.shutdown(wait=True)

    def wire_pubsub(self) -> None:
        """Topics and subscriptions, with Terraform's names and delivery settings (``shared/names.json``)."""
        assert self.pubsub is not None
        n, s = names(), self.settings
        ingest = self.functions[n["functions"]["ingest_review"]]
        for topic in (n["ingest_topic"], s.followup_topic, n["dead_letter_topic"]):
            self.pubsub.create_topic(topic)
        # A pull subscription with Terraform's dead-letter policy, pushed by our relay with Terraform's retry
        # policy: the emulator's own push stalls when given a retry policy (local/push_relay.py).
        self.pubsub.create_subscription(
            n["ingest_subscription"], n["ingest_topic"], ack_deadline_seconds=n["ack_deadline_seconds"],
            dead_letter_topic=n["dead_letter_topic"], max_delivery_attempts=n["max_delivery_attempts"])
        self.relay = PushRelay(self.pubsub, n["ingest_subscription"], self.pubsub.push_endpoint(ingest,
                                                                                                 n["ingest_topic"]),
                               min_backoff_seconds=n["min_retry_backoff_seconds"],
                               max_backoff_seconds=n["max_retry_backoff_seconds"],
                               ack_deadline_seconds=n["ack_deadline_seconds"])
        self.pubsub.create_subscription(n["dead_letter_subscription"], n["dead_letter_topic"],
                                        ack_deadline_seconds=n["ack_deadline_seconds"])
        self.pubsub.create_subscription(view_subscription(s.followup_topic), s.followup_topic)

    def register_trigger(self) -> None:
        """Make the Firestore emulator POST ``document.written`` events of reviews to ``on_review_labeled``."""
        assert self.firestore is not None
        try:
            register_written_trigger(self.firestore.address, self.project, names()["functions"]["on_review_labeled"],
                                     self.settings.reviews_collection, timeout=max(60.0, self.startup_timeout))
        except (RuntimeError, OSError) as exc:
            raise StartupError(f"the Firestore emulator did not take the document trigger ({exc}); see "
                               f"{self.firestore.log_path}") from None

    def warm_up(self) -> None:
        http = self.functions[names()["functions"]["classify_http"]]
        try:
            response = requests.get(http.url, params={"review": "warm-up"}, timeout=max(self.startup_timeout, 60))
        except requests.RequestException as exc:
            raise StartupError(f"classify_http did not answer the warm-up request ({exc}); see {http.log_path}") \
                from None
        if response.status_code != 200:
            details = [e.get("detail") for e in http.structured_logs() if e.get("detail")]
            reason = details[-1] if details else response.text[:200]
            raise StartupError(f"the model cannot serve ({reason}); fix the artifact or point MODEL_DIR at a "
                               f"working one (log: {http.log_path})")
        self.model = dict(response.json().get("model") or {})

    # -- state ------------------------------------------------------------------------------------
    def write_state(self, phase: str) -> None:
        """The file ``local.publish`` finds the stack by; written atomically, rewritten on every run."""
        n = names()
        state = {
            "pid": os.getpid(), "phase": phase, "project": self.project, "log_dir": str(self.log_dir),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "pubsub": self.pubsub.address if self.pubsub else None,
            "firestore": self.firestore.address if self.firestore else None,
            "functions": {name: server.url for name, server in self.functions.items()},
            "topics": {"ingest": n["ingest_topic"], "followup": self.settings.followup_topic,
                       "dead_letter": n["dead_letter_topic"]},
            "subscriptions": {"ingest": n["ingest_subscription"], "dead_letter": n["dead_letter_subscription"],
                              "followup_view": view_subscription(self.settings.followup_topic)},
            "processes": self.process_ids(),
            "logs": {process.name: str(process.log_path) for process in self.processes},
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self.state_path)

    def process_ids(self) -> dict[str, int]:
        ids = {}
        for key, process in (("pubsub", self.pubsub), ("firestore", self.firestore), *self.functions.items()):
            if process is not None and process.pid is not None:
                ids[key] = process.pid
        return ids

    def remove_state(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.state_path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                self.state_path.unlink()

    def dead(self) -> ManagedProcess | None:
        """A process that was started and has exited since (the stack cannot go on without it)."""
        for process in self.started:
            if not process.running:
                return process
        return None

    # -- stop -------------------------------------------------------------------------------------
    def stop(self) -> None:
        """The relay, then the functions (nothing left to deliver to), then the emulators (whole process groups)."""
        self.started.clear()
        if self.relay is not None:
            self.relay.stop()
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="stop") as pool:
            list(pool.map(lambda p: p.stop(), list(self.functions.values())))
        for process in (self.pubsub, self.firestore):
            if process is not None:
                process.stop()
        self.remove_state()


def check_alive(stack: Stack) -> None:
    dead = stack.dead()
    if dead is not None:
        raise StartupError(f"{dead.name} exited unexpectedly - last log line: {dead.last_log_line()!r} "
                           f"(log: {dead.log_path})")
