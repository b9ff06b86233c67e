"""What the scenarios read back: Firestore documents, dead letters, follow-up messages, the ingest function's log.

Why the function's own log: "written twice" is invisible in the final document (an exact
rewrite leaves the same fields), but every write ``ingest_review`` makes is one
``review ingested`` line with its outcome, so counting ``created`` and ``edited`` lines per
review is counting writes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from local.emulators import FunctionServer, PubSubEmulator
from local.view import FirestoreReader, Snapshot
from shared.config import Settings

WRITES = ("created", "edited")


@dataclass
class Observed:
    reviews: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: dict[str, dict[str, Any]] = field(default_factory=dict)
    followups: dict[str, dict[str, Any]] = field(default_factory=dict)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)  # kept across reads (pulled and acknowledged)
    followup_messages: list[dict[str, Any]] = field(default_factory=list)


class Observer:
    def __init__(self, pubsub: PubSubEmulator, firestore_host: str, project: str, settings: Settings,
                 dead_letter_subscription: str, followup_subscription: str, ingest: FunctionServer) -> None:
        self.reader = FirestoreReader(firestore_host, project, settings, timeout=30.0)  # the live view's reader
        self.pubsub = pubsub
        self.settings = settings
        self.dead_letter_subscription = dead_letter_subscription
        self.followup_subscription = followup_subscription
        self.ingest = ingest
        self.seen = Observed()

    def read(self) -> Observed:
        snapshot = self.reader.read(Snapshot())
        self.seen.reviews, self.seen.rejected, self.seen.followups = (snapshot.reviews, snapshot.rejected,
                                                                       snapshot.followups)
        while batch := self.pubsub.pull(self.dead_letter_subscription, max_messages=500):
            self.seen.dead_letters += batch
        while batch := self.pubsub.pull(self.followup_subscription, max_messages=500):
            self.seen.followup_messages += batch
        return self.seen

    def writes_per_review(self) -> Counter[str]:
        """How many times ``ingest_review`` wrote each review (created or edited), from its log."""
        return Counter(str(entry.get("review_id")) for entry in self.ingest.structured_logs()
                       if entry.get("message") == "review ingested" and entry.get("outcome") in WRITES)

    def close(self) -> None:
        self.reader.close()


def scenario_of(message: dict[str, Any]) -> str | None:
    return (message.get("attributes") or {}).get("scenario")


