"""Follow-ups for negative reviews: the decision rule and the Firestore work on ``followups/{review_id}``.

The rule (``decide``) is a pure function of the review before and after a write, so it is
tested without Firestore. It acts only on a transition INTO an actionable negative label
(the review's band changes, or its text changes while negative) and on an edit from
negative to positive. Everything else (edits of other fields, re-labels that change
nothing, positive or neutral reviews, our own writes, which go to another collection
anyway) is a no-op, so no trigger loop is possible.

Bands of a labeled negative review: score >= FOLLOWUP_THRESHOLD opens a follow-up
(``open``, priority high at >= FOLLOWUP_HIGH_PRIORITY) and notifies; FOLLOWUP_UNSURE_MIN <=
score < FOLLOWUP_THRESHOLD opens one as ``needs_review`` and never notifies (a person
decides); below that, nothing.

Delivery guarantees, and why:
- One document per review: its id is the review id and it is written with ``create()``,
  which fails when it exists, so redelivered, duplicate and concurrent events cannot make a
  second one. Later changes (reopen after an edit back to negative, needs_review -> open, an
  edit that stays negative, resolve) are conditional writes (precondition: the follow-up's
  update_time as read) and apply only from a review version newer than the one the
  follow-up reflects (``review_updated_at``), so an old event redelivered late cannot undo
  a newer one.
- One notification per channel: Eventarc delivers at least once, and the emulator and
  our tests deliver duplicates on purpose. Before sending on a channel we claim it with a
  conditional write on the follow-up (``notification_attempts.<channel>``: attempt id and a
  lease; of two concurrent claims exactly one passes the precondition);
  a delivery that finds the channel sent returns, one that finds a live lease raises
  ``NotificationInProgressError`` so the platform retries later (by then it is sent, or the
  lease has expired because its holder died). A failed send releases the claim and raises,
  so the event is retried without a second follow-up. Once a send succeeds we record
  ``notifications.<channel>`` ({message_id | status_code, at}) and it is never sent again.
  The one window left is a crash after the send and before that record: the lease then
  expires and the send is repeated (no store can be committed atomically with a chat
  webhook). For that window the Pub/Sub message carries ``review_id`` and a stable
  ``notification_id`` attribute so consumers can drop a repeat.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from shared import logs
from shared.config import Settings
from shared.errors import ReviewsenseError

NEGATIVE = "negative"
POSITIVE = "positive"
LABELED = "labeled"
EXCERPT_CHARS = 280
# Longer than any single send can take (webhook timeout <= 60 s, publish wait 30 s): a
# live lease means someone is sending right now, an expired one that its holder died.
LEASE_SECONDS = 120
CHANNELS = ("pubsub", "webhook")


class Action(StrEnum):
    NONE = "none"
    OPEN = "open"
    NEEDS_REVIEW = "needs_review"
    RESOLVE_BY_EDIT = "resolve_by_edit"


class Status(StrEnum):
    OPEN = "open"
    NEEDS_REVIEW = "needs_review"
    RESOLVED_BY_EDIT = "resolved_by_edit"


class NotificationInProgressError(ReviewsenseError):
    """Another delivery of the same event holds a live claim on a channel; retry later."""

    code = "notification_in_progress"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    priority: str = "normal"


@dataclass
class Outcome:
    """What one event did, for the log line."""

    action: Action
    reason: str
    followup: str = ""  # created | exists | reopened | upgraded | edited | resolved | missing | stale
    status: str | None = None
    notified: list[str] = field(default_factory=list)


# --- the rule (pure) ---------------------------------------------------------------------------

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


def decide(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, settings: Settings) -> Decision:
    """The action for one write of ``reviews/{id}`` (``old`` None: created; ``new`` None: deleted)."""
    if new is None:
        return Decision(Action.NONE, "review deleted")
    new_band = band(new, settings)
    new_label, new_score = _sentiment(new)
    if new_band is not Action.NONE:
        assert new_score is not None
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


# --- the Firestore work ------------------------------------------------------------------------
#
# Every change to an existing follow-up is read-decide-write with a precondition on the
# document's update_time (as in shared.store): a delivery that lost a race fails at once,
# reads again and decides again, instead of waiting on a transaction lock (the emulator,
# and production under contention, make a losing transaction wait and retry).

MAX_ROUNDS = 6  # read-decide-write rounds before giving up and letting the platform retry


class FollowupContentionError(ReviewsenseError):
    """The follow-up kept changing under us; raised so the event is retried."""

    code = "followup_contention"


def _ref(settings: Settings, review_id: str) -> Any:
    from shared.store import get_client

    return get_client().collection(settings.followups_collection).document(review_id)


def _options(settings: Settings) -> dict[str, Any]:
    """A deadline for every call (retries included), so a slow Firestore fails the delivery instead of hanging."""
    from google.api_core.retry import Retry, if_transient_error

    timeout = settings.firestore_timeout_seconds
    return {"retry": Retry(predicate=if_transient_error, initial=0.1, maximum=1.0, multiplier=2.0, timeout=timeout),
            "timeout": timeout}


def _update_if_unchanged(settings: Settings, ref: Any, snapshot: Any, changes: Mapping[str, Any]) -> bool:
    """Apply ``changes`` only if nobody wrote since ``snapshot`` was read; False means read again."""
    from google.api_core.exceptions import FailedPrecondition, NotFound

    from shared.store import get_client

    try:
        ref.update(dict(changes), option=get_client().write_option(last_update_time=snapshot.update_time),
                   **_options(settings))
    except (FailedPrecondition, NotFound):
        return False
    return True


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit - 1].rsplit(" ", 1)[0] + "…"


def _content(review: Mapping[str, Any], decision: Decision, evidence: list[str],
             review_updated_at: datetime | None) -> dict[str, Any]:
    """The fields that follow the review's current text and label."""
    sentiment = review.get("sentiment") or {}
    return {
        "excerpt": excerpt(str(review.get("text") or "")),
        "evidence": evidence,
        "sentiment": {key: sentiment.get(key) for key in ("label", "score", "scores")},
        "priority": decision.priority,
        "text_sha256": review.get("text_sha256"),
        **({"review_updated_at": review_updated_at} if review_updated_at is not None else {}),
    }


def _is_stale(existing: Mapping[str, Any], review_updated_at: datetime | None) -> bool:
    """Whether this event shows a review version the follow-up already reflects (or an older one)."""
    seen = existing.get("review_updated_at")
    return review_updated_at is not None and isinstance(seen, datetime) and review_updated_at <= seen


def _refresh_kind(existing: Mapping[str, Any], review: Mapping[str, Any], decision: Decision,
                  review_updated_at: datetime | None) -> str | None:
    """Whether an existing follow-up must follow this (newer) version of the review, and how."""
    if _is_stale(existing, review_updated_at):
        return None
    status = existing.get("status")
    changed_text = existing.get("text_sha256") != review.get("text_sha256")
    if status == Status.RESOLVED_BY_EDIT:
        return "reopened" if changed_text else None
    if status == Status.NEEDS_REVIEW and decision.action is Action.OPEN:
        return "upgraded"
    if status in (Status.OPEN, Status.NEEDS_REVIEW) and changed_text:
        return "edited"
    return None


def ensure_followup(settings: Settings, review_id: str, review: Mapping[str, Any], decision: Decision,
                    review_updated_at: datetime | None,
                    evidence_for: Callable[[str], list[str]]) -> tuple[str, dict[str, Any]]:
    """Create ``followups/{review_id}`` once, or bring an existing one up to a newer review version.

    ``evidence_for`` runs the classifier, so it is called (at most once) only when a
    document is actually written, never for a duplicate delivery.
    """
    from google.api_core.exceptions import AlreadyExists
    from google.cloud.firestore import SERVER_TIMESTAMP

    ref = _ref(settings, review_id)
    options = _options(settings)
    text = str(review.get("text") or "")
    evidence: list[str] | None = None
    status = Status.OPEN if decision.action is Action.OPEN else Status.NEEDS_REVIEW
    for _ in range(MAX_ROUNDS):
        snapshot = ref.get(**options)
        if not snapshot.exists:
            evidence = evidence if evidence is not None else evidence_for(text)
            document = {
                "review_id": review_id,
                "customer_id": review.get("customer_id"),
                "source": review.get("source"),
                **_content(review, decision, evidence, review_updated_at),
                "status": status.value,
                "created_at": SERVER_TIMESTAMP,
                "updated_at": SERVER_TIMESTAMP,
                "notifications": {},
            }
            try:
                ref.create(document, **options)
                return "created", document
            except AlreadyExists:  # a concurrent delivery created it: decide again on what it wrote
                continue
        existing: dict[str, Any] = snapshot.to_dict() or {}
        kind = _refresh_kind(existing, review, decision, review_updated_at)
        if kind is None:
            return "exists", existing
        evidence = evidence if evidence is not None else evidence_for(text)
        keep_open = existing.get("status") == Status.OPEN  # an edit never downgrades an open follow-up
        changes = {**_content(review, decision, evidence, review_updated_at),
                   "status": Status.OPEN.value if keep_open else status.value, "updated_at": SERVER_TIMESTAMP}
        if kind == "reopened":
            changes["reopened_at"] = SERVER_TIMESTAMP
        if _update_if_unchanged(settings, ref, snapshot, changes):
            return kind, {**existing, **changes}
    raise FollowupContentionError(f"followups/{review_id} changed under us {MAX_ROUNDS} times; retry later")


def resolve_by_edit(settings: Settings, review_id: str, review_updated_at: datetime | None) -> str:
    """Mark an open or needs_review follow-up ``resolved_by_edit``; leave any other state alone."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    ref = _ref(settings, review_id)
    for _ in range(MAX_ROUNDS):
        snapshot = ref.get(**_options(settings))
        if not snapshot.exists:
            return "missing"
        current = snapshot.to_dict() or {}
        if _is_stale(current, review_updated_at):
            return "stale"
        if current.get("status") not in (Status.OPEN, Status.NEEDS_REVIEW):
            return "exists"
        changes: dict[str, Any] = {"status": Status.RESOLVED_BY_EDIT.value, "resolved_at": SERVER_TIMESTAMP,
                                   "updated_at": SERVER_TIMESTAMP}
        if review_updated_at is not None:
            changes["review_updated_at"] = review_updated_at
        if _update_if_unchanged(settings, ref, snapshot, changes):
            return "resolved"
    raise FollowupContentionError(f"followups/{review_id} changed under us {MAX_ROUNDS} times; retry later")


# --- notifications, once per channel -----------------------------------------------------------

def _claim(settings: Settings, review_id: str, channel: str) -> tuple[str | None, dict[str, Any]]:
    """Take the send right for ``channel``: (attempt id, follow-up), or (None, follow-up) if nothing to send."""
    ref = _ref(settings, review_id)
    for _ in range(MAX_ROUNDS):
        snapshot = ref.get(**_options(settings))
        current: dict[str, Any] = snapshot.to_dict() or {}
        if current.get("status") != Status.OPEN or channel in (current.get("notifications") or {}):
            return None, current
        attempt = (current.get("notification_attempts") or {}).get(channel) or {}
        now = datetime.now(UTC)
        lease_until = attempt.get("lease_until")
        if attempt.get("state") == "sending" and isinstance(lease_until, datetime) and lease_until > now:
            raise NotificationInProgressError(
                f"{channel} notification for review {review_id} is being sent by another delivery")
        attempt_id = uuid.uuid4().hex
        claim = {"state": "sending", "attempt_id": attempt_id, "lease_until": now + timedelta(seconds=LEASE_SECONDS),
                 "count": int(attempt.get("count") or 0) + 1, "last_error": attempt.get("last_error")}
        if _update_if_unchanged(settings, ref, snapshot, {f"notification_attempts.{channel}": claim}):
            return attempt_id, current
    raise FollowupContentionError(f"followups/{review_id} changed under us {MAX_ROUNDS} times; retry later")


def _record(settings: Settings, review_id: str, channel: str, attempt: dict[str, Any],
            notification: dict[str, Any] | None = None) -> None:
    changes = {f"notification_attempts.{channel}.{key}": value for key, value in attempt.items()}
    if notification is not None:
        changes[f"notifications.{channel}"] = notification
    _ref(settings, review_id).update(changes, **_options(settings))


def _send(settings: Settings, channel: str, followup: Mapping[str, Any]) -> dict[str, Any]:
    """Send on one channel; the dict is what ``notifications.<channel>`` records."""
    from google.cloud import firestore

    from shared import notify

    if channel == "pubsub":
        payload = {"event": "followup.opened", "followup": f"{settings.followups_collection}/{followup['review_id']}",
                   **{key: followup.get(key) for key in ("review_id", "customer_id", "source", "priority", "status",
                                                         "sentiment", "excerpt", "evidence", "text_sha256")}}
        attributes = {"review_id": str(followup["review_id"]), "priority": str(followup.get("priority")),
                      "event": "followup.opened",
                      "notification_id": f"{settings.followups_collection}/{followup['review_id']}"}
        return {"message_id": notify.publish(settings, payload, attributes), "at": firestore.SERVER_TIMESTAMP}
    return {"status_code": notify.post_webhook(settings, notify.chat_message(followup)),
            "at": firestore.SERVER_TIMESTAMP}


def notify_followup(settings: Settings, review_id: str) -> list[str]:
    """Send whatever this open follow-up has not yet sent; the channels sent now are returned.

    Every channel is tried even if another fails (a Pub/Sub outage must not hold back the chat
    message); then the first failure is raised so the event is retried.
    """
    from google.cloud import firestore

    from shared.notify import NotificationError

    channels = [c for c in CHANNELS if c != "webhook" or settings.followup_webhook_url]
    sent: list[str] = []
    failures: list[ReviewsenseError] = []
    for channel in channels:
        try:
            attempt_id, followup = _claim(settings, review_id, channel)
        except NotificationInProgressError as exc:
            failures.append(exc)
            continue
        if attempt_id is None:
            continue
        try:
            record = _send(settings, channel, followup)
        except NotificationError as exc:
            logs.warning("notification failed", review_id=review_id, channel=channel, code=exc.code,
                         detail=exc.message)
            _record(settings, review_id, channel, {"state": "failed", "lease_until": None, "last_error": exc.message,
                                                   "last_error_at": firestore.SERVER_TIMESTAMP})
            failures.append(exc)
            continue
        _record(settings, review_id, channel, {"state": "sent", "lease_until": None}, record)
        sent.append(channel)
    if failures:
        raise failures[0]
    return sent


def handle_review_write(settings: Settings, review_id: str, old: Mapping[str, Any] | None,
                        new: Mapping[str, Any] | None, review_updated_at: datetime | None,
                        evidence_for: Callable[[str], list[str]] | None = None) -> Outcome:
    """Everything one ``reviews/{id}`` write causes: decide, write the follow-up, notify."""
    decision = decide(old, new, settings)
    outcome = Outcome(decision.action, decision.reason)
    if decision.action is Action.NONE:
        return outcome
    if decision.action is Action.RESOLVE_BY_EDIT:
        outcome.followup = resolve_by_edit(settings, review_id, review_updated_at)
        return outcome
    assert new is not None
    if evidence_for is None:
        from shared.evidence import negative_evidence

        evidence_for = negative_evidence
    outcome.followup, document = ensure_followup(settings, review_id, new, decision, review_updated_at,
                                                 evidence_for)
    outcome.status = document.get("status")
    if outcome.status == Status.OPEN:
        outcome.notified = notify_followup(settings, review_id)
    return outcome
