"""Firestore document triggers on the local emulator, the real way (one helper for tests and the local stack).

Why: ``gcloud emulators firestore start`` cannot deliver document events, but the
emulator itself can when it is started through its own launcher with
``--functions_emulator=HOST:PORT``: register a trigger with
``POST /emulator/v1/projects/PROJECT/eventarcTrigger?eventarcTriggerId=KEY`` and it
POSTs a binary-mode CloudEvent to ``http://HOST:PORT/functions/projects/PROJECT/triggers/KEY``
within tens of milliseconds of each matching write. A functions-framework server
started with ``--signature-type cloudevent`` answers POSTs on any path, so it can be
that host as is.

What the emulator sends differs from Eventarc in ways the function absorbs: the body
is base64 text of the ``DocumentEventData`` protobuf (not raw bytes), ``ce-source``
repeats ``projects/``, ``update_mask`` is empty, and a failed delivery is never
retried. So tests that need a retry redeliver the event themselves, as Eventarc
would: ``written_event`` builds the same request (base64 like the emulator, or raw
protobuf like Eventarc) and ``deliver`` sends it.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.document_event import DocumentSnapshot

WRITTEN = "google.cloud.firestore.document.v1.written"
DATASCHEMA = "https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/firestore/v1/data.proto"


def trigger_path(project: str, trigger_id: str) -> str:
    """Where the emulator POSTs the events of trigger ``trigger_id`` on the functions host."""
    return f"/functions/projects/{project}/triggers/{trigger_id}"


def register_written_trigger(firestore_host: str, project: str, trigger_id: str, collection: str | None = None,
                             *, wildcard: str = "review_id", database: str = "(default)",
                             timeout: float = 10.0) -> str:
    """Ask the emulator to deliver ``document.written`` events of ``COLLECTION/{id}``; return the POST path.

    ``collection`` defaults to the reviews collection from the settings. Registering the
    same ``trigger_id`` again replaces it, so this is safe to call on every start.
    """
    if collection is None:
        from shared.config import get_settings

        collection = get_settings().reviews_collection
    body = {"eventType": WRITTEN, "database": database, "namespace": "(default)",
            "document": {"value": f"{collection}/{{{wildcard}}}", "matchType": "PATH_PATTERN"}}
    url = f"http://{firestore_host}/emulator/v1/projects/{project}/eventarcTrigger?eventarcTriggerId={trigger_id}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"the Firestore emulator at {firestore_host} refused the trigger {trigger_id}: "
                           f"{exc.code} {exc.read()[:500]!r}") from exc
    return trigger_path(project, trigger_id)


def encode_value(value: Any) -> Any:
    """Plain Python to a Firestore ``Value`` protobuf (the inverse of ``shared.document_event.to_python``)."""
    from google.events.cloud.firestore_v1.types import Value

    out = Value.pb(Value())
    if value is None:
        out.null_value = 0
    elif isinstance(value, bool):
        out.boolean_value = value
    elif isinstance(value, int):
        out.integer_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, datetime):
        out.timestamp_value.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    elif isinstance(value, list | tuple):
        out.array_value.SetInParent()
        for item in value:
            out.array_value.values.append(encode_value(item))
    elif isinstance(value, Mapping):
        out.map_value.SetInParent()
        for key, item in value.items():
            out.map_value.fields[str(key)].CopyFrom(encode_value(item))
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as a Firestore value")
    return out


def _document(snapshot: DocumentSnapshot, target: Any) -> None:
    target.name = snapshot.name
    for key, item in snapshot.fields.items():
        target.fields[key].CopyFrom(encode_value(item))
    if snapshot.create_time is not None:
        target.create_time.FromDatetime(snapshot.create_time)
    if snapshot.update_time is not None:
        target.update_time.FromDatetime(snapshot.update_time)


def document_name(project: str, path: str, database: str = "(default)") -> str:
    return f"projects/{project}/databases/{database}/documents/{path}"


def written_event(project: str, old: DocumentSnapshot | None, new: DocumentSnapshot | None, *,
                  base64_body: bool = True, event_id: str | None = None,
                  database: str = "(default)", time: datetime | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body of a binary-mode ``document.written`` CloudEvent, as the emulator
    (``base64_body=True``) or Eventarc (raw protobuf) sends it; ``time``: when the write happened (now)."""
    from google.events.cloud.firestore_v1.types import DocumentEventData

    message = DocumentEventData.pb(DocumentEventData())
    if old is not None:
        _document(old, message.old_value)
    if new is not None:
        _document(new, message.value)
    raw = message.SerializeToString()
    document = new or old
    path = document.path if document is not None else ""
    headers = {
        "ce-specversion": "1.0",
        "ce-type": WRITTEN,
        "ce-source": f"//firestore.googleapis.com/projects/{project}/databases/{database}",
        "ce-id": event_id or str(uuid.uuid4()),
        "ce-subject": f"documents/{path}",
        "ce-time": (time or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ce-datacontenttype": "application/protobuf",
        "ce-dataschema": DATASCHEMA,
        "ce-project": project,
        "ce-database": database,
        "ce-namespace": "(default)",
        "ce-document": path,
        "Content-Type": "application/protobuf",
    }
    return headers, base64.b64encode(raw) if base64_body else raw


def deliver(url: str, headers: Mapping[str, str], body: bytes, timeout: float = 60.0) -> int:
    """POST one event to a function, as a trigger would; return the HTTP status (no raise on 5xx)."""
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)
