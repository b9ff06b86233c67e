"""The sample run of ``make run``: publish the bundled samples phase by phase and wait for outcomes, not for time.

Every sample ends as a labeled review or a rejected event, and every follow-up that
``shared.followup_rule.decide`` calls for (the product's own rule) is in Firestore, notified
when open, before the next phase (edits) is published and before the summary is printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from local.emulators import PubSubEmulator
from local.live import Display, Monitor
from local.publish import Entry, publish
from local.services import SUMMARY_FILE, Stack, check_alive
from local.view import Snapshot, Summary, render_summary, summarize
from shared.config import Settings, names

POLL_SECONDS = 0.5


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
