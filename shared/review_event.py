"""From the CloudEvent of a Pub/Sub message to a validated ``ReviewEvent``, or a typed rejection.

Why a separate, pure module: what counts as a poison message (acknowledged and kept in
``rejected_events``) versus a review we label is a product decision that must be
testable without Firestore or Pub/Sub, and the handler must never guess.

The envelope is read leniently (Eventarc writes both ``messageId`` and ``message_id``,
``publishTime`` and ``publish_time``; functions-framework's conversion of a raw push
writes the camelCase ones and drops ``subscription``), because a message we cannot
identify cannot even be rejected properly. The payload is read strictly: UTF-8 JSON
object, ``review_id`` usable as a Firestore document id, non-empty ``text`` within
``max_review_chars``, optional fields of the documented types. Unknown payload fields
are ignored, so publishers can add fields before we read them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared import untrusted_json
from shared.errors import InvalidInputError

REVIEW_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# Rejected events are keyed by message id; anything else is replaced by a digest.
SAFE_DOC_ID = re.compile(r"[A-Za-z0-9_.-]{1,256}")
MAX_RAW_BYTES = 16 * 1024  # what rejected_events keeps of a poison payload
MAX_SHORT_FIELD = 1024  # customer_id, source
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 10  # Firestore allows 20 levels; we keep room for our own nesting


class RejectReason(StrEnum):
    """Why a message is acknowledged without a label. Stable codes: dashboards and replays key on them."""

    BAD_ENVELOPE = "bad_envelope"  # the CloudEvent data is not a Pub/Sub message
    EMPTY_PAYLOAD = "empty_payload"
    BAD_BASE64 = "bad_base64"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    BAD_SCHEMA = "bad_schema"  # not an object, or a field of the wrong type
    BAD_REVIEW_ID = "bad_review_id"
    MISSING_TEXT = "missing_text"
    TEXT_TOO_LONG = "text_too_long"
    BAD_CREATED_AT = "bad_created_at"
    METADATA_TOO_LARGE = "metadata_too_large"
    UNSTORABLE = "unstorable"  # valid JSON that Firestore refuses to store (InvalidArgument)


@dataclass(frozen=True)
class PubSubMessage:
    """The envelope: what identifies a delivery, whatever its payload holds."""

    message_id: str
    publish_time: str  # canonical UTC ISO 8601 with microseconds: sorts as text
    data: str  # base64 text as received ("" when absent)
    attributes: dict[str, str] = field(default_factory=dict)
    subscription: str | None = None

    def raw_payload(self) -> tuple[str, bool]:
        """The payload for ``rejected_events``: text if UTF-8, else base64; truncated to ``MAX_RAW_BYTES``."""
        try:
            raw = base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError):
            text = self.data
            return text[:MAX_RAW_BYTES], len(text) > MAX_RAW_BYTES
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            kept = raw[:MAX_RAW_BYTES * 3 // 4]  # base64 grows by 4/3
            return base64.b64encode(kept).decode("ascii"), len(kept) < len(raw)
        if len(raw) <= MAX_RAW_BYTES:
            return text, False
        return raw[:MAX_RAW_BYTES].decode("utf-8", errors="ignore"), True


@dataclass(frozen=True)
class ReviewEvent:
    """A validated review, ready to label, with the delivery it came in."""

    review_id: str
    text: str
    customer_id: str | None
    source: str | None
    created_at: str | None
    metadata: dict[str, Any]
    message: PubSubMessage

    @property
    def text_sha256(self) -> str:
        return sha256_text(self.text)

    @property
    def order_key(self) -> tuple[str, int, str]:
        return order_key(self.message.publish_time, self.message.message_id)

    def review_fields(self) -> dict[str, Any]:
        """The document fields that come from the message (the contract in docs)."""
        return {
            "review_id": self.review_id,
            "text": self.text,
            "customer_id": self.customer_id,
            "source": self.source,
            "created_at": self.created_at,
            "metadata": self.metadata,
            "attributes": dict(self.message.attributes),
            "text_sha256": self.text_sha256,
            "message_id": self.message.message_id,
            "publish_time": self.message.publish_time,
        }


class RejectedMessage(InvalidInputError):
    """A poison message: acknowledge it, keep it in ``rejected_events``, never retry it."""

    def __init__(self, reason: RejectReason, detail: str, message: PubSubMessage) -> None:
        super().__init__(detail, code=reason.value)
        self.reason = reason
        self.pubsub_message = message


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def order_key(publish_time: str, message_id: str) -> tuple[str, int, str]:
    """Total order of deliveries: publish time, then message id (numeric ids compare as numbers).

    The tie-break matters: two edits published in the same millisecond must not
    overwrite each other back and forth on every redelivery.
    """
    numeric = int(message_id) if message_id.isdigit() and len(message_id) < 40 else -1
    return publish_time, numeric, message_id


def canonical_time(value: object) -> str | None:
    """An RFC 3339 timestamp as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC), or None when unreadable.

    Pub/Sub gives milliseconds to nanoseconds; Python reads at most microseconds.
    """
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _safe_id(value: str) -> str:
    if SAFE_DOC_ID.fullmatch(value) and value not in {".", ".."} and not re.fullmatch(r"__.*__", value):
        return value
    return "id-" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:40]


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if mapping.get(key) not in (None, ""):
            return mapping[key]
    return None


# Set by ``ops/replay_dead_letters.py`` on a dead-lettered message it republishes: the id and original publish time
# of that message, which the replayed copy takes as its own, so a replay is a redelivery of the same message.
REPLAY_ID = "reviewsense_replay_of"
REPLAY_PUBLISH_TIME = "reviewsense_replay_publish_time"


def _replayed(attributes: Mapping[str, str]) -> tuple[str, str] | None:
    message_id, publish_time = attributes.get(REPLAY_ID), canonical_time(attributes.get(REPLAY_PUBLISH_TIME))
    return (message_id, publish_time) if message_id and publish_time else None


def read_message(data: object, event_id: str | None = None, event_time: str | None = None,
                 now: datetime | None = None) -> PubSubMessage:
    """The envelope of a ``messagePublished`` CloudEvent; raises ``RejectedMessage`` if it is not one."""
    if isinstance(data, bytes | str):
        with contextlib.suppress(ValueError):  # UntrustedJSONError and UnicodeDecodeError are ValueErrors
            data = untrusted_json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    message = data.get("message") if isinstance(data, Mapping) else None
    subscription = data.get("subscription") if isinstance(data, Mapping) else None
    body: Mapping[str, Any] = message if isinstance(message, Mapping) else {}
    message_id = _first(body, "messageId", "message_id") or event_id
    publish_time = (canonical_time(_first(body, "publishTime", "publish_time")) or canonical_time(event_time)
                    or (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    attributes = body.get("attributes")
    raw_data = body.get("data")
    if not isinstance(message, Mapping):
        if isinstance(data, bytes):
            data = data.decode("utf-8", errors="replace")
        dumped = data if isinstance(data, str) else json.dumps(data, default=str)
        envelope = PubSubMessage(
            message_id=_safe_id(str(message_id or "nomsg-" + sha256_text(dumped))),
            publish_time=publish_time,
            data=base64.b64encode(dumped.encode("utf-8")).decode("ascii"),
            subscription=subscription if isinstance(subscription, str) else None)
        raise RejectedMessage(RejectReason.BAD_ENVELOPE, "the event data holds no Pub/Sub message object", envelope)
    data_text = raw_data if isinstance(raw_data, str) else ""
    kept = {str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, Mapping) else {}
    replayed = _replayed(kept)
    if replayed:
        message_id, publish_time = replayed
    return PubSubMessage(
        message_id=_safe_id(str(message_id or "nomsg-" + sha256_text(data_text))),
        publish_time=publish_time,
        data=data_text,
        attributes=kept,
        subscription=subscription if isinstance(subscription, str) else None,
    )


def _depth(value: object, level: int = 1) -> int:
    if isinstance(value, Mapping):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _optional_text(payload: Mapping[str, Any], key: str, message: PubSubMessage) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_SHORT_FIELD:
        raise RejectedMessage(RejectReason.BAD_SCHEMA, f"{key} must be a string of at most {MAX_SHORT_FIELD} "
                              "characters or null", message)
    return value


def parse_review(message: PubSubMessage, max_chars: int) -> ReviewEvent:
    """Decode and validate the payload; raises ``RejectedMessage`` with the reason."""
    if not message.data:
        raise RejectedMessage(RejectReason.EMPTY_PAYLOAD, "the message carries no data", message)
    try:
        raw = base64.b64decode(message.data, validate=True)
    except (binascii.Error, ValueError):
        raise RejectedMessage(RejectReason.BAD_BASE64, "message data is not valid base64", message) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedMessage(RejectReason.NOT_UTF8, f"payload is not UTF-8 (byte {exc.start})", message) from None
    try:
        payload = untrusted_json.loads(text)
    except untrusted_json.UntrustedJSONError as exc:
        raise RejectedMessage(RejectReason.NOT_JSON, f"payload is not JSON we accept ({str(exc)[:160]})",
                              message) from None
    if not isinstance(payload, dict):
        raise RejectedMessage(RejectReason.BAD_SCHEMA, f"payload must be a JSON object, not {type(payload).__name__}",
                              message)

    review_id = payload.get("review_id")
    if not isinstance(review_id, str) or not REVIEW_ID.fullmatch(review_id) or re.fullmatch(r"__.*__", review_id):
        raise RejectedMessage(RejectReason.BAD_REVIEW_ID, "review_id must be 1 to 128 letters, digits, '-' or '_' "
                              f"(got {str(review_id)[:40]!r})", message)
    review_text = payload.get("text")
    if review_text is not None and not isinstance(review_text, str):
        raise RejectedMessage(RejectReason.BAD_SCHEMA, "text must be a string", message)
    if not review_text or not review_text.strip():
        raise RejectedMessage(RejectReason.MISSING_TEXT, "text is missing or empty", message)
    if len(review_text) > max_chars:
        raise RejectedMessage(RejectReason.TEXT_TOO_LONG, f"text has {len(review_text)} characters; at most "
                              f"{max_chars}", message)

    customer_id = _optional_text(payload, "customer_id", message)
    source = _optional_text(payload, "source", message)
    created_at = _optional_text(payload, "created_at", message)
    if created_at is not None and canonical_time(created_at) is None:
        raise RejectedMessage(RejectReason.BAD_CREATED_AT, f"created_at {created_at[:40]!r} is not ISO 8601",
                              message)
    metadata = payload.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise RejectedMessage(RejectReason.BAD_SCHEMA, "metadata must be a JSON object", message)
    if len(json.dumps(metadata, ensure_ascii=False).encode("utf-8")) > MAX_METADATA_BYTES:
        raise RejectedMessage(RejectReason.METADATA_TOO_LARGE, f"metadata exceeds {MAX_METADATA_BYTES} bytes",
                              message)
    if _depth(metadata) > MAX_METADATA_DEPTH:
        raise RejectedMessage(RejectReason.BAD_SCHEMA, f"metadata nests deeper than {MAX_METADATA_DEPTH} levels",
                              message)
    return ReviewEvent(review_id=review_id, text=review_text, customer_id=customer_id, source=source,
                       created_at=created_at, metadata=metadata, message=message)


def parse_event(data: object, max_chars: int, event_id: str | None = None,
                event_time: str | None = None) -> ReviewEvent:
    """Envelope and payload in one step (what the handler calls)."""
    return parse_review(read_message(data, event_id, event_time), max_chars)
