"""The whole system on this machine, on the real emulators, in one command.

    python -m local.stack [--exit-after-samples] [--samples FILE] [--logs DIR] [--http-port 8080]

What it brings up, in order: the Pub/Sub and Firestore emulators (Firestore through its
own launcher with ``--functions_emulator``, so that it fires triggers); the three
functions on functions-framework (``classify_http`` on a fixed port so ``curl
localhost:8080`` works, the two event functions on free ports); the topics and
subscriptions, with the names and delivery settings Terraform uses (``shared/names.json``,
read here, never copied); the ``document.written`` trigger that makes the Firestore
emulator call ``on_review_labeled`` itself. Then it publishes the bundled samples, shows
each review, rejection and follow-up as it lands, prints a summary, and keeps running so
people can publish more (``python -m local.publish``) and query the HTTP function.

Why these choices:
- Every child runs in its own process group (``local.emulators``), so Ctrl-C, SIGTERM,
  SIGHUP or a startup failure stops the JVMs too; signals are ignored while stopping, so
  a second Ctrl-C cannot leave orphans behind. Ports are picked afresh on every run and
  the state file is rewritten, so a second run needs no clean-up; a stale state file from
  a run that was killed outright has its recorded process groups stopped first.
- Startup failures are one line saying what is wrong and what to do (exit status 1),
  checked before anything starts where possible (Java, gcloud, the emulator components,
  the HTTP port), and the model is warmed through the HTTP function, which both makes the
  first ``curl`` fast and turns an unusable artifact into one clear line instead of
  every review retrying into the dead-letter topic.
- The sample run waits for outcomes, not for time: every sample ends as a labeled review
  or a rejected event, and every follow-up that ``shared.followup_rule.decide`` calls for (the
  product's own rule) is in Firestore, notified when open, before the next phase (edits)
  is published and before the summary is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import requests
from rich.console import Console
from rich.live import Live

from local.emulators import (
    DEFAULT_PROJECT,
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
from local.publish import DEFAULT_STATE, Entry, PublishError, publish, read_jsonl
from local.view import ChangeLog, FirestoreReader, Snapshot, Summary, render, render_summary, summarize
from shared.config import PROJECT_ROOT, Settings, load_settings, names
from shared.errors import ConfigError

DEFAULT_HTTP_PORT = 8080
DEFAULT_LOG_DIR = PROJECT_ROOT / "build" / "local" / "logs"
DEFAULT_SAMPLES = Path(__file__).resolve().with_name("samples.jsonl")
SUMMARY_FILE = "summary.json"
LOG_PATTERNS = ("pubsub-emulator-*.log", "firestore-emulator-*.log", "functions-framework-*.log", SUMMARY_FILE)
POLL_SECONDS = 0.5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
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
        self.pubsub.create_subscription(
            n["ingest_subscription"], n["ingest_topic"], push_endpoint=self.pubsub.push_endpoint(ingest,
                                                                                                 n["ingest_topic"]),
            # No retry policy here, only dead-lettering: with one, the Pub/Sub emulator was seen to stop
            # redelivering failed pushes for minutes; production (Terraform) keeps the backoff from names.json.
            ack_deadline_seconds=n["ack_deadline_seconds"], dead_letter_topic=n["dead_letter_topic"],
            max_delivery_attempts=n["max_delivery_attempts"])
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
        """Functions first (nothing left to deliver to), then the emulators; each as a whole process group."""
        self.started.clear()
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="stop") as pool:
            list(pool.map(lambda p: p.stop(), list(self.functions.values())))
        for process in (self.pubsub, self.firestore):
            if process is not None:
                process.stop()
        self.remove_state()


# --- watching Firestore and Pub/Sub ------------------------------------------------------------

class Monitor:
    """Fills one ``Snapshot`` from Firestore and the two pull subscriptions, every poll."""

    def __init__(self, stack: Stack) -> None:
        assert stack.pubsub is not None and stack.firestore is not None
        self.stack = stack
        self.pubsub = stack.pubsub
        self.reader = FirestoreReader(stack.firestore.address, stack.project, stack.settings)
        self.snapshot = Snapshot()
        self.error: str | None = None

    def poll(self) -> Snapshot:
        checkpoint()
        n = names()
        try:
            self.reader.read(self.snapshot)
            for message in self.pubsub.pull(view_subscription(self.stack.settings.followup_topic)):
                self.snapshot.notifications[message["messageId"]] = message
            # Peeked, not acknowledged: the hold subscription keeps dead letters for whoever inspects them.
            for message in self.pubsub.pull(n["dead_letter_subscription"], ack=False):
                self.snapshot.dead_letters[message["messageId"]] = message
            self.error = None
        except Exception as exc:  # a slow emulator: show it and try again on the next poll
            self.error = f"reading the emulators failed, retrying: {type(exc).__name__}: {str(exc)[:120]}"
        return self.snapshot

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.reader.close()


class Display:
    """A live table on a terminal, one line per change otherwise."""

    def __init__(self, console: Console, header: str) -> None:
        self.console = console
        self.header = header
        self.live: Live | None = None
        self.changes = ChangeLog()

    def __enter__(self) -> Display:
        if self.console.is_terminal:
            self.live = Live(console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None

    def update(self, snapshot: Snapshot, progress: str | None) -> None:
        if self.live is not None:
            self.live.update(render(snapshot, self.header, progress))
            return
        for line in self.changes.lines(snapshot):
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def print(self, *items: Any) -> None:
        (self.live.console if self.live is not None else self.console).print(*items, highlight=False)


# --- the sample run ----------------------------------------------------------------------------

def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class SampleRun:
    """Publishes the samples phase by phase and tells when each phase has fully settled."""

    entries: list[Entry]
    settings: Settings
    message_ids: dict[int, str] = field(default_factory=dict)  # index in entries -> message id
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)  # reviews as the last phase left them
    previous_followups: set[str] = field(default_factory=set)
    final: dict[int, str | None] = field(default_factory=dict)  # index -> outcome when its phase closed
    started: float = 0.0
    finished: float = 0.0

    @property
    def phases(self) -> list[int]:
        return sorted({entry.phase for entry in self.entries})

    def indices(self, phase: int) -> list[int]:
        return [i for i, entry in enumerate(self.entries) if entry.phase == phase]

    def publish(self, pubsub: PubSubEmulator, phase: int, topic: str) -> None:
        chosen = self.indices(phase)
        if not self.started:
            self.started = time.monotonic()
        ids = publish(pubsub, [self.entries[i] for i in chosen], topic)
        self.message_ids.update(zip(chosen, ids, strict=True))

    def outcome(self, index: int, snapshot: Snapshot) -> str | None:
        """``labeled``, ``rejected:<code>``, ``dead-lettered`` or None (no outcome yet)."""
        entry, message_id = self.entries[index], self.message_ids.get(index)
        if message_id is None:
            return None
        rejected = snapshot.rejected.get(message_id)
        if rejected is not None:
            return f"rejected:{rejected.get('reason_code')}"
        review = snapshot.reviews.get(entry.review_id or "")
        if review is not None and entry.text is not None and review.get("text_sha256") == sha256_text(entry.text):
            return "labeled"
        encoded = entry.data
        if any(_message_data(m) == encoded for m in snapshot.dead_letters.values()):
            return "dead-lettered"
        return None

    def pending_followups(self, phase: int, snapshot: Snapshot) -> list[str]:
        """Follow-up work the product's rule calls for in this phase that Firestore does not show yet."""
        from shared.followup_rule import Action, decide

        waiting = []
        seen: set[str] = set()
        for index in self.indices(phase):
            review_id = self.entries[index].review_id
            review = snapshot.reviews.get(review_id or "")
            if review_id is None or review is None or review_id in seen:
                continue
            seen.add(review_id)
            action = decide(self.previous.get(review_id), review, self.settings).action
            followup = snapshot.followups.get(review_id)
            if action in (Action.OPEN, Action.NEEDS_REVIEW):
                if followup is None or followup.get("text_sha256") != review.get("text_sha256"):
                    waiting.append(f"follow-up for {review_id}")
                elif followup.get("status") == "open" and "pubsub" not in (followup.get("notifications") or {}):
                    waiting.append(f"notification for {review_id}")
            elif action is Action.RESOLVE_BY_EDIT and review_id in self.previous_followups and (
                    followup is None or followup.get("status") != "resolved_by_edit"):
                waiting.append(f"resolution of the follow-up for {review_id}")
        notified = sum(1 for doc in snapshot.followups.values() if "pubsub" in (doc.get("notifications") or {}))
        if len(snapshot.notifications) < notified:
            waiting.append(f"{notified - len(snapshot.notifications)} notification(s) on the follow-up topic")
        return waiting

    def pending(self, phase: int, snapshot: Snapshot) -> list[str]:
        waiting = [self.entries[i].case or f"line {self.entries[i].line}" for i in self.indices(phase)
                   if self.outcome(i, snapshot) is None]
        return waiting or self.pending_followups(phase, snapshot)

    def close_phase(self, phase: int, snapshot: Snapshot) -> None:
        """Remember how the phase ended: a later edit replaces the text an earlier sample is matched by."""
        for index in self.indices(phase):
            self.final[index] = self.outcome(index, snapshot)
        self.previous = {key: dict(value) for key, value in snapshot.reviews.items()}
        self.previous_followups = set(snapshot.followups)

    def results(self, snapshot: Snapshot) -> list[dict[str, Any]]:
        rows = []
        for index, entry in enumerate(self.entries):
            outcome = self.final.get(index) or self.outcome(index, snapshot)
            wanted = "labeled" if entry.expect == "labeled" else f"rejected:{entry.reason_code}"
            rows.append({"line": entry.line, "case": entry.case, "phase": entry.phase, "review_id": entry.review_id,
                         "message_id": self.message_ids.get(index), "expect": wanted, "outcome": outcome,
                         "ok": outcome == wanted, "followup_expected": entry.followup})
        return rows


def _message_data(message: dict[str, Any]) -> bytes:
    import base64

    with contextlib.suppress(ValueError, TypeError):
        return base64.b64decode(message.get("data") or "")
    return b""


def run_samples(stack: Stack, monitor: Monitor, display: Display, run: SampleRun, timeout: float) -> bool:
    """Publish phase by phase, waiting for each to settle; True when everything settled in time."""
    assert stack.pubsub is not None
    topic = names()["ingest_topic"]
    complete = True
    for phase in run.phases:
        run.publish(stack.pubsub, phase, topic)
        count = len(run.indices(phase))
        deadline = time.monotonic() + timeout
        while True:
            check_alive(stack)
            snapshot = monitor.poll()
            waiting = run.pending(phase, snapshot) if monitor.error is None else ["the emulators"]
            label = "edits" if phase > 1 else "samples"
            progress = (f"sample run: phase {phase}/{len(run.phases)} ({count} {label} published), waiting for "
                        f"{len(waiting)}: {', '.join(waiting[:4])}{' ...' if len(waiting) > 4 else ''}"
                        if waiting else f"sample run: phase {phase}/{len(run.phases)} settled")
            display.update(snapshot, monitor.error or progress)
            if not waiting:
                break
            if time.monotonic() > deadline:
                display.print(f"[yellow]sample run: phase {phase} did not settle within {timeout:.0f} s; still "
                              f"waiting for: {', '.join(waiting)} (see the logs in {stack.log_dir})[/]")
                complete = False
                break
            time.sleep(POLL_SECONDS)
        run.close_phase(phase, snapshot)
    run.finished = time.monotonic()
    return complete


def check_alive(stack: Stack) -> None:
    dead = stack.dead()
    if dead is not None:
        raise StartupError(f"{dead.name} exited unexpectedly - last log line: {dead.last_log_line()!r} "
                           f"(log: {dead.log_path})")


def report(stack: Stack, display: Display, run: SampleRun, snapshot: Snapshot, complete: bool) -> bool:
    """Print the summary, write ``summary.json`` beside the logs; True when every sample ended as expected."""
    summary: Summary = summarize(snapshot, len(run.entries), run.finished - run.started)
    results = run.results(snapshot)
    display.print(render_summary(summary))
    wrong = [r for r in results if not r["ok"]]
    for row in wrong:
        display.print(f"[red]sample {row['case']} (line {row['line']}): expected {row['expect']}, got "
                      f"{row['outcome'] or 'no outcome'}[/]")
    missed = [r["review_id"] for r in results if r["followup_expected"] and r["review_id"] not in snapshot.followups]
    if missed:
        display.print(f"[yellow]clearly negative samples without a follow-up (the model disagrees?): "
                      f"{', '.join(missed)}[/]")
    document = {"summary": summary.as_dict(), "complete": complete, "model": stack.model, "samples": results,
                "processes": stack.process_ids(), "firestore": {
                    stack.settings.reviews_collection: snapshot.reviews,
                    stack.settings.rejected_collection: snapshot.rejected,
                    stack.settings.followups_collection: snapshot.followups},
                "notifications": len(snapshot.notifications), "dead_letters": len(snapshot.dead_letters)}
    path = stack.log_dir / SUMMARY_FILE
    path.write_text(json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n", encoding="utf-8")
    display.print(f"summary with every sample's outcome and the Firestore documents: {path}")
    return complete and not wrong


# --- main --------------------------------------------------------------------------------------

_interrupted = threading.Event()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def checkpoint() -> None:
    """Stop here if a stop signal came and its exception was lost.

    The kernel may deliver a signal to any thread (the start workers, gRPC's), and Python
    then runs the handler in the main thread only when that thread next runs bytecode; an
    exception raised while it is inside a library callback can be swallowed there. So every
    blocking wait in the main thread has a short timeout, and every loop calls this.
    """
    if _interrupted.is_set():
        raise KeyboardInterrupt


def _ignore(signum: int, frame: FrameType | None) -> None:
    print("stopping, please wait ...", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--exit-after-samples", action="store_true",
                        help="stop everything once the sample run has settled (exit 0 when every sample ended "
                             "as expected)")
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES, help="JSONL file of samples to publish")
    parser.add_argument("--no-samples", action="store_true", help="start the stack and publish nothing")
    parser.add_argument("--logs", type=Path, default=DEFAULT_LOG_DIR, help="folder for every component's log")
    parser.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT, help="port of the HTTP function")
    parser.add_argument("--project", default=DEFAULT_PROJECT, help="the local project id")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="where the stack writes its ports")
    parser.add_argument("--startup-timeout", type=float, default=120.0,
                        help="seconds each emulator or function may take to become ready")
    parser.add_argument("--sample-timeout", type=float, default=300.0,
                        help="seconds each phase of the sample run may take to settle")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Not a terminal (a log, CI, a test): wide lines, never wrapped mid-path.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    err = Console(stderr=True, highlight=False)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupt)
    stack: Stack | None = None
    monitor: Monitor | None = None
    code = 0
    try:
        settings = load_settings()
        entries = [] if args.no_samples else read_jsonl(args.samples, settings.max_review_chars)
        log_dir = args.logs.resolve()
        preflight(args.http_port)
        check_previous_run(args.state, console)
        log_dir.mkdir(parents=True, exist_ok=True)
        clean_logs(log_dir)
        console.print(f"[bold]reviewsense local stack[/] (project {args.project}); every component logs to "
                      f"[bold]{log_dir}[/]")
        stack = Stack(project=args.project, http_port=args.http_port, log_dir=log_dir, state_path=args.state,
                      startup_timeout=args.startup_timeout, settings=settings, console=console)
        stack.start()
        http = stack.functions[names()["functions"]["classify_http"]].url
        console.print(f"[bold green]ready[/]: model {stack.model.get('name')} {stack.model.get('version')}; "
                      f"state in {args.state}")
        for process in stack.processes:
            console.print(f"  {process.name:<38} {process.address:<16} log {process.log_path}")
        console.print(
            f"  try: curl -s {http} -H 'Content-Type: application/json' -d '{{\"reviews\": [\"Broke after two "
            f"days.\"]}}'\n  publish more: make publish TEXT=\"...\"  or  make publish FILE=reviews.jsonl\n"
            "  Ctrl-C stops everything")
        monitor = Monitor(stack)
        header = (f"project {args.project} · HTTP {http} · logs {log_dir} · make publish TEXT=\"...\" · "
                  "Ctrl-C stops everything")
        with Display(console, header) as display:
            if entries:
                run = SampleRun(entries, settings)
                complete = run_samples(stack, monitor, display, run, args.sample_timeout)
                ok = report(stack, display, run, monitor.poll(), complete)
                if args.exit_after_samples:
                    return 0 if ok else 1
            elif args.exit_after_samples:
                return 0
            stack.write_state("running")
            while True:
                check_alive(stack)
                snapshot = monitor.poll()
                display.update(snapshot, monitor.error or "running: publish more, or Ctrl-C to stop")
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        console.print("\nstopping the stack ...")
    except (StartupError, EmulatorError, PublishError, ConfigError) as exc:
        err.print(f"local stack: {exc}", markup=False, soft_wrap=True)
        code = 1
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, _ignore)
        if monitor is not None:
            monitor.close()
        if stack is not None:
            stack.stop()
            console.print(f"stopped; logs kept in {stack.log_dir}")
    return code


if __name__ == "__main__":
    sys.exit(main())
