"""What a labelled row does to ``reviews/{review_id}``: the same guarantees as ``ingest_review``, for history.

Pure (``decide``) so the rules are tested without Firestore, and applied with the one
conditional-write loop (``shared.firestore.read_decide_write``):

- no document: create it, with ``ingest_review``'s document shape, marked ``labeled_by: backfill``;
- a document whose text is not this row's: it was edited after the export the batch reads, so it
  is newer than the batch and is left alone (``skipped_edited``);
- same text, mode ``label``: written only if it has no label yet;
- same text, mode ``relabel``: written only if its label came from another model (name or version);
- anything written is an update conditioned on the ``update_time`` read, so a delivery of
  ``ingest_review`` racing the batch makes the batch read again and decide again.

So a rerun of any mode after it finished writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from backfill.rows import Row

LABEL = "label"
RELABEL = "relabel"


class Outcome(StrEnum):
    CREATED = "created"
    LABELLED = "labelled"  # an unlabelled document got its label
    RELABELLED = "relabelled"
    UNCHANGED = "unchanged"
    SKIPPED_EDITED = "skipped_edited"


@dataclass(frozen=True)
class Labelled:
    row: Row
    sentiment: dict[str, Any]  # {label, score, scores}
    model: dict[str, str]  # {name, version}


def decide(stored: dict[str, Any] | None, item: Labelled, mode: str) -> Outcome:
    if stored is None:
        return Outcome.CREATED
    if stored.get("text_sha256") != item.row.text_sha256:
        return Outcome.SKIPPED_EDITED
    labelled = stored.get("status") == "labeled" and isinstance(stored.get("sentiment"), dict)
    if not labelled:
        return Outcome.LABELLED
    if mode == RELABEL and stored.get("model") != item.model:
        return Outcome.RELABELLED
    return Outcome.UNCHANGED


def new_document(item: Labelled, run_id: str) -> dict[str, Any]:
    from shared.store import Label, labeled_document

    row = item.row
    fields: dict[str, Any] = {
        "review_id": row.review_id, "text": row.text, "customer_id": row.customer_id, "source": row.source,
        "created_at": row.created_at, "metadata": {}, "attributes": {}, "text_sha256": row.text_sha256,
        "message_id": f"backfill-{run_id}", "publish_time": None}
    return {**labeled_document(fields, Label(item.sentiment, item.model)), "labeled_by": "backfill",
            "backfill_run": run_id}


def label_fields(item: Labelled, stored: dict[str, Any], run_id: str) -> dict[str, Any]:
    from google.cloud.firestore import SERVER_TIMESTAMP

    return {"sentiment": item.sentiment, "model": item.model, "status": "labeled",
            "classified_at": SERVER_TIMESTAMP, "labeled_by": "backfill", "backfill_run": run_id,
            "previous_sentiment": stored.get("sentiment"), "previous_model": stored.get("model")}
