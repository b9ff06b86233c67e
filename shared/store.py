"""Firestore access for ``reviews/{review_id}`` and ``rejected_events/{message_id}``.

Exactly one effect per review under at-least-once delivery, without transactions
(see ``save_review``): a read, then a write guarded by a precondition.

- Content identity is ``text_sha256``. A stored review with the same hash means this
  delivery (a redelivery, a republished duplicate, a concurrent twin) changes nothing:
  no classification, no write. "No write" is what keeps the follow-up trigger, which
  fires on writes, from acting twice. (So a message that repeats the text but changes
  only ``metadata`` or ``source`` is a duplicate too: an edit is new text.)
- A new review is written with ``create()``, which fails with AlreadyExists if a
  concurrent delivery got there first; we then read again and decide again.
- A different hash is an edit, applied only if this delivery is newer than the one that
  produced the stored label (publish time, then message id): an old message redelivered
  late must not roll a newer edit back. The edit is an ``update()`` with a precondition
  on the stored ``update_time`` (optimistic concurrency): if anything wrote in between,
  the write fails and we read and decide again.
The loop itself (and why not a transaction) is ``shared.firestore.read_decide_write``.
Why not a ``processed/{message_id}`` marker: duplicates republished by a client
carry new message ids; the content hash catches those too, and it needs no second
document to keep consistent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shared import firestore
from shared.config import get_settings
from shared.firestore import Create, Done, Step, Update, read_decide_write
from shared.review_event import PubSubMessage, ReviewEvent, order_key

if TYPE_CHECKING:
    from shared.firestore import Snapshot


class Outcome(StrEnum):
    CREATED = "created"  # first label of this review
    EDITED = "edited"  # new text for a known review: relabeled
    DUPLICATE = "duplicate"  # same text as stored: nothing written
    STALE = "stale"  # older than the stored label (out-of-order redelivery): nothing written


@dataclass(frozen=True)
class Label:
    """What the classifier says about a text, in document form."""

    sentiment: dict[str, Any]  # {label, score, scores}
    model: dict[str, str]  # {name, version}


@dataclass(frozen=True)
class SaveResult:
    outcome: Outcome
    rounds: int  # read-decide-write rounds (more than 1: we raced a concurrent delivery)
    classify_ms: float
    firestore_ms: float


def get_review(review_id: str) -> dict[str, Any] | None:
    snapshot = firestore.document(get_settings().reviews_collection, review_id).get(**firestore.call_options())
    return snapshot.to_dict() if snapshot.exists else None


def labeled_document(review_fields: Mapping[str, Any], label: Label) -> dict[str, Any]:
    """A new ``reviews/{id}`` document: the one shape, for ``ingest_review`` and the backfill alike."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    return {**review_fields, "sentiment": label.sentiment, "model": label.model, "status": "labeled",
            "classified_at": SERVER_TIMESTAMP, "edited": False, "edit_count": 0}


def _new_document(event: ReviewEvent, label: Label) -> dict[str, Any]:
    return labeled_document(event.review_fields(), label)


def _edit_fields(event: ReviewEvent, label: Label, stored: dict[str, Any]) -> dict[str, Any]:
    from google.cloud.firestore import SERVER_TIMESTAMP

    count = stored.get("edit_count")
    return {**_new_document(event, label), "edited": True,
            "edit_count": (count if isinstance(count, int) else 0) + 1,
            "edited_at": SERVER_TIMESTAMP, "previous_sentiment": stored.get("sentiment")}


def _is_newer(event: ReviewEvent, stored: dict[str, Any]) -> bool:
    publish_time, message_id = stored.get("publish_time"), stored.get("message_id")
    if not isinstance(publish_time, str) or not isinstance(message_id, str):
        return True  # a document without provenance cannot be newer than a real delivery
    return event.order_key > order_key(publish_time, message_id)


def save_review(event: ReviewEvent, classify: Callable[[str], Label]) -> SaveResult:
    """Label and store a review once; see the module docstring for the protocol.

    ``classify`` runs at most once, and only when a write is about to be attempted.
    Raises google.api_core exceptions on Firestore failures (InvalidArgument: the
    document is unstorable; the rest are transient) and ``ContentionError``.
    """
    label: Label | None = None
    classify_ms = 0.0

    def labelled() -> Label:
        nonlocal label, classify_ms
        if label is None:
            started = time.perf_counter()
            label = classify(event.text)
            classify_ms = (time.perf_counter() - started) * 1000
        return label

    def decide(snapshot: Snapshot) -> Step[Outcome]:
        if not snapshot.exists:
            return Create(_new_document(event, labelled()), Outcome.CREATED)
        stored = snapshot.to_dict() or {}
        if stored.get("text_sha256") == event.text_sha256:
            return Done(Outcome.DUPLICATE)
        if not _is_newer(event, stored):
            return Done(Outcome.STALE)
        return Update(_edit_fields(event, labelled(), stored), Outcome.EDITED)

    settled = read_decide_write(firestore.document(get_settings().reviews_collection, event.review_id), decide)
    return SaveResult(settled.value, settled.rounds, round(classify_ms, 2), settled.firestore_ms)


def save_rejected(message: PubSubMessage, reason_code: str, reason: str) -> bool:
    """Keep a poison message in ``rejected_events/{message_id}``; False if a redelivery already stored it."""
    from google.api_core.exceptions import AlreadyExists
    from google.cloud.firestore import SERVER_TIMESTAMP

    raw, truncated = message.raw_payload()
    document = {
        "reason_code": reason_code,
        "reason": reason,
        "raw": raw,
        "raw_truncated": truncated,
        "attributes": dict(message.attributes),
        "message_id": message.message_id,
        "publish_time": message.publish_time,
        "subscription": message.subscription,
        "rejected_at": SERVER_TIMESTAMP,
    }
    ref = firestore.document(get_settings().rejected_collection, message.message_id)
    try:
        ref.create(document, **firestore.call_options())
    except AlreadyExists:
        return False
    return True
