"""The follow-up state machine: what a decision does to ``followups/{review_id}`` as it was read (pure).

States: ``open`` (notifies), ``needs_review`` (a person decides; never notifies),
``resolved_by_edit`` (the customer edited the review to positive). Transitions, each applied
only from a review version newer than the one the follow-up reflects (``review_updated_at``), so
an old event redelivered late cannot undo a newer one:

    (none)           --open/needs_review-->  open | needs_review          created, episode 1
    needs_review     --open-->               open                          upgraded (now notifies)
    open|needs_review --negative, new text--> same state, new content       edited (never downgrades, never renotifies)
    resolved_by_edit --open/needs_review-->  open | needs_review          reopened, episode + 1
    open|needs_review --positive edit-->     resolved_by_edit               resolved

A reopen starts a new episode: the previous episode's notification records move to
``notification_history.e<N>`` and the outbox (``shared.followup_outbox``) is due again, so the
customer's renewed complaint reaches support like the first one did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.followup_rule import Action, Decision

EXCERPT_CHARS = 280


class Status(StrEnum):
    OPEN = "open"
    NEEDS_REVIEW = "needs_review"
    RESOLVED_BY_EDIT = "resolved_by_edit"


class Change(StrEnum):
    CREATED = "created"
    EXISTS = "exists"  # nothing to change (a duplicate delivery, or the follow-up already says this)
    UPGRADED = "upgraded"
    EDITED = "edited"
    REOPENED = "reopened"
    RESOLVED = "resolved"
    MISSING = "missing"  # a positive edit of a review that never had a follow-up
    STALE = "stale"  # an older review version than the follow-up reflects


@dataclass(frozen=True)
class ReviewVersion:
    """One written version of ``reviews/{id}``: its fields and its Firestore update_time."""

    review_id: str
    fields: Mapping[str, Any]
    updated_at: datetime | None


def is_stale(existing: Mapping[str, Any], version: ReviewVersion) -> bool:
    """Whether this version is one the follow-up already reflects (or an older one)."""
    seen = existing.get("review_updated_at")
    return version.updated_at is not None and isinstance(seen, datetime) and version.updated_at <= seen


def on_negative(existing: Mapping[str, Any] | None, version: ReviewVersion, decision: Decision) -> Change:
    """What an OPEN or NEEDS_REVIEW decision does to the follow-up as read (``None``: there is none)."""
    if existing is None:
        return Change.CREATED
    if is_stale(existing, version):
        return Change.EXISTS
    status = existing.get("status")
    if status == Status.RESOLVED_BY_EDIT:
        return Change.REOPENED  # whatever the text: back to the very words first complained about reopens too
    if status == Status.NEEDS_REVIEW and decision.action is Action.OPEN:
        return Change.UPGRADED
    new_text = existing.get("text_sha256") != version.fields.get("text_sha256")
    if status in (Status.OPEN, Status.NEEDS_REVIEW) and new_text:
        return Change.EDITED
    return Change.EXISTS


def on_positive_edit(existing: Mapping[str, Any] | None, version: ReviewVersion) -> Change:
    """What a RESOLVE_BY_EDIT decision does to the follow-up as read."""
    if existing is None:
        return Change.MISSING
    if is_stale(existing, version):
        return Change.STALE
    if existing.get("status") not in (Status.OPEN, Status.NEEDS_REVIEW):
        return Change.EXISTS
    return Change.RESOLVED


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit - 1].rsplit(" ", 1)[0] + "…"


def _status(decision: Decision) -> Status:
    return Status.OPEN if decision.action is Action.OPEN else Status.NEEDS_REVIEW


def _content(version: ReviewVersion, decision: Decision, evidence: list[str]) -> dict[str, Any]:
    """The fields that follow the review's current text and label."""
    review = version.fields
    sentiment = review.get("sentiment") or {}
    return {
        "excerpt": excerpt(str(review.get("text") or "")),
        "evidence": evidence,
        "sentiment": {key: sentiment.get(key) for key in ("label", "score", "scores")},
        "priority": decision.priority,
        "text_sha256": review.get("text_sha256"),
        **({"review_updated_at": version.updated_at} if version.updated_at is not None else {}),
    }


def new_followup(version: ReviewVersion, decision: Decision, evidence: list[str]) -> dict[str, Any]:
    from google.cloud.firestore import SERVER_TIMESTAMP

    return {"review_id": version.review_id, "customer_id": version.fields.get("customer_id"),
            "source": version.fields.get("source"), **_content(version, decision, evidence),
            "status": _status(decision).value, "episode": 1, "created_at": SERVER_TIMESTAMP,
            "updated_at": SERVER_TIMESTAMP, "notifications": {}}


def changes(change: Change, existing: Mapping[str, Any], version: ReviewVersion, decision: Decision,
            evidence: list[str]) -> dict[str, Any]:
    """The update that brings an existing follow-up to ``change`` (UPGRADED, EDITED or REOPENED)."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    # an edit never downgrades an open follow-up
    status = Status.OPEN if change is Change.EDITED and existing.get("status") == Status.OPEN else _status(decision)
    fields = {**_content(version, decision, evidence), "status": status.value, "updated_at": SERVER_TIMESTAMP}
    if change is Change.REOPENED:
        episode = episode_of(existing)
        fields.update({"reopened_at": SERVER_TIMESTAMP, "episode": episode + 1, "notifications": {},
                       "notification_attempts": {},
                       f"notification_history.e{episode}": dict(existing.get("notifications") or {})})
    return fields


def resolution(version: ReviewVersion) -> dict[str, Any]:
    from google.cloud.firestore import SERVER_TIMESTAMP

    fields: dict[str, Any] = {"status": Status.RESOLVED_BY_EDIT.value, "resolved_at": SERVER_TIMESTAMP,
                              "updated_at": SERVER_TIMESTAMP}
    if version.updated_at is not None:
        fields["review_updated_at"] = version.updated_at
    return fields


def episode_of(followup: Mapping[str, Any]) -> int:
    episode = followup.get("episode")
    return episode if isinstance(episode, int) and not isinstance(episode, bool) and episode > 0 else 1
