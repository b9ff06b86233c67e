"""Rows to label: from JSONL or CSV lines (with a column mapping) or Firestore documents, validated once.

Why one validator for every source: a bad row (no id, an id Firestore cannot hold, no text,
text too long, not real Unicode) must end in the dead-letter output with its reason, never
in the model or silently nowhere; the rules are the ones ``ingest_review`` applies.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.review_event import REVIEW_ID, canonical_time, sha256_text
from shared.untrusted_json import UntrustedJSONError, check_text

# Firestore orders document ids by their UTF-8 bytes: '-' < digits < upper case < '_' < lower case.
ID_ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"

DEFAULT_COLUMNS = {"id": "review_id", "text": "text", "created_at": "created_at", "source": "source",
                   "customer_id": "customer_id"}


@dataclass(frozen=True)
class Row:
    review_id: str
    text: str
    created_at: str | None = None
    source: str | None = None
    customer_id: str | None = None
    stored: dict[str, Any] | None = field(default=None, compare=False)  # the document, when read from Firestore

    @property
    def text_sha256(self) -> str:
        return sha256_text(self.text)


@dataclass(frozen=True)
class Rejected:
    key: str  # where the row came from (file:line, or reviews/<id>): unique per row, so each is kept
    reason_code: str
    reason: str
    raw: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_columns(spec: str | None) -> dict[str, str]:
    """``id=review_id,text=body`` -> our field -> the source's column (the rest keep their default names)."""
    columns = dict(DEFAULT_COLUMNS)
    for part in filter(None, (spec or "").split(",")):
        ours, _, theirs = part.partition("=")
        if ours.strip() not in DEFAULT_COLUMNS or not theirs.strip():
            raise ValueError(f"--columns: {part!r} is not one of {sorted(DEFAULT_COLUMNS)}=<column>")
        columns[ours.strip()] = theirs.strip()
    return columns


def validate(record: Mapping[str, Any], columns: Mapping[str, str], max_chars: int, where: str,
             stored: dict[str, Any] | None = None) -> Row | Rejected:
    raw = json.dumps(record, ensure_ascii=False, default=str)[:2000]
    review_id, text = record.get(columns["id"]), record.get(columns["text"])
    key = where
    if not isinstance(review_id, str) or not REVIEW_ID.fullmatch(review_id) or review_id.startswith("__"):
        return Rejected(key, "bad_review_id", f"{columns['id']} must be 1 to 128 letters, digits, '-' or '_'", raw)
    if not isinstance(text, str) or not text.strip():
        return Rejected(key, "missing_text", f"{columns['text']} is missing or empty", raw)
    try:
        check_text(text, columns["text"])
    except UntrustedJSONError as exc:
        return Rejected(key, "invalid_text", str(exc), raw)
    if len(text) > max_chars:
        return Rejected(key, "text_too_long", f"{len(text)} characters; at most {max_chars}", raw)
    created_at = record.get(columns["created_at"])
    if (created_at is not None and not isinstance(created_at, str)) or (
            isinstance(created_at, str) and created_at and canonical_time(created_at) is None):
        return Rejected(key, "bad_created_at", f"{columns['created_at']} {str(created_at)[:40]!r} is not ISO 8601", raw)

    def optional(name: str) -> str | None:
        value = record.get(columns[name])
        return str(value)[:1024] if value not in (None, "") else None

    return Row(review_id, text, created_at or None, optional("source"), optional("customer_id"), stored)


def from_json_line(line: str, columns: Mapping[str, str], max_chars: int, where: str) -> Row | Rejected:
    try:
        record = json.loads(line)
    except ValueError as exc:
        return Rejected(where, "not_json", f"not a JSON line: {exc}"[:300], line[:2000])
    if not isinstance(record, dict):
        return Rejected(where, "bad_schema", "a JSON line must be an object", line[:2000])
    return validate(record, columns, max_chars, where)


def from_csv_line(line: str, header: list[str], columns: Mapping[str, str], max_chars: int,
                  where: str) -> Row | Rejected:
    try:
        values = next(csv.reader(io.StringIO(line)))
    except (csv.Error, StopIteration) as exc:
        return Rejected(where, "bad_csv", f"not a CSV row: {exc}", line[:2000])
    if len(values) != len(header):
        return Rejected(where, "bad_csv", f"{len(values)} fields; the header has {len(header)}", line[:2000])
    return validate(dict(zip(header, values, strict=True)), columns, max_chars, where)


def from_document(review_id: str, fields: dict[str, Any], max_chars: int) -> Row | Rejected:
    record = {**fields, "review_id": review_id}
    return validate(record, DEFAULT_COLUMNS, max_chars, f"reviews/{review_id}", stored=fields)


def id_shards(count: int) -> list[tuple[str | None, str | None]]:
    """``count`` contiguous id ranges covering every document id: [start, end), None = unbounded."""
    step = max(1, len(ID_ALPHABET) // count)
    starts = [ID_ALPHABET[i] for i in range(0, len(ID_ALPHABET), step)][:count]
    bounds: list[str | None] = [None, *starts[1:], None]
    return list(itertools.pairwise(bounds))
