"""What the local stack shows: a live table of reviews, rejections and follow-ups, and the summary.

Why polling Firestore (every ~0.5 s) rather than following the functions' logs: the
documents are the product's output, so what the table shows is what a user of the
system would see, edits and redeliveries included. Reading three small collections
from the emulator takes milliseconds.

Two outputs from the same snapshots: a ``rich`` table that updates in place on a
terminal, and one line per change when the output is not a terminal (a log file, CI,
the end-to-end test), so nothing is lost to cursor movements.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from shared.config import Settings

LABEL_STYLES = {"negative": "bold red", "neutral": "yellow", "positive": "green"}
STATUS_STYLES = {"open": "bold red", "needs_review": "yellow", "resolved_by_edit": "green"}
REVIEW_ROWS = 14
FOLLOWUP_ROWS = 8
REJECTED_ROWS = 6


@dataclass
class Snapshot:
    """The three collections as read at one moment, plus what the stack pulled from Pub/Sub."""

    reviews: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: dict[str, dict[str, Any]] = field(default_factory=dict)
    followups: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: dict[str, dict[str, Any]] = field(default_factory=dict)  # follow-up topic, by message id
    dead_letters: dict[str, dict[str, Any]] = field(default_factory=dict)  # dead-letter topic, by message id


class FirestoreReader:
    """Reads the stack's collections from the Firestore emulator (this process talks to no real project)."""

    def __init__(self, host: str, project: str, settings: Settings, timeout: float = 10.0) -> None:
        self._timeout = timeout
        os.environ["FIRESTORE_EMULATOR_HOST"] = host
        from google.cloud import firestore

        self._db = firestore.Client(project=project)
        self._collections = (settings.reviews_collection, settings.rejected_collection,
                             settings.followups_collection)

    def _read(self, collection: str) -> dict[str, dict[str, Any]]:
        return {doc.id: doc.to_dict() or {} for doc in self._db.collection(collection).stream(timeout=self._timeout)}

    def read(self, into: Snapshot) -> Snapshot:
        reviews, rejected, followups = (self._read(name) for name in self._collections)
        into.reviews, into.rejected, into.followups = reviews, rejected, followups
        return into

    def close(self) -> None:
        self._db.close()


# --- helpers -----------------------------------------------------------------------------------

def _when(doc: Mapping[str, Any], *keys: str) -> float:
    for key in keys:
        value = doc.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
    return 0.0


def excerpt(text: object, limit: int = 60) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def sentiment(doc: Mapping[str, Any]) -> tuple[str, float | None]:
    value = doc.get("sentiment")
    if not isinstance(value, Mapping):
        return "", None
    score = value.get("score")
    return str(value.get("label") or ""), float(score) if isinstance(score, int | float) else None


def _score(score: float | None) -> str:
    return "" if score is None else f"{score:.3f}"


def _label(label: str) -> Text:
    return Text(label, style=LABEL_STYLES.get(label, ""))


def recent(docs: Mapping[str, dict[str, Any]], *keys: str, limit: int) -> list[tuple[str, dict[str, Any]]]:
    return sorted(docs.items(), key=lambda item: _when(item[1], *keys), reverse=True)[:limit]


def followup_counts(followups: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = {"open": 0, "needs_review": 0, "resolved_by_edit": 0}
    for doc in followups:
        status = str(doc.get("status"))
        counts[status] = counts.get(status, 0) + 1
    return counts


# --- the live table ----------------------------------------------------------------------------

def _table(title: str, *columns: tuple[str, dict[str, Any]]) -> Table:
    table = Table(title=title, expand=True, title_justify="left")
    for name, options in columns:
        table.add_column(name, **options)
    return table


def render(snapshot: Snapshot, header: str, progress: str | None = None) -> RenderableType:
    counts = followup_counts(snapshot.followups.values())
    edited = sum(1 for doc in snapshot.reviews.values() if doc.get("edited"))
    totals = Text.assemble(
        ("labeled ", "bold"), str(len(snapshot.reviews)), f" ({edited} edited)   ",
        ("rejected ", "bold"), str(len(snapshot.rejected)), "   ",
        ("follow-ups ", "bold"), f"{counts['open']} open, {counts['needs_review']} needs_review, "
                                 f"{counts['resolved_by_edit']} resolved_by_edit   ",
        ("notifications ", "bold"), str(len(snapshot.notifications)), "   ",
        ("dead letters ", "bold"), str(len(snapshot.dead_letters)))
    lines: list[RenderableType] = [Text(header), totals]
    if progress:
        lines.append(Text(progress, style="cyan"))

    reviews = _table("reviews (newest first)", ("review id", {"no_wrap": True, "max_width": 22}), ("label", {}),
                     ("score", {}), ("source", {"max_width": 12}), ("edited", {}),
                     ("excerpt", {"ratio": 1, "no_wrap": True}))
    for review_id, doc in recent(snapshot.reviews, "classified_at", limit=REVIEW_ROWS):
        label, score = sentiment(doc)
        reviews.add_row(review_id, _label(label), _score(score), str(doc.get("source") or ""),
                        "yes" if doc.get("edited") else "", excerpt(doc.get("text")))

    followups = _table("follow-ups (newest first)", ("review id", {"no_wrap": True, "max_width": 22}),
                       ("status", {}), ("priority", {}), ("score", {}), ("notified", {}),
                       ("evidence", {"ratio": 1, "no_wrap": True}))
    for review_id, doc in recent(snapshot.followups, "updated_at", "created_at", limit=FOLLOWUP_ROWS):
        status = str(doc.get("status") or "")
        evidence = doc.get("evidence") or []
        followups.add_row(review_id, Text(status, style=STATUS_STYLES.get(status, "")), str(doc.get("priority") or ""),
                          _score(sentiment(doc)[1]), ", ".join(sorted(doc.get("notifications") or {})),
                          excerpt(" | ".join(map(str, evidence)), 120))

    rejected = _table("rejected messages (newest first)", ("message id", {"no_wrap": True}), ("reason code", {}),
                      ("reason", {"ratio": 1, "no_wrap": True}))
    for message_id, doc in recent(snapshot.rejected, "rejected_at", limit=REJECTED_ROWS):
        rejected.add_row(message_id, str(doc.get("reason_code") or ""), excerpt(doc.get("reason"), 100))

    return Group(Panel(Group(*lines), title="reviewsense local stack", title_align="left"), reviews, followups,
                 rejected)


# --- one line per change (not a terminal) ------------------------------------------------------

@dataclass
class ChangeLog:
    """Remembers what was already reported, so each change is printed once."""

    seen: set[tuple[str, ...]] = field(default_factory=set)

    def lines(self, snapshot: Snapshot) -> list[str]:
        out: list[str] = []

        def new(key: tuple[str, ...]) -> bool:
            if key in self.seen:
                return False
            self.seen.add(key)
            return True

        for review_id, doc in recent(snapshot.reviews, "classified_at", limit=len(snapshot.reviews))[::-1]:
            if new(("review", review_id, str(doc.get("text_sha256")))):
                label, score = sentiment(doc)
                verb = "edited " if doc.get("edited") else "labeled"
                out.append(f"{verb}   {review_id:<24} {label:<8} {_score(score):<6} {doc.get('source') or '-':<10} "
                           f"{excerpt(doc.get('text'))}")
        for message_id, doc in recent(snapshot.rejected, "rejected_at", limit=len(snapshot.rejected))[::-1]:
            if new(("rejected", message_id)):
                out.append(f"rejected  message {message_id:<15} {doc.get('reason_code')}: {excerpt(doc.get('reason'))}")
        for review_id, doc in recent(snapshot.followups, "updated_at", "created_at",
                                     limit=len(snapshot.followups))[::-1]:
            status = str(doc.get("status"))
            if new(("followup", review_id, status)):
                out.append(f"follow-up {review_id:<24} {status} ({doc.get('priority')} priority, score "
                           f"{_score(sentiment(doc)[1])})")
            if "pubsub" in (doc.get("notifications") or {}) and new(("notified", review_id)):
                out.append(f"notified  {review_id:<24} on the follow-up topic")
        return out


# --- the summary -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    labeled: int
    edited: int
    rejected: int
    followups_open: int
    followups_needs_review: int
    followups_resolved_by_edit: int
    notifications: int
    dead_letters: int
    messages: int  # published by the sample run
    elapsed_s: float  # first publish to last outcome
    reviews_per_s: float  # messages settled (labeled or rejected) per second

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def summarize(snapshot: Snapshot, messages: int, elapsed_s: float) -> Summary:
    counts = followup_counts(snapshot.followups.values())
    return Summary(
        labeled=len(snapshot.reviews), edited=sum(1 for doc in snapshot.reviews.values() if doc.get("edited")),
        rejected=len(snapshot.rejected), followups_open=counts["open"],
        followups_needs_review=counts["needs_review"], followups_resolved_by_edit=counts["resolved_by_edit"],
        notifications=len(snapshot.notifications), dead_letters=len(snapshot.dead_letters), messages=messages,
        elapsed_s=round(elapsed_s, 2), reviews_per_s=round(messages / elapsed_s, 2) if elapsed_s > 0 else 0.0)


def render_summary(summary: Summary) -> Table:
    table = Table(title="sample run: summary", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("labeled", f"{summary.labeled} ({summary.edited} edited)"),
        ("rejected", str(summary.rejected)),
        ("follow-ups open", str(summary.followups_open)),
        ("follow-ups needs_review", str(summary.followups_needs_review)),
        ("follow-ups resolved_by_edit", str(summary.followups_resolved_by_edit)),
        ("notifications on the follow-up topic", str(summary.notifications)),
        ("dead letters", str(summary.dead_letters)),
        ("messages published", str(summary.messages)),
        ("elapsed (first publish to last outcome)", f"{summary.elapsed_s:.1f} s"),
        ("throughput", f"{summary.reviews_per_s:.2f} messages/s (cold model load included)"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
