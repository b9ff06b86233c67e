"""The follow-up rule: what one write of ``reviews/{id}`` calls for, a pure function of the review before and after.

It acts only on a transition INTO an actionable negative label (the review's band changes, or
its text changes while negative) and on an edit from negative to positive. Everything else
(edits of other fields, re-labels that change nothing, positive or neutral reviews, our own
writes, which go to another collection anyway) is a no-op, so no trigger loop is possible.

Bands of a labeled negative review: score >= FOLLOWUP_THRESHOLD opens a follow-up (``open``,
priority high at >= FOLLOWUP_HIGH_PRIORITY) and notifies; FOLLOWUP_UNSURE_MIN <= score <
FOLLOWUP_THRESHOLD opens one as ``needs_review`` and never notifies (a person decides);
below that, nothing.

Only recent reviews open follow-ups, on every path: a review written more than
FOLLOWUP_MAX_AGE_DAYS (7) days ago (its ``created_at``, else when it reached us) is labeled but
pages nobody. A backfill of last year's app-store export, or a relabel with a new model, must
not wake support for complaints that were answered (or lost) long ago; a backfilled review
with no ``created_at`` at all (``labeled_by: backfill``) has no known age and pages nobody either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.config import Settings

NEGATIVE = "negative"
POSITIVE = "positive"
LABELED = "labeled"


class Action(StrEnum):
    NONE = "none"
    OPEN = "open"
    NEEDS_REVIEW = "needs_review"
    RESOLVE_BY_EDIT = "resolve_by_edit"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    priority: str = "normal"


def _sentiment(fields: Mapping[str, Any] | None) -> tuple[str | None, float | None]:
    if not fields or fields.get("status") != LABELED:
        return None, None
    sentiment = fields.get("sentiment")
    if not isinstance(sentiment, Mapping):
        return None, None
    label = sentiment.get("label")
    score = sentiment.get("score")
    if not isinstance(label, str):
        return None, None
    return label, float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None


def band(fields: Mapping[str, Any] | None, settings: Settings) -> Action:
    """Where a review stands: OPEN, NEEDS_REVIEW, or NONE (not a labeled negative in either band)."""
    label, score = _sentiment(fields)
    if label != NEGATIVE or score is None:
        return Action.NONE
    if score >= settings.followup_threshold:
        return Action.OPEN
    if score >= settings.followup_unsure_min:
        return Action.NEEDS_REVIEW
    return Action.NONE


def priority(score: float, settings: Settings) -> str:
    return "high" if score >= settings.followup_high_priority else "normal"


def age_days(fields: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """Days since the review was written (``created_at``, else ``publish_time``); None if neither is a time."""
    for key in ("created_at", "publish_time"):
        value = fields.get(key)
        when = value if isinstance(value, datetime) else None
        if isinstance(value, str):
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                when = None
        if when is not None:
            when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
            return ((now or datetime.now(UTC)) - when).total_seconds() / 86400
    return None


def decide(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, settings: Settings,
           now: datetime | None = None) -> Decision:
    """The action for one write of ``reviews/{id}`` (``old`` None: created; ``new`` None: deleted)."""
    if new is None:
        return Decision(Action.NONE, "review deleted")
    new_band = band(new, settings)
    new_label, new_score = _sentiment(new)
    if new_band is not Action.NONE:
        assert new_score is not None
        age = age_days(new, now)
        if age is None and new.get("labeled_by") == "backfill":
            return Decision(Action.NONE, "negative, from a backfill with no created_at: its age is unknown, so "
                                         "no follow-up")
        if age is not None and age > settings.followup_max_age_days:
            origin = f", labeled by {new['labeled_by']}" if new.get("labeled_by") else ""
            return Decision(Action.NONE, f"negative but written {age:.0f} days ago (FOLLOWUP_MAX_AGE_DAYS "
                                         f"{settings.followup_max_age_days}{origin}): no follow-up")
        if old is not None and band(old, settings) is new_band and old.get("text_sha256") == new.get("text_sha256"):
            return Decision(Action.NONE, f"already {new_band.value}: not a transition")
        return Decision(new_band, f"negative {new_score:.3f}", priority(new_score, settings))
    old_label, _ = _sentiment(old)
    if new_label == POSITIVE and old_label == NEGATIVE:
        return Decision(Action.RESOLVE_BY_EDIT, "edited from negative to positive")
    if new_label is None:
        return Decision(Action.NONE, "review not labeled")
    if new_label == NEGATIVE:
        return Decision(Action.NONE, "negative below FOLLOWUP_UNSURE_MIN")
    return Decision(Action.NONE, f"{new_label} review")
