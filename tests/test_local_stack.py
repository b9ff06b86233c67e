"""The local stack, started as the user starts it (``python -m local.stack``), on the real emulators.

Why these checks: the stack's promise is that one command brings up the whole system and
that its summary tells the truth. So the sample run is judged against what Firestore holds
at the end (``summary.json`` carries the documents the stack read just before it stopped
the emulators), and the Firestore content is judged against the model itself: each valid
sample is classified here with the shipped classifier and the follow-up rule's bands are
applied, rather than comparing with hand-written labels, because a retrained model may
move a mixed or sarcastic review to another label. Only the clearly negative samples have
a fixed expectation (a follow-up), and only for a released model.

With a stand-in model (a pre-release version such as ``0.0.0-smoke``) every score sits
near 1/3, so the default thresholds would open no follow-up at all; the test then sets
FOLLOWUP_* between the scores the model gives the samples, so every band (open, high
priority, needs_review, none) is still exercised end to end.

Then the cleanup promise: the process groups the stack started are gone, the state file is
removed and the ports are free. Startup failures are checked to be one line each.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.emulators import free_port
from local.publish import Entry, read_jsonl
from shared.config import Settings, load_settings
from shared.followup_rule import Action, band, decide

pytestmark = pytest.mark.emulator

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "local" / "samples.jsonl"
RUN_TIMEOUT = 900  # a busy 2-core machine; the run itself takes about a minute
# Scores this close to a threshold (or labels this close to the runner-up) are not called: the functions
# classify with the same model, one thread, one text at a time, so they agree to the last digit on this
# machine; the margin only absorbs a different CPU kernel.
MARGIN = 1e-4


def stack(*args: str, env: Mapping[str, str] | None = None, timeout: float = RUN_TIMEOUT
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "local.stack", *args], cwd=ROOT, env=dict(env or os.environ),
                          capture_output=True, text=True, timeout=timeout)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- what the model says -----------------------------------------------------------------------

@dataclass(frozen=True)
class Said:
    label: str
    score: float
    margin: float  # top probability minus the runner-up


def classify(settings: Settings, texts: list[str]) -> dict[str, Said]:
    from shared.classifier import Classifier

    classifier = Classifier.load(settings.model_dir, threads=1, max_chars=settings.max_review_chars)
    said = {}
    for text in dict.fromkeys(texts):  # one at a time, as ingest_review classifies
        prediction = classifier.classify([text])[0]
        top, second = sorted(prediction.scores.values(), reverse=True)[:2]
        said[text] = Said(prediction.label, prediction.score, top - second)
    return said


def is_release(version: str) -> bool:
    return "-" not in version  # 1.2.0 is a release; 0.0.0-smoke a stand-in


def standin_thresholds(scores: list[float]) -> dict[str, str]:
    """Thresholds between the stand-in's negative scores: some below, some needs_review, some open and high."""
    values = sorted(set(scores))
    gaps = [i for i in range(len(values) - 1) if values[i + 1] - values[i] > 4 * MARGIN]
    if len(gaps) < 3:
        return {}

    def between(i: int) -> str:
        return f"{(values[i] + values[i + 1]) / 2:.6f}"

    return {"FOLLOWUP_UNSURE_MIN": between(gaps[0]), "FOLLOWUP_THRESHOLD": between(gaps[len(gaps) // 2]),
            "FOLLOWUP_HIGH_PRIORITY": between(gaps[-1])}


# --- the run -----------------------------------------------------------------------------------

@dataclass
class Run:
    result: subprocess.CompletedProcess[str]
    summary: dict[str, Any]
    settings: Settings
    said: dict[str, Said]
    model_version: str
    entries: list[Entry]
    logs: Path
    state: Path
    http_port: int

    def collection(self, name: str) -> dict[str, dict[str, Any]]:
        documents: dict[str, dict[str, Any]] = self.summary["firestore"][name]
        return documents

    @property
    def reviews(self) -> dict[str, dict[str, Any]]:
        return self.collection(self.settings.reviews_collection)

    @property
    def rejected(self) -> dict[str, dict[str, Any]]:
        return self.collection(self.settings.rejected_collection)

    @property
    def followups(self) -> dict[str, dict[str, Any]]:
        return self.collection(self.settings.followups_collection)

    def near_threshold(self, score: float) -> bool:
        s = self.settings
        return any(abs(score - t) < MARGIN for t in (s.followup_unsure_min, s.followup_threshold,
                                                       s.followup_high_priority))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("local-stack")
    env = {**os.environ, "ORT_INTRA_OP_THREADS": "1", "LOG_LEVEL": "INFO"}
    settings = load_settings(env)
    entries = read_jsonl(SAMPLES, settings.max_review_chars)
    texts = [e.text for e in entries if e.expect == "labeled" and e.text is not None]
    said = classify(settings, texts)
    from shared.artifact import load_manifest

    version = load_manifest(settings.model_dir).version
    if not is_release(version):
        env.update(standin_thresholds([s.score for s in said.values() if s.label == "negative"]))
        settings = load_settings(env)
    http_port = free_port()
    logs, state = folder / "logs", folder / "stack.json"
    result = stack("--exit-after-samples", "--logs", str(logs), "--state", str(state), "--http-port", str(http_port),
                   "--startup-timeout", "300", env=env)
    summary_file = logs / "summary.json"
    assert summary_file.exists(), f"no summary (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr}"
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    yield Run(result, summary, settings, said, version, entries, logs, state, http_port)


def test_sample_run_exits_cleanly_and_names_its_logs(run: Run) -> None:
    assert run.result.returncode == 0, run.result.stdout[-3000:] + run.result.stderr
    assert str(run.logs) in run.result.stdout
    assert run.summary["complete"] is True
    assert sorted(p.name.split("-")[0] for p in run.logs.glob("*.log")) == sorted(
        ["firestore", "functions", "functions", "functions", "pubsub"])


def test_every_sample_ends_as_expected(run: Run) -> None:
    wrong = [r for r in run.summary["samples"] if not r["ok"]]
    assert not wrong
    assert len(run.summary["samples"]) == len(run.entries)


def test_valid_samples_are_labeled_as_the_model_says(run: Run) -> None:
    finals: dict[str, Entry] = {}
    for entry in run.entries:
        if entry.expect == "labeled" and entry.review_id:
            finals[entry.review_id] = entry  # the last phase wins (an edit)
    assert set(run.reviews) == set(finals)
    for review_id, entry in finals.items():
        document = run.reviews[review_id]
        assert entry.text is not None
        said = run.said[entry.text]
        assert document["status"] == "labeled"
        assert document["text_sha256"] == sha256(entry.text)
        assert abs(document["sentiment"]["score"] - said.score) < MARGIN, review_id
        if said.margin > MARGIN:
            assert document["sentiment"]["label"] == said.label, review_id
        edits = sum(1 for e in run.entries if e.review_id == review_id and e.expect == "labeled") - 1
        assert document["edited"] is (edits > 0)
        assert document["edit_count"] == edits


def test_malformed_samples_are_rejected_with_their_reason(run: Run) -> None:
    by_case = {r["case"]: r for r in run.summary["samples"]}
    malformed = [e for e in run.entries if e.expect == "rejected"]
    assert len(malformed) >= 8
    for entry in malformed:
        assert entry.case is not None
        message_id = by_case[entry.case]["message_id"]
        assert run.rejected[message_id]["reason_code"] == entry.reason_code, entry.case
    assert len(run.rejected) == len(malformed)


def expected_followups(run: Run) -> tuple[dict[str, str | None], set[str]]:
    """What the follow-up rule makes of each review's versions, per the model: status (or None), and the
    reviews too close to a threshold to call."""
    versions: dict[str, list[tuple[dict[str, Any], Said]]] = {}
    for entry in sorted(run.entries, key=lambda e: e.phase):
        if entry.expect == "labeled" and entry.review_id and entry.text is not None:
            said = run.said[entry.text]
            versions.setdefault(entry.review_id, []).append(({
                "status": "labeled", "text_sha256": sha256(entry.text),
                "sentiment": {"label": said.label, "score": said.score}}, said))
    expected: dict[str, str | None] = {}
    unsure: set[str] = set()
    for review_id, history in versions.items():
        if any(run.near_threshold(said.score) or said.margin < MARGIN for _, said in history):
            unsure.add(review_id)
        status: str | None = None
        old = None
        for new, _ in history:
            action = decide(old, new, run.settings).action
            if action in (Action.OPEN, Action.NEEDS_REVIEW):
                status = "open" if action is Action.OPEN or status == "open" else "needs_review"
            elif action is Action.RESOLVE_BY_EDIT and status in ("open", "needs_review"):
                status = "resolved_by_edit"
            old = new
        expected[review_id] = status
    return expected, unsure


def test_followups_open_where_the_rule_says(run: Run) -> None:
    expected, unsure = expected_followups(run)
    assert any(status == "open" for status in expected.values()), "the samples must exercise open follow-ups"
    for review_id, status in expected.items():
        if review_id in unsure:
            continue
        document = run.followups.get(review_id)
        assert (document or {}).get("status") == status, review_id
        if status == "open":
            assert document is not None
            assert "pubsub" in document["notifications"], review_id
            review = run.reviews[review_id]
            high = review["sentiment"]["score"] >= run.settings.followup_high_priority
            assert document["priority"] == ("high" if high else "normal"), review_id
            assert 1 <= len(document["evidence"]) <= 3
    assert set(run.followups) <= set(expected)


def test_clearly_negative_samples_open_followups(run: Run) -> None:
    clear = [e for e in run.entries if e.followup]
    assert len(clear) >= 3
    if not is_release(run.model_version):
        pytest.skip(f"stand-in model {run.model_version}: its labels are noise")
    for entry in clear:
        assert entry.text is not None and entry.review_id is not None
        assert band({"status": "labeled", "sentiment": {"label": run.said[entry.text].label,
                                                        "score": run.said[entry.text].score}},
                    run.settings) is Action.OPEN, f"the model does not find {entry.case} {entry.review_id} negative"
        assert entry.review_id in run.followups


def test_summary_matches_firestore(run: Run) -> None:
    summary = run.summary["summary"]
    statuses = [d["status"] for d in run.followups.values()]
    assert summary["labeled"] == len(run.reviews)
    assert summary["edited"] == sum(1 for d in run.reviews.values() if d["edited"])
    assert summary["rejected"] == len(run.rejected)
    assert summary["followups_open"] == statuses.count("open")
    assert summary["followups_needs_review"] == statuses.count("needs_review")
    assert summary["followups_resolved_by_edit"] == statuses.count("resolved_by_edit")
    assert summary["notifications"] == sum(1 for d in run.followups.values() if "pubsub" in d["notifications"])
    assert summary["messages"] == len(run.entries)
    assert summary["elapsed_s"] > 0 and summary["reviews_per_s"] > 0
    assert summary["dead_letters"] == 0


def listening(port: int) -> bool:
    """Whether a server holds the port (connections in TIME_WAIT do not count: a server can bind over them)."""
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def test_nothing_is_left_running(run: Run) -> None:
    processes = run.summary["processes"]
    assert set(processes) == {"pubsub", "firestore", "classify_http", "ingest_review", "on_review_labeled"}
    for name, pid in processes.items():
        assert not _group_members(pid), f"{name} (process group {pid}) outlived the stack"
    assert not run.state.exists()
    assert not listening(run.http_port)
    for log in run.logs.glob("*.log"):
        assert not listening(int(log.stem.rsplit("-", 1)[1])), log.name


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_running_stack_stops_cleanly_on_a_signal(tmp_path: Path, signum: int) -> None:
    state = tmp_path / "stack.json"
    process = subprocess.Popen([sys.executable, "-m", "local.stack", "--no-samples", "--http-port", str(free_port()),
                                "--logs", str(tmp_path / "logs"), "--state", str(state)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (state.exists() and json.loads(state.read_text() or "{}").get("phase") == "running"):
            assert process.poll() is None and time.monotonic() < deadline, "the stack did not come up"
            time.sleep(0.5)
        children = json.loads(state.read_text())["processes"]
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)  # the hang this guards against ignored SIGTERM for good
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "stopped; logs kept in" in out
    for name, pid in children.items():
        assert not _group_members(pid), f"{name} (process group {pid}) outlived the stack"
    assert not state.exists()


# --- startup failures: one line each -----------------------------------------------------------

def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _path_with(tmp_path: Path, *tools: str) -> dict[str, str]:
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in tools:
        found = next(Path(d) / tool for d in os.environ["PATH"].split(os.pathsep) if (Path(d) / tool).exists())
        (folder / tool).symlink_to(found)
    return {**os.environ, "PATH": str(folder)}


def test_missing_java_is_one_line(tmp_path: Path) -> None:
    line = _one_line(stack("--logs", str(tmp_path / "logs"), "--state", str(tmp_path / "s.json"),
                           env=_path_with(tmp_path, "gcloud"), timeout=120))
    assert "java not found" in line and "install" in line


def test_missing_gcloud_is_one_line(tmp_path: Path) -> None:
    line = _one_line(stack("--logs", str(tmp_path / "logs"), "--state", str(tmp_path / "s.json"),
                           env=_path_with(tmp_path, "java"), timeout=120))
    assert "gcloud not found" in line and "Google Cloud SDK" in line


def test_busy_http_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _one_line(stack("--logs", str(tmp_path / "logs"), "--state", str(tmp_path / "s.json"),
                               "--http-port", str(port), timeout=120))
    assert f"port {port}" in line and "busy" in line and "--http-port" in line


def test_emulator_never_ready_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    line = _one_line(stack("--logs", str(logs), "--state", str(tmp_path / "s.json"), "--http-port", str(free_port()),
                           "--startup-timeout", "1", timeout=180))
    assert "was not ready after" in line and "emulator" in line
    ports = [int(log.stem.rsplit("-", 1)[1]) for log in logs.glob("*emulator-*.log")]
    assert ports
    for port in ports:
        assert not listening(port)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                assert f"--port={port} " not in command + " " and f":{port} " not in command + " ", command
