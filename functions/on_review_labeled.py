"""``on_review_labeled``: a Firestore ``document.written`` trigger on ``reviews/{review_id}``.

Thin by design: ``shared.document_event`` decodes the event (Eventarc's protobuf, the
emulator's base64 of it, or JSON), ``shared.followups`` decides and does the work. How
errors map to the platform's retry:
- an event we cannot decode, or one about another document, is logged and acknowledged:
  retrying the same bytes cannot succeed;
- anything else (a failed or in-progress notification, Firestore or the model briefly
  unavailable) is raised, so Eventarc redelivers the event; the follow-up logic is
  idempotent, so a redelivery finishes the work without duplicating it;
- but not forever: Eventarc retries for up to 24 hours, so an event older than
  ``FOLLOWUP_MAX_EVENT_AGE_SECONDS`` whose work still fails is logged as an error and
  acknowledged (the follow-up document keeps its last error for a person to see). The
  work is still tried first: an event delivered late for the first time is not dropped.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import functions_framework
from cloudevents.http import CloudEvent

from shared import logs
from shared.config import get_settings
from shared.document_event import InvalidEventError, decode_document_event
from shared.errors import ReviewsenseError
from shared.followups import handle_review_write


def _age_seconds(event: CloudEvent) -> float | None:
    """Seconds since the event happened (its ``time`` attribute); None when it carries no usable time."""
    stamp = event.get("time")
    try:
        happened = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None
    if happened is None or happened.tzinfo is None:
        return None
    return (datetime.now(UTC) - happened).total_seconds()


@functions_framework.cloud_event
def on_review_labeled(event: CloudEvent) -> None:
    started = time.perf_counter()
    event_id = event.get("id")
    try:
        change = decode_document_event(event.get_data())
    except InvalidEventError as exc:
        logs.error("event dropped: not a Firestore document event", event_id=event_id, code=exc.code,
                   detail=exc.message)
        return
    settings = get_settings()
    document = change.document
    if document is None or document.collection != settings.reviews_collection:
        logs.warning("event ignored: not a review document", event_id=event_id,
                     document=document.path if document else None)
        return
    review_id = document.id
    try:
        outcome = handle_review_write(settings, review_id, change.old.fields if change.old else None,
                                      change.new.fields if change.new else None,
                                      change.new.update_time if change.new else None)
    except Exception as exc:  # ours or a Firestore/Pub/Sub client error: retried, unless the event is too old
        age = _age_seconds(event)
        fields = {"event_id": event_id, "review_id": review_id,
                  **({"code": exc.code, "detail": exc.message} if isinstance(exc, ReviewsenseError)
                     else {"error": repr(exc)[:500]})}
        if age is not None and age > settings.followup_max_event_age_seconds:
            logs.error("follow-up abandoned: the event is too old to retry", age_seconds=round(age),
                       max_age_seconds=settings.followup_max_event_age_seconds, **fields)
            return
        if isinstance(exc, ReviewsenseError):
            logs.warning("follow-up incomplete; the event will be retried", **fields)
        else:
            logs.error("follow-up failed; the event will be retried", **fields)
        raise
    logs.info("review write handled", event_id=event_id, review_id=review_id, action=outcome.action.value,
              reason=outcome.reason, followup=outcome.followup, status=outcome.status, notified=outcome.notified,
              rejected=outcome.rejected,
              latency_ms=round((time.perf_counter() - started) * 1000, 2))
