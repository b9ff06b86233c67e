"""Decoding the Firestore ``document.written`` CloudEvent into plain old/new snapshots.

Why a module of its own: the same event reaches the function in three shapes
and the function must not care who sent it. Eventarc (production) sends the
``DocumentEventData`` protobuf as raw bytes (``application/protobuf``); the
Firestore emulator sends the same protobuf as base64 text under the same
content type; tools and tests may send the proto3 JSON form. We sniff the body
rather than trust the content type, because the emulator's content type is
wrong for what it sends. A raw ``DocumentEventData`` can never look like base64:
its first byte is a field tag (0x0a, 0x12 or 0x1a), none of which is a base64
character. We never read ``update_mask`` or ``ce-source`` for decisions, since the
emulator leaves the first empty and repeats ``projects/`` in the second;
callers compare old and new themselves.

Firestore ``Value``s become plain Python (None, bool, int, float, str, bytes,
timezone-aware datetime, lists, dicts; references as their path string; geo
points as ``{"latitude", "longitude"}``), so the decision rule is a pure
function over dicts and unit tests need no protobuf.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.errors import ReviewsenseError

_BASE64 = re.compile(rb"[A-Za-z0-9+/=\s_-]*")
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_DOCUMENTS = "/documents/"


class InvalidEventError(ReviewsenseError):
    """The event body is not a Firestore document event; retrying cannot fix it."""

    code = "invalid_event"


@dataclass(frozen=True)
class DocumentSnapshot:
    """One side of a write: the document as it was (old) or became (new)."""

    name: str
    fields: dict[str, Any]
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def path(self) -> str:
        """``collection/id[/sub/id...]``, relative to the database (what triggers match on)."""
        _, sep, rest = self.name.partition(_DOCUMENTS)
        return rest if sep else self.name

    @property
    def collection(self) -> str:
        """The collection holding the document (the parent path for a subcollection)."""
        return self.path.rpartition("/")[0]

    @property
    def id(self) -> str:
        return self.path.rpartition("/")[2]


@dataclass(frozen=True)
class DocumentChange:
    """A decoded ``document.written`` event: ``old`` is None on create, ``new`` is None on delete."""

    old: DocumentSnapshot | None
    new: DocumentSnapshot | None
    update_mask: tuple[str, ...] = field(default=())

    @property
    def document(self) -> DocumentSnapshot | None:
        """Whichever side exists, to learn which document the event is about."""
        return self.new or self.old


def decode_document_event(data: bytes | str | Mapping[str, Any] | None) -> DocumentChange:
    """Decode ``CloudEvent.data`` in any of its three shapes; raise ``InvalidEventError`` otherwise."""
    if data is None:
        return DocumentChange(None, None)
    if isinstance(data, Mapping):
        return _from_json(data)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    stripped = raw.strip()
    if not stripped:
        return DocumentChange(None, None)
    if stripped[:1] == b"{":
        try:
            parsed = json.loads(stripped)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEventError(f"event body looks like JSON but does not parse: {exc}") from exc
        if not isinstance(parsed, Mapping):
            raise InvalidEventError("event body is JSON but not an object")
        return _from_json(parsed)
    if _BASE64.fullmatch(stripped):
        try:
            text = b"".join(stripped.split()).translate(_URLSAFE)
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidEventError(f"event body is text but not base64 of a DocumentEventData: {exc}") from exc
    return _from_protobuf(raw)


def _from_protobuf(raw: bytes) -> DocumentChange:
    from google.events.cloud.firestore_v1.types import DocumentEventData
    from google.protobuf.message import DecodeError

    try:
        message = DocumentEventData.pb(DocumentEventData.deserialize(raw))
    except (DecodeError, ValueError, TypeError) as exc:
        raise InvalidEventError(f"event body is not a DocumentEventData protobuf: {exc}") from exc
    return _from_message(message)


def _from_json(data: Mapping[str, Any]) -> DocumentChange:
    from google.events.cloud.firestore_v1.types import DocumentEventData
    from google.protobuf import json_format

    message = DocumentEventData.pb(DocumentEventData())
    try:
        json_format.ParseDict(dict(data), message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise InvalidEventError(f"event JSON is not a DocumentEventData: {exc}") from exc
    return _from_message(message)


def _from_message(message: Any) -> DocumentChange:
    old = _snapshot(message.old_value) if message.HasField("old_value") else None
    new = _snapshot(message.value) if message.HasField("value") else None
    mask = tuple(message.update_mask.field_paths) if message.HasField("update_mask") else ()
    return DocumentChange(old=old, new=new, update_mask=mask)


def _snapshot(document: Any) -> DocumentSnapshot:
    if not document.name:
        raise InvalidEventError("event document has no name")
    return DocumentSnapshot(
        name=document.name,
        fields={key: to_python(value) for key, value in document.fields.items()},
        create_time=_time(document.create_time) if document.HasField("create_time") else None,
        update_time=_time(document.update_time) if document.HasField("update_time") else None,
    )


def _time(timestamp: Any) -> datetime:
    value: datetime = timestamp.ToDatetime(tzinfo=UTC)
    return value


def to_python(value: Any) -> Any:
    """A Firestore ``Value`` protobuf (``google.events`` or raw message) as plain Python."""
    if hasattr(value, "_pb"):  # a proto-plus wrapper: work on the raw message
        value = value._pb
    kind = value.WhichOneof("value_type")
    if kind is None or kind == "null_value":
        return None
    if kind == "boolean_value":
        return bool(value.boolean_value)
    if kind == "integer_value":
        return int(value.integer_value)
    if kind == "double_value":
        return float(value.double_value)
    if kind == "string_value":
        return str(value.string_value)
    if kind == "bytes_value":
        return bytes(value.bytes_value)
    if kind == "reference_value":
        return str(value.reference_value)
    if kind == "timestamp_value":
        return _time(value.timestamp_value)
    if kind == "geo_point_value":
        point = value.geo_point_value
        return {"latitude": float(point.latitude), "longitude": float(point.longitude)}
    if kind == "array_value":
        return [to_python(item) for item in value.array_value.values]
    if kind == "map_value":
        return {key: to_python(item) for key, item in value.map_value.fields.items()}
    raise InvalidEventError(f"unknown Firestore value type {kind!r}")
