"""Notifying an open follow-up once per channel and episode: the follow-up document is its own outbox.

Why an outbox and not "send, then write": the intent to notify is recorded in the same
conditional write that opens (or upgrades, or reopens) the follow-up, so it cannot be lost
between the two; this module only drains it. A channel is due while the follow-up is ``open``
and its current episode has no record for the channel (``notifications.<channel>``) and no
permanent refusal (``notification_attempts.<channel>.state == "rejected"``).

Draining, exactly once under at-least-once delivery:
- Before sending on a channel we claim it with a conditional write on the follow-up
  (``notification_attempts.<channel>``: attempt id and a lease; of two concurrent claims exactly
  one passes the precondition). A delivery that finds a live lease raises
  ``NotificationInProgressError`` so the platform retries later (by then it is sent, or the
  lease has expired because its holder died).
- A send that fails transiently (a 5xx, 408 or 429, a timeout, Pub/Sub unavailable) releases
  the claim and raises, so the event is retried without a second follow-up. A webhook that
  refuses the message with any other 4xx (revoked, malformed URL) will refuse it again: the
  refusal is recorded on the follow-up (``state: rejected``) and the channel is not retried.
- Once a send succeeds we record ``notifications.<channel>`` and it is never sent again in this
  episode. The one window left is a crash after the send and before that record: the lease
  then expires and the send is repeated (no store can be committed atomically with a chat
  webhook). For that window the Pub/Sub message carries ``review_id`` and a stable
  ``notification_id`` attribute (``followups/<id>#<episode>``) so consumers can drop a repeat.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shared import firestore, logs
from shared.config import Settings
from shared.errors import ReviewsenseError
from shared.firestore import Done, Step, Update, read_decide_write
from shared.followup_state import Status, episode_of

if TYPE_CHECKING:
    from shared.firestore import Snapshot

# Longer than any single send can take (webhook timeout <= 60 s, publish wait 30 s): a
# live lease means someone is sending right now, an expired one that its holder died.
LEASE_SECONDS = 120
CHANNELS = ("pubsub", "webhook")
REJECTED = "rejected"


class NotificationInProgressError(ReviewsenseError):
    """Another delivery of the same event holds a live claim on a channel; retry later."""

    code = "notification_in_progress"


class Due(StrEnum):
    SEND = "send"
    SKIP = "skip"  # not open, already sent in this episode, or permanently refused
    IN_PROGRESS = "in_progress"  # someone else holds a live lease


@dataclass
class Drained:
    sent: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def due(followup: Mapping[str, Any], channel: str, now: datetime) -> Due:
    """Whether ``channel`` is due on this follow-up as read (pure)."""
    if followup.get("status") != Status.OPEN or channel in (followup.get("notifications") or {}):
        return Due.SKIP
    attempt = (followup.get("notification_attempts") or {}).get(channel) or {}
    if attempt.get("state") == REJECTED:
        return Due.SKIP
    lease_until = attempt.get("lease_until")
    if attempt.get("state") == "sending" and isinstance(lease_until, datetime) and lease_until > now:
        return Due.IN_PROGRESS
    return Due.SEND


def _ref(settings: Settings, review_id: str) -> Any:
    return firestore.document(settings.followups_collection, review_id)


def _claim(settings: Settings, review_id: str, channel: str) -> tuple[str | None, dict[str, Any]]:
    """Take the send right for ``channel``: (attempt id, follow-up), or (None, follow-up) if nothing to send."""

    def decide(snapshot: Snapshot) -> Step[tuple[str | None, dict[str, Any]]]:
        current: dict[str, Any] = snapshot.to_dict() or {}
        now = datetime.now(UTC)
        verdict = due(current, channel, now)
        if verdict is Due.SKIP:
            return Done((None, current))
        if verdict is Due.IN_PROGRESS:
            raise NotificationInProgressError(
                f"{channel} notification for review {review_id} is being sent by another delivery")
        attempt = (current.get("notification_attempts") or {}).get(channel) or {}
        attempt_id = uuid.uuid4().hex
        claim = {"state": "sending", "attempt_id": attempt_id, "lease_until": now + timedelta(seconds=LEASE_SECONDS),
                 "count": int(attempt.get("count") or 0) + 1, "last_error": attempt.get("last_error")}
        return Update({f"notification_attempts.{channel}": claim}, (attempt_id, current))

    return read_decide_write(_ref(settings, review_id), decide).value


def _record(settings: Settings, review_id: str, channel: str, attempt: dict[str, Any],
            notification: dict[str, Any] | None = None) -> None:
    changes = {f"notification_attempts.{channel}.{key}": value for key, value in attempt.items()}
    if notification is not None:
        changes[f"notifications.{channel}"] = notification
    _ref(settings, review_id).update(changes, **firestore.call_options())


def _send(settings: Settings, channel: str, followup: Mapping[str, Any]) -> dict[str, Any]:
    """Send on one channel; the dict is what ``notifications.<channel>`` records."""
    from google.cloud.firestore import SERVER_TIMESTAMP

    from shared import notify

    if channel == "pubsub":
        episode = episode_of(followup)
        event = "followup.opened" if episode == 1 else "followup.reopened"
        name = f"{settings.followups_collection}/{followup['review_id']}"
        payload = {"event": event, "followup": name, "episode": episode,
                   **{key: followup.get(key) for key in ("review_id", "customer_id", "source", "priority", "status",
                                                         "sentiment", "excerpt", "evidence", "text_sha256")}}
        attributes = {"review_id": str(followup["review_id"]), "priority": str(followup.get("priority")),
                      "event": event, "notification_id": f"{name}#{episode}"}
        return {"message_id": notify.publish(settings, payload, attributes), "at": SERVER_TIMESTAMP}
    return {"status_code": notify.post_webhook(settings, notify.chat_message(followup)), "at": SERVER_TIMESTAMP}


def drain(settings: Settings, review_id: str) -> Drained:
    """Send whatever this open follow-up has not yet sent in its episode.

    Every channel is tried even if another fails (a Pub/Sub outage must not hold back the chat
    message); then the first transient failure is raised so the event is retried.
    """
    from google.cloud.firestore import SERVER_TIMESTAMP

    from shared.notify import NotificationError

    channels = [c for c in CHANNELS if c != "webhook" or settings.followup_webhook_url]
    drained = Drained()
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
            failure = {"lease_until": None, "last_error": exc.message, "last_error_at": SERVER_TIMESTAMP}
            if exc.permanent:
                logs.error("notification refused; not retried", review_id=review_id, channel=channel, code=exc.code,
                           detail=exc.message)
                _record(settings, review_id, channel, {"state": REJECTED, **failure})
                drained.rejected.append(channel)
                continue
            logs.warning("notification failed", review_id=review_id, channel=channel, code=exc.code,
                         detail=exc.message)
            _record(settings, review_id, channel, {"state": "failed", **failure})
            failures.append(exc)
            continue
        _record(settings, review_id, channel, {"state": "sent", "lease_until": None}, record)
        drained.sent.append(channel)
    if failures:
        raise failures[0]
    return drained
