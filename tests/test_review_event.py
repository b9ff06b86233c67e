"""What the ingestion function accepts as a review, and the reason it gives for everything else.

Pure parsing, no emulator: the poison-message rules must hold whatever the delivery path.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from shared.review_event import (
    MAX_RAW_BYTES,
    PubSubMessage,
    RejectedMessage,
    RejectReason,
    canonical_time,
    order_key,
    parse_event,
    read_message,
    sha256_text,
)

MAX_CHARS = 50


def event_data(payload: Any, *, raw: bytes | None = None, snake: bool = False, **message: Any) -> dict[str, Any]:
    body = raw if raw is not None else json.dumps(payload).encode("utf-8")
    msg: dict[str, Any] = {"data": base64.b64encode(body).decode("ascii"), "attributes": {"origin": "test"}}
    if snake:
        msg.update(message_id="42", publish_time="2026-01-02T03:04:05.123456789Z")
    else:
        msg.update(messageId="42", publishTime="2026-01-02T03:04:05.123Z")
    msg.update(message)
    return {"message": msg, "subscription": "projects/p/subscriptions/s"}


def rejection(data: Any, **kwargs: Any) -> RejectedMessage:
    with pytest.raises(RejectedMessage) as info:
        parse_event(data, MAX_CHARS, **kwargs)
    return info.value


def test_a_full_review_keeps_every_field_and_the_delivery() -> None:
    payload = {"review_id": "r-1_A", "text": "Great app", "customer_id": "c9", "source": "appstore",
               "created_at": "2026-01-01T10:00:00+02:00", "metadata": {"stars": 5, "tags": ["a"]},
               "future_field": "ignored"}
    event = parse_event(event_data(payload), MAX_CHARS)
    assert (event.review_id, event.text, event.customer_id, event.source) == ("r-1_A", "Great app", "c9", "appstore")
    assert event.created_at == "2026-01-01T10:00:00+02:00"
    assert event.metadata == {"stars": 5, "tags": ["a"]}
    assert event.message.message_id == "42"
    assert event.message.publish_time == "2026-01-02T03:04:05.123000Z"
    assert event.message.attributes == {"origin": "test"}
    assert event.message.subscription == "projects/p/subscriptions/s"
    fields = event.review_fields()
    assert fields["text_sha256"] == sha256_text("Great app")
    assert fields["attributes"] == {"origin": "test"}
    assert "future_field" not in fields


def test_optional_fields_default_to_null_and_an_empty_map() -> None:
    event = parse_event(event_data({"review_id": "x", "text": "ok"}), MAX_CHARS)
    assert (event.customer_id, event.source, event.created_at, event.metadata) == (None, None, None, {})


def test_snake_case_envelope_and_nanosecond_publish_times_are_read() -> None:
    event = parse_event(event_data({"review_id": "x", "text": "ok"}, snake=True), MAX_CHARS)
    assert event.message.message_id == "42"
    assert event.message.publish_time == "2026-01-02T03:04:05.123456Z"


def test_missing_ids_and_times_fall_back_to_the_cloud_event() -> None:
    data = event_data({"review_id": "x", "text": "ok"})
    del data["message"]["messageId"], data["message"]["publishTime"]
    event = parse_event(data, MAX_CHARS, event_id="777", event_time="2026-05-05T05:05:05Z")
    assert event.message.message_id == "777"
    assert event.message.publish_time == "2026-05-05T05:05:05.000000Z"


def test_text_of_exactly_the_limit_is_accepted_one_more_is_rejected() -> None:
    assert parse_event(event_data({"review_id": "x", "text": "a" * MAX_CHARS}), MAX_CHARS).text == "a" * MAX_CHARS
    error = rejection(event_data({"review_id": "x", "text": "a" * (MAX_CHARS + 1)}))
    assert error.reason is RejectReason.TEXT_TOO_LONG


@pytest.mark.parametrize(("data", "reason"), [
    (event_data(None, raw=b"not json at all"), RejectReason.NOT_JSON),
    (event_data(None, raw=b"\xff\xfe{}"), RejectReason.NOT_UTF8),
    (event_data(None, raw=b""), RejectReason.EMPTY_PAYLOAD),
    (event_data(None, raw=b"[1, 2]"), RejectReason.BAD_SCHEMA),
    (event_data(None, raw=b"[" * 100_000), RejectReason.NOT_JSON),
    ({"message": {"data": "!!not base64!!", "messageId": "1"}}, RejectReason.BAD_BASE64),
    ({"subscription": "s"}, RejectReason.BAD_ENVELOPE),
    ("plain text", RejectReason.BAD_ENVELOPE),
    (event_data({"text": "no id"}), RejectReason.BAD_REVIEW_ID),
    (event_data({"review_id": "a/b", "text": "t"}), RejectReason.BAD_REVIEW_ID),
    (event_data({"review_id": "x" * 129, "text": "t"}), RejectReason.BAD_REVIEW_ID),
    (event_data({"review_id": "__reserved__", "text": "t"}), RejectReason.BAD_REVIEW_ID),
    (event_data({"review_id": 12, "text": "t"}), RejectReason.BAD_REVIEW_ID),
    (event_data({"review_id": "x"}), RejectReason.MISSING_TEXT),
    (event_data({"review_id": "x", "text": "   "}), RejectReason.MISSING_TEXT),
    (event_data({"review_id": "x", "text": ["list"]}), RejectReason.BAD_SCHEMA),
    (event_data({"review_id": "x", "text": "t", "customer_id": 7}), RejectReason.BAD_SCHEMA),
    (event_data({"review_id": "x", "text": "t", "source": "s" * 2000}), RejectReason.BAD_SCHEMA),
    (event_data({"review_id": "x", "text": "t", "created_at": "yesterday"}), RejectReason.BAD_CREATED_AT),
    (event_data({"review_id": "x", "text": "t", "metadata": [1]}), RejectReason.BAD_SCHEMA),
    (event_data({"review_id": "x", "text": "t", "metadata": {"k": "v" * 20_000}}), RejectReason.METADATA_TOO_LARGE),
    (event_data({"review_id": "x", "text": "t", "metadata": json.loads('{"a":' * 12 + "1" + "}" * 12)}),
     RejectReason.BAD_SCHEMA),
])
def test_poison_messages_are_rejected_with_their_reason(data: Any, reason: RejectReason) -> None:
    error = rejection(data, event_id="99")
    assert error.reason is reason
    assert error.code == reason.value
    assert error.pubsub_message.message_id  # always something to key rejected_events on


def test_a_bad_envelope_is_still_identified_and_its_payload_kept() -> None:
    error = rejection({"subscription": "s", "oops": True}, event_id="555")
    assert error.pubsub_message.message_id == "555"
    raw, truncated = error.pubsub_message.raw_payload()
    assert json.loads(raw) == {"subscription": "s", "oops": True}
    assert truncated is False


def test_message_ids_that_cannot_be_document_ids_are_replaced_by_a_digest() -> None:
    message = read_message(event_data({"review_id": "x", "text": "t"}, messageId="a/b"))
    assert "/" not in message.message_id and message.message_id.startswith("id-")


@pytest.mark.parametrize(("payload", "expected", "truncated"), [
    (b"short text", "short text", False),
    ("é".encode() * MAX_RAW_BYTES, "é" * (MAX_RAW_BYTES // 2), True),
])
def test_raw_payload_is_text_when_utf8_and_truncated_to_a_safe_size(payload: bytes, expected: str,
                                                                       truncated: bool) -> None:
    message = PubSubMessage("1", "t", base64.b64encode(payload).decode())
    assert message.raw_payload() == (expected, truncated)


def test_raw_payload_is_base64_when_not_utf8_and_kept_as_received_when_not_base64() -> None:
    binary = bytes(range(256)) * 100
    raw, truncated = PubSubMessage("1", "t", base64.b64encode(binary).decode()).raw_payload()
    assert truncated is True and len(raw) <= MAX_RAW_BYTES
    assert binary.startswith(base64.b64decode(raw))
    assert PubSubMessage("1", "t", "!!not base64!!").raw_payload() == ("!!not base64!!", False)


def test_canonical_times_sort_as_text() -> None:
    assert canonical_time("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05.000000Z"
    assert canonical_time("2026-01-02T05:04:05.5+02:00") == "2026-01-02T03:04:05.500000Z"
    assert canonical_time("not a time") is None
    assert canonical_time(None) is None


def test_deliveries_are_totally_ordered_by_publish_time_then_numeric_message_id() -> None:
    t1, t2 = "2026-01-01T00:00:00.000001Z", "2026-01-01T00:00:00.000002Z"
    assert order_key(t1, "999") < order_key(t2, "1")
    assert order_key(t1, "9") < order_key(t1, "10")


@pytest.mark.parametrize(("raw", "detail"), [
    (b"[" * 100_000, "not valid JSON"),
    (b'{"review_id": "r1", "text": "hi", "n": ' + b"9" * 100_000 + b"}", "characters; at most"),
    (b'{"review_id": "r1", "text": "\\ud800 hi"}', "lone surrogate"),
    (b'{"review_id": "r1", "text": "a", "text": "b"}', "appears twice"),
    (b'{"review_id": "r1", "text": "hi", "metadata": ' + b'{"a": ' * 600 + b"1" + b"}" * 600 + b"}", "nests deeper"),
])
def test_hostile_payloads_are_kept_as_rejections_not_retried(raw: bytes, detail: str) -> None:
    """Each of these crashed the handler before (so Pub/Sub retried it five times and dead-lettered it)."""
    rejected = rejection(event_data(None, raw=raw))
    assert rejected.reason is RejectReason.NOT_JSON
    assert detail in rejected.message
