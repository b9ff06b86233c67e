"""Everything one write of ``reviews/{id}`` causes: decide, bring the follow-up to its new state, notify.

Three pieces, each with one job: ``followup_rule`` decides (pure), ``followup_state`` says what
that decision does to the follow-up as read (pure), ``followup_outbox`` sends what an open
follow-up owes. This module applies the state change with the one conditional-write loop
(``shared.firestore.read_decide_write``):

- One document per review: its id is the review id and it is written with ``create()``, so
  redelivered, duplicate and concurrent events cannot make a second one.
- Every later change (upgrade, edit, reopen, resolve) is an update conditioned on the
  follow-up's update_time as read, applied only from a review version newer than the one
  the follow-up reflects, so an old event redelivered late cannot undo a newer one.
- The evidence sentences run the classifier, so they are computed at most once per event
  and only when a document is actually written, never for a duplicate delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared import firestore
from shared.config import Settings
from shared.firestore import Create, Done, Step, Update, read_decide_write
from shared.followup_outbox import drain
from shared.followup_rule import Action, Decision, decide
from shared.followup_state import (
    Change,
    ReviewVersion,
    Status,
    changes,
    new_followup,
    on_negative,
    on_positive_edit,
    resolution,
)

if TYPE_CHECKING:
    from shared.firestore import Snapshot


@dataclass
class Outcome:
    """What one event did, for the log line."""

    action: Action
    reason: str
    followup: str = ""  # a followup_state.Change
    status: str | None = None
    notified: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # channels that refused for good


def ensure_followup(settings: Settings, version: ReviewVersion, decision: Decision,
                    evidence_for: Callable[[str], list[str]]) -> tuple[Change, dict[str, Any]]:
    """Create ``followups/{review_id}`` once, or bring an existing one to a newer review version."""
    evidence: list[str] | None = None

    def evidence_once() -> list[str]:
        nonlocal evidence
        if evidence is None:
            evidence = evidence_for(str(version.fields.get("text") or ""))
        return evidence

    def step(snapshot: Snapshot) -> Step[tuple[Change, dict[str, Any]]]:
        existing = snapshot.to_dict() if snapshot.exists else None
        change = on_negative(existing, version, decision)
        if change is Change.CREATED:
            document = new_followup(version, decision, evidence_once())
            return Create(document, (change, document))
        assert existing is not None
        if change is Change.EXISTS:
            return Done((change, existing))
        update = changes(change, existing, version, decision, evidence_once())
        return Update(update, (change, {**existing, **update}))

    return read_decide_write(firestore.document(settings.followups_collection, version.review_id), step).value


def resolve_by_edit(settings: Settings, version: ReviewVersion) -> Change:
    """Mark an open or needs_review follow-up ``resolved_by_edit``; leave any other state alone."""

    def step(snapshot: Snapshot) -> Step[Change]:
        change = on_positive_edit(snapshot.to_dict() if snapshot.exists else None, version)
        return Update(resolution(version), change) if change is Change.RESOLVED else Done(change)

    return read_decide_write(firestore.document(settings.followups_collection, version.review_id), step).value


def handle_review_write(settings: Settings, review_id: str, old: Mapping[str, Any] | None,
                        new: Mapping[str, Any] | None, review_updated_at: datetime | None,
                        evidence_for: Callable[[str], list[str]] | None = None) -> Outcome:
    decision = decide(old, new, settings)
    outcome = Outcome(decision.action, decision.reason)
    if decision.action is Action.NONE or new is None:
        return outcome
    version = ReviewVersion(review_id, new, review_updated_at)
    if decision.action is Action.RESOLVE_BY_EDIT:
        outcome.followup = resolve_by_edit(settings, version).value
        return outcome
    if evidence_for is None:
        from shared.evidence import negative_evidence

        evidence_for = negative_evidence
    change, document = ensure_followup(settings, version, decision, evidence_for)
    outcome.followup, outcome.status = change.value, document.get("status")
    if outcome.status == Status.OPEN:
        drained = drain(settings, review_id)
        outcome.notified, outcome.rejected = drained.sent, drained.rejected
    return outcome
