"""``on_review_labeled``: a Firestore ``document.written`` trigger on ``reviews/{review_id}``.

Thin by design: ``shared.document_event`` decodes the event (Eventarc's protobuf, the
emulator's base64 of it, or JSON), ``shared.followups`` decides and does the work. How
errors map to the platform's retry:
- an event we cannot decode, or one about another document, is logged and acknowledged:
  retrying the same bytes cannot succeed;
- anything else (a failed or in-progress notification, Firestore or the model briefly
  unavailable) is raised, so Eventarc redelivers the event; the follow-up logic is
  idempotent, so a redelivery finishes the work without duplicating it.
"""

from __future__ import annotations

import time

import functions_framework
from cloudevents.http import CloudEvent

from shared import logs
from shared.config import get_settings
from shared.document_event import InvalidEventError, decode_document_event
from shared.errors import ReviewsenseError
from shared.followups import handle_review_write


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
    except ReviewsenseError as exc:
        logs.warning("follow-up incomplete; the event will be retried", event_id=event_id, review_id=review_id,
                     code=exc.code, detail=exc.message)
        raise
    except Exception as exc:  # Firestore/Pub/Sub client errors: log with the review, then let Eventarc retry
        logs.error("follow-up failed; the event will be retried", event_id=event_id, review_id=review_id,
                   error=repr(exc)[:500])
        raise
    logs.info("review write handled", event_id=event_id, review_id=review_id, action=outcome.action.value,
              reason=outcome.reason, followup=outcome.followup, status=outcome.status, notified=outcome.notified,
              latency_ms=round((time.perf_counter() - started) * 1000, 2))
