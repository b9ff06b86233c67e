"""``ingest_review``: label reviews published to Pub/Sub; the push endpoint of the ingestion subscription.

An HTTP function, not a CloudEvent one: Terraform (and the local stack) point our own push subscription (retry and
dead-letter policy) at it, and functions-framework's conversion of a push body into a CloudEvent answers 400 to a
message that carries attributes but no data, before any code of ours runs, so such a message was retried and
dead-lettered instead of kept. Reading the push envelope ourselves (``shared.review_event.read_message``) puts
every message, however malformed, through the same validation and rejection.

Thin by design: ``shared.review_event`` decides what is a valid review, ``shared.store``
writes it exactly once, ``shared.classifier`` labels it. What this module decides is
the delivery contract with Pub/Sub:

- Return normally = acknowledge. Done for a labeled review, a duplicate (same text as
  stored: nothing written, nothing classified), a stale redelivery (older than the
  stored label), and a poison message (bad base64, not UTF-8, not JSON, wrong schema,
  text too long, or a document Firestore refuses), which is first kept in
  ``rejected_events/{message_id}`` with its reason, then logged as an error. Keeping it
  uses ``create()``, so a redelivered poison message is acknowledged again, not failed.
- Raise = retry. Firestore unavailable or too slow, a write that kept losing races, a
  broken model artifact (not the message's fault): the push answers 5xx, Pub/Sub
  redelivers with backoff and, after ``max_delivery_attempts``, dead-letters the message.

Exactly-once effect: the content hash plus preconditions in ``shared.store.save_review``
(read; same hash -> no-op; new -> ``create()``; different hash and newer -> ``update()``
guarded by the stored ``update_time``; a lost race re-reads and decides again).
Concurrent duplicates (a handler outliving the ack deadline) both classify, but only
one writes.
"""

from __future__ import annotations

import time

import flask
import functions_framework

from shared import classifier as model
from shared import logs, store
from shared.config import get_settings
from shared.errors import ContentionError
from shared.review_event import PubSubMessage, RejectedMessage, RejectReason, parse_event, read_message


def _classify(text: str) -> store.Label:
    classifier = model.get_classifier()
    prediction = classifier.classify([text])[0]
    return store.Label(sentiment=prediction.as_dict(), model=dict(prediction.model))


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Failures that are nobody's fault and pass: retry them (imported here: main.py must stay light)."""
    from google.api_core import exceptions as api

    return (api.ServiceUnavailable, api.DeadlineExceeded, api.Aborted, api.InternalServerError, api.RetryError,
            api.TooManyRequests, api.GatewayTimeout, ContentionError)


def _reject(message: PubSubMessage, reason: RejectReason, detail: str) -> None:
    stored = store.save_rejected(message, reason.value, detail)
    logs.error("message rejected", reason_code=reason.value, reason=detail, message_id=message.message_id,
               publish_time=message.publish_time, stored=stored)


@functions_framework.http
def ingest_review(request: flask.Request) -> tuple[str, int]:
    body = request.get_data(cache=False)
    try:
        _ingest(body)
    except Exception as exc:  # log with the delivery, then raise: the push answers 5xx and is retried
        fields = {"message_id": _message_id(body), "error": repr(exc)[:500]}
        if isinstance(exc, _transient_errors()):
            logs.warning("transient failure; Pub/Sub will redeliver", **fields)
        else:
            logs.error("ingestion failed; Pub/Sub will redeliver, then dead-letter", **fields)
        raise
    return "", 204


def _message_id(body: bytes) -> str | None:
    try:
        return read_message(body).message_id
    except Exception:  # only for the log line of a delivery that already failed
        return None


def _ingest(body: bytes) -> None:
    from google.api_core.exceptions import InvalidArgument

    started = time.perf_counter()
    settings = get_settings()
    cold = not model.is_loaded()
    try:
        event = parse_event(body, settings.max_review_chars)
    except RejectedMessage as exc:
        _reject(exc.pubsub_message, exc.reason, exc.message)
        return
    try:
        result = store.save_review(event, _classify)
    except InvalidArgument as exc:  # valid JSON that Firestore cannot store (e.g. odd metadata keys): poison
        _reject(event.message, RejectReason.UNSTORABLE, f"Firestore refused the review: {str(exc)[:300]}")
        return
    logs.info("review ingested", outcome=result.outcome.value, review_id=event.review_id,
              message_id=event.message.message_id, publish_time=event.message.publish_time, rounds=result.rounds,
              classify_ms=result.classify_ms, firestore_ms=result.firestore_ms,
              latency_ms=round((time.perf_counter() - started) * 1000, 2), cold_start=cold,
              **({"text": event.text} if settings.log_review_text else {}))
