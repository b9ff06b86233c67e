"""Storms, duplicates, edits, a restart and poison, published to the local stack's ingestion topic.

Each scenario tags its messages (attribute ``scenario``) and its review ids, publishes, waits
until every message has an outcome (a label with the expected text, a rejection, or a dead
letter) or its time runs out, and counts: expected, found, lost, written more than once,
dead-lettered, wrongly rejected, and the time from the first publish to the last outcome.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from local.services import Stack
from reliability.observe import Observed, Observer, scenario_of
from shared.config import names


@dataclass
class PubSubResult:
    scenario: str
    what: str
    published: int
    expected: int  # outcomes expected (labels, or rejections for poison)
    found: int
    lost: int
    duplicated: int  # reviews written more often than the scenario calls for
    dead_lettered: int
    wrongly_rejected: int
    drain_seconds: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def clean(self) -> bool:
        return self.lost == self.duplicated == self.dead_lettered == self.wrongly_rejected == 0


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PubSubScenarios:
    def __init__(self, stack: Stack, observer: Observer, texts: list[str], timeout: float) -> None:
        assert stack.pubsub is not None
        self.stack = stack
        self.pubsub = stack.pubsub
        self.observer = observer
        self.texts = texts
        self.timeout = timeout
        self.topic = names()["ingest_topic"]

    # -- plumbing ---------------------------------------------------------------------------------
    def text(self, i: int, salt: str = "") -> str:
        base = self.texts[i % len(self.texts)]
        return f"{base} ({salt}{i})" if salt or i >= len(self.texts) else base

    def publish(self, scenario: str, messages: list[dict[str, Any]]) -> list[str]:
        tagged = [{"data": m.get("data", b""), "attributes": {**m.get("attributes", {}), "scenario": scenario}}
                  for m in messages]
        return self.pubsub.publish(self.topic, tagged)

    def review(self, scenario: str, review_id: str, text: str) -> dict[str, Any]:
        body = {"review_id": review_id, "text": text, "customer_id": f"cust-{review_id}", "source": scenario}
        return {"data": json.dumps(body, ensure_ascii=False).encode("utf-8")}

    def wait(self, settled: Callable[[Observed], bool]) -> tuple[Observed, float]:
        started = time.monotonic()
        while True:
            seen = self.observer.read()
            if settled(seen) or time.monotonic() - started > self.timeout:
                return seen, time.monotonic() - started
            time.sleep(0.5)

    def dead(self, seen: Observed, scenario: str) -> int:
        return sum(1 for m in seen.dead_letters if scenario_of(m) == scenario)

    def labels(self, scenario: str, wanted: dict[str, str], writes: int, started: float, published: int,
               what: str, note: str = "") -> PubSubResult:
        """Wait for every review in ``wanted`` (id -> text) to carry its text; count against ``writes`` each."""

        def settled(seen: Observed) -> bool:
            found = sum(1 for rid, text in wanted.items()
                        if seen.reviews.get(rid, {}).get("text_sha256") == sha256(text))
            return found + self.dead(seen, scenario) >= len(wanted)

        seen, _ = self.wait(settled)
        drained = time.monotonic() - started
        found = sum(1 for rid, text in wanted.items() if seen.reviews.get(rid, {}).get("text_sha256") == sha256(text))
        counts = self.observer.writes_per_review()
        rejected = sum(1 for doc in seen.rejected.values() if (doc.get("attributes") or {}).get("scenario") == scenario)
        return PubSubResult(scenario, what, published, len(wanted), found, len(wanted) - found,
                            sum(1 for rid in wanted if counts[rid] > writes), self.dead(seen, scenario), rejected,
                            round(drained, 1), note)

    # -- the scenarios ----------------------------------------------------------------------------
    def storm(self, n: int) -> PubSubResult:
        wanted = {f"storm-{i}": self.text(i, "storm ") for i in range(n)}
        started = time.monotonic()
        self.publish("storm", [self.review("storm", rid, text) for rid, text in wanted.items()])
        return self.labels("storm", wanted, 1, started, n, f"{n} new reviews in one burst")

    def duplicates(self, n: int) -> PubSubResult:
        """Each review published three times at once (new message ids, same content), then replayed once more."""
        wanted = {f"dup-{i}": self.text(i, "dup ") for i in range(n)}
        messages = [self.review("duplicates", rid, text) for rid, text in wanted.items()]
        started = time.monotonic()
        self.publish("duplicates", messages * 3)
        self.labels("duplicates", wanted, 1, started, 3 * n, "")
        self.publish("duplicates", messages)  # a replay after everything settled

        def all_handled(seen: Observed) -> bool:  # every delivery logged an outcome (mostly "duplicate")
            handled = sum(1 for e in self.observer.ingest.structured_logs()
                          if e.get("message") == "review ingested" and str(e.get("review_id")).startswith("dup-"))
            return handled + self.dead(seen, "duplicates") >= 4 * n

        self.wait(all_handled)
        return self.labels("duplicates", wanted, 1, started, 4 * n,
                           f"{n} reviews, each published 3 times at once, then replayed once after")

    def edits(self, n: int) -> PubSubResult:
        """Each review, then an edit of it (new text): two writes each, the edit's text last."""
        originals = {f"edit-{i}": self.text(i, "edit ") for i in range(n)}
        started = time.monotonic()
        self.publish("edits", [self.review("edits", rid, text) for rid, text in originals.items()])
        self.labels("edits", originals, 1, started, n, "")
        edited = {rid: f"Update: {text} Edited a week later." for rid, text in originals.items()}
        self.publish("edits", [self.review("edits", rid, text) for rid, text in edited.items()])
        return self.labels("edits", edited, 2, started, 2 * n, f"{n} reviews, then an edit of each")

    def restart(self, n: int, down_seconds: float = 7.0) -> PubSubResult:
        """A storm during which ``ingest_review`` is stopped for ``down_seconds`` and started again."""
        ingest = self.stack.functions[names()["functions"]["ingest_review"]]
        wanted = {f"restart-{i}": self.text(i, "restart ") for i in range(n)}
        relay = self.stack.relay
        failed_before = relay.counts.failed_attempts if relay else 0
        started = time.monotonic()
        self.publish("restart", [self.review("restart", rid, text) for rid, text in wanted.items()])
        time.sleep(1.0)
        ingest.stop()
        time.sleep(down_seconds)
        ingest.start()
        result = self.labels("restart", wanted, 1, started, n,
                             f"{n} new reviews; ingest_review stopped 1 s in, started again {down_seconds:g} s later")
        failed = (relay.counts.failed_attempts if relay else 0) - failed_before
        result.note = f"{failed} deliveries failed while it was down and were retried with backoff"
        return result

    def poison(self) -> PubSubResult:
        """Malformed messages: every one must be kept in rejected_events with its reason, none dead-lettered."""
        cases: list[tuple[str, dict[str, Any]]] = [
            ("not_json", {"data": b"this is not json"}),
            ("not_utf8", {"data": b"\xff\xfe\xfa not utf-8"}),
            ("bad_schema", {"data": b"[1, 2, 3]"}),
            ("missing_text", {"data": json.dumps({"review_id": "poison-1"}).encode()}),
            ("missing_text", {"data": json.dumps({"review_id": "poison-2", "text": "   "}).encode()}),
            ("bad_review_id", {"data": json.dumps({"review_id": "a/b", "text": "fine"}).encode()}),
            ("text_too_long", {"data": json.dumps({"review_id": "poison-3", "text": "x" * 6000}).encode()}),
            ("not_json", {"data": b'{"review_id": "poison-4", "text": "\\ud800 hi"}'}),
            ("not_json", {"data": b'{"review_id": "poison-5", "text": "ok", "n": ' + b"9" * 100_000 + b"}"}),
            ("not_json", {"data": b"[" * 100_000}),
            ("not_json", {"data": b'{"review_id": "poison-6", "review_id": "poison-7", "text": "twice"}'}),
            ("not_json", {"data": json.dumps({"review_id": "poison-8", "text": "deep",  # past the decoder's 32
                                              "metadata": _nested(600)}).encode()}),
            ("bad_schema", {"data": json.dumps({"review_id": "poison-10", "text": "deep",  # past our 10 levels
                                                "metadata": _nested(12)}).encode()}),
            ("metadata_too_large", {"data": json.dumps({"review_id": "poison-11", "text": "big",
                                                        "metadata": {"blob": "m" * 20_000}}).encode()}),
            ("empty_payload", {"data": b"", "attributes": {"review_id": "poison-9"}}),
        ]
        started = time.monotonic()
        ids = self.publish("poison", [message for _, message in cases])
        expected = dict(zip(ids, (reason for reason, _ in cases), strict=True))

        def settled(seen: Observed) -> bool:
            done = {mid for mid in expected if mid in seen.rejected}
            return len(done) + self.dead(seen, "poison") >= len(expected)

        seen, _ = self.wait(settled)
        drained = time.monotonic() - started
        found = [mid for mid in expected if mid in seen.rejected]
        wrong = [f"{expected[mid]} -> {seen.rejected[mid].get('reason_code')}" for mid in found
                 if seen.rejected[mid].get("reason_code") != expected[mid]]
        return PubSubResult("poison", f"{len(cases)} malformed messages (bad bytes, JSON bombs, lone surrogate, "
                            "duplicate keys, 600-deep metadata, attributes only)", len(cases), len(cases), len(found),
                            len(cases) - len(found), 0, self.dead(seen, "poison"), 0, round(drained, 1),
                            "reason differs: " + ", ".join(wrong) if wrong else "each kept with its expected reason")


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value
