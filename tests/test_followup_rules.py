"""The follow-up rule, the decoding of document events and the evidence picker, without emulators.

Why here and not only end to end: the rule decides when a person is paged, and the
decoder must read three shapes of the same event (Eventarc's protobuf, the
emulator's base64 of it, JSON); each case is cheap to state and to check here.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.firestore_triggers import document_name, written_event
from shared.config import Settings, load_settings
from shared.document_event import DocumentSnapshot, InvalidEventError, decode_document_event
from shared.evidence import negative_evidence, select_evidence, split_sentences
from shared.followup_outbox import Due, due
from shared.followup_rule import Action, Decision, decide
from shared.followup_state import Change, ReviewVersion, changes, on_negative
from shared.notify import MAX_MESSAGE_CHARS, WebhookError, chat_message

SETTINGS = load_settings({})

# A body the real Firestore emulator POSTed for `reviews/r1` (project "demo") when created with
# {text: "bad", status: "labeled", sentiment: {label: negative, score: 0.9, scores: {negative: 0.9}},
#  n: null, t: server timestamp, l: [1, "a", true], b: b"xy", g: GeoPoint(1, 2)}.
EMULATOR_BODY = (
    "CrQCCjZwcm9qZWN0cy9kZW1vL2RhdGFiYXNlcy8oZGVmYXVsdCkvZG9jdW1lbnRzL3Jldmlld3MvcjESCgoBYhIFkgECeHkSGQoBZxIUQhIJ"
    "AAAAAAAA8D8RAAAAAAAAAEASFQoBbBIQSg4KAhABCgSKAQFhCgIIARJeCglzZW50aW1lbnQSUTJPCiMKBnNjb3JlcxIZMhcKFQoIbmVnYXRp"
    "dmUSCRnNzMzMzMzsPwoUCgVsYWJlbBILigEIbmVnYXRpdmUKEgoFc2NvcmUSCRnNzMzMzMzsPxIOCgR0ZXh0EgaKAQNiYWQSBwoBbhICWAAS"
    "FAoGc3RhdHVzEgqKAQdsYWJlbGVkEhMKAXQSDlIMCJSTn9gGEICxrNIDGgsIlZOf2AYQmID6DiILCJWTn9gGEJiA+g4aAA==")


def review(label: str = "negative", score: float = 0.9, sha: str = "a" * 64, **extra: Any) -> dict[str, Any]:
    return {"review_id": "r1", "text": "It broke.", "status": "labeled", "text_sha256": sha,
            "sentiment": {"label": label, "score": score, "scores": {label: score}}, **extra}


# --- the rule ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("score", "action", "priority"), [
    (0.99, Action.OPEN, "high"),
    (0.95, Action.OPEN, "high"),
    (0.9499, Action.OPEN, "normal"),
    (0.80, Action.OPEN, "normal"),
    (0.7999, Action.NEEDS_REVIEW, "normal"),
    (0.55, Action.NEEDS_REVIEW, "normal"),
    (0.5499, Action.NONE, "normal"),
])
def test_new_negative_review_by_score(score: float, action: Action, priority: str) -> None:
    decision = decide(None, review(score=score), SETTINGS)
    assert (decision.action, decision.priority) == (action, priority)


@pytest.mark.parametrize("label", ["positive", "neutral"])
def test_positive_and_neutral_reviews_do_nothing(label: str) -> None:
    assert decide(None, review(label, 0.99), SETTINGS).action is Action.NONE
    assert decide(review(label, 0.99), review(label, 0.98, sha="b" * 64), SETTINGS).action is Action.NONE


def test_thresholds_come_from_settings() -> None:
    strict = load_settings({"FOLLOWUP_THRESHOLD": "0.9", "FOLLOWUP_UNSURE_MIN": "0.7",
                            "FOLLOWUP_HIGH_PRIORITY": "0.99"})
    assert decide(None, review(score=0.85), strict).action is Action.NEEDS_REVIEW
    assert decide(None, review(score=0.65), strict).action is Action.NONE
    assert decide(None, review(score=0.97), strict).priority == "normal"


def test_writes_that_are_not_a_transition_do_nothing() -> None:
    labeled = review(score=0.9)
    edited_other_field = {**labeled, "metadata": {"seen": True}}
    assert decide(labeled, edited_other_field, SETTINGS).action is Action.NONE
    relabeled_same_band = review(score=0.93)
    assert decide(labeled, relabeled_same_band, SETTINGS).action is Action.NONE
    assert decide(labeled, None, SETTINGS).action is Action.NONE  # deleted
    assert decide(None, {**labeled, "status": "pending"}, SETTINGS).action is Action.NONE
    assert decide(None, {"text": "no label yet"}, SETTINGS).action is Action.NONE


def test_transitions_into_negative_act() -> None:
    assert decide(review("neutral", 0.6), review(score=0.9), SETTINGS).action is Action.OPEN
    assert decide({**review(), "status": "pending"}, review(score=0.9), SETTINGS).action is Action.OPEN
    assert decide(review(score=0.6), review(score=0.9), SETTINGS).action is Action.OPEN  # unsure -> sure
    assert decide(review(score=0.3), review(score=0.6), SETTINGS).action is Action.NEEDS_REVIEW
    # an edit that stays negative is a transition of the text: the Firestore step makes it a no-op
    # for the existing follow-up (no second document, no second notification)
    assert decide(review(score=0.9), review(score=0.9, sha="b" * 64), SETTINGS).action is Action.OPEN


def test_edit_from_negative_to_positive_resolves() -> None:
    decision = decide(review(score=0.9), review("positive", 0.9, sha="b" * 64), SETTINGS)
    assert decision.action is Action.RESOLVE_BY_EDIT
    assert decide(review(score=0.9), review("neutral", 0.9, sha="b" * 64), SETTINGS).action is Action.NONE


def test_settings_defaults_match_the_issue() -> None:
    assert isinstance(SETTINGS, Settings)
    assert (SETTINGS.followup_threshold, SETTINGS.followup_high_priority, SETTINGS.followup_unsure_min) == (
        0.80, 0.95, 0.55)
    assert SETTINGS.followup_topic == "review-followups"
    assert SETTINGS.followup_webhook_url is None


# --- decoding ------------------------------------------------------------------------------------

def test_decodes_the_emulators_base64_body() -> None:
    change = decode_document_event(EMULATOR_BODY.encode())
    assert change.old is None and change.new is not None
    new = change.new
    assert (new.path, new.collection, new.id) == ("reviews/r1", "reviews", "r1")
    fields = new.fields
    assert fields["sentiment"] == {"label": "negative", "score": 0.9, "scores": {"negative": 0.9}}
    assert fields["status"] == "labeled" and fields["text"] == "bad"
    assert fields["n"] is None and fields["l"] == [1, "a", True] and fields["b"] == b"xy"
    assert fields["g"] == {"latitude": 1.0, "longitude": 2.0}
    assert isinstance(fields["t"], datetime) and fields["t"].tzinfo is not None
    assert new.update_time is not None and change.update_mask == ()
    assert decide(None, fields, SETTINGS).action is Action.OPEN


def snapshot(fields: dict[str, Any], when: datetime) -> DocumentSnapshot:
    return DocumentSnapshot(name=document_name("p", "reviews/r9"), fields=fields, create_time=when, update_time=when)


FIELDS = {"text": "Zipper broke. Løst 😡", "n": None, "i": 7, "f": 0.25, "ok": False, "b": b"\x00\xff",
          "t": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
          "sentiment": {"label": "negative", "score": 0.91, "scores": {"negative": 0.91}},
          "list": [{"a": [1, 2]}, "x"], "empty_map": {}, "empty_list": []}


@pytest.mark.parametrize("shape", ["raw", "base64", "base64_str", "json_dict", "json_bytes"])
def test_three_shapes_decode_to_the_same_change(shape: str) -> None:
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    old = snapshot({"text": "before", "sentiment": {"label": "positive", "score": 0.7}}, when)
    new = snapshot(FIELDS, when.replace(minute=5))
    _, raw = written_event("p", old, new, base64_body=False)
    body: Any
    if shape == "raw":
        body = raw
    elif shape == "base64":
        body = base64.b64encode(raw)
    elif shape == "base64_str":
        body = base64.b64encode(raw).decode() + "\n"
    else:
        from google.events.cloud.firestore_v1.types import DocumentEventData

        as_json = DocumentEventData.to_json(DocumentEventData.deserialize(raw))
        body = json.loads(as_json) if shape == "json_dict" else as_json.encode()
    change = decode_document_event(body)
    assert change.new == new
    assert change.old == old


def test_create_and_delete_have_one_side() -> None:
    when = datetime(2026, 3, 1, tzinfo=UTC)
    _, created = written_event("p", None, snapshot({"a": 1}, when))
    _, deleted = written_event("p", snapshot({"a": 1}, when), None)
    assert decode_document_event(created).old is None
    change = decode_document_event(deleted)
    assert change.new is None and change.document is not None and change.document.id == "r9"
    assert decode_document_event(b"") == decode_document_event(None)


@pytest.mark.parametrize("body", [b"\x0a\xff\xff\xff\xff", b"not base64 at all!", b"{not json", b"QUJD$$", b"[1, 2]"])
def test_garbage_is_an_invalid_event(body: bytes) -> None:
    with pytest.raises(InvalidEventError):
        decode_document_event(body)


def test_emulator_style_request_headers() -> None:
    headers, body = written_event("demo", None, snapshot({"a": 1}, datetime(2026, 1, 1, tzinfo=UTC)))
    assert headers["ce-type"] == "google.cloud.firestore.document.v1.written"
    assert headers["Content-Type"] == "application/protobuf"
    assert headers["ce-document"] == "reviews/r9"
    assert base64.b64decode(body, validate=True)


# --- evidence ------------------------------------------------------------------------------------

def test_split_sentences() -> None:
    text = ("Great shoes, e.g. the laces. But the sole broke after 3.5 weeks!!! Terrible.\n"
            "no refund \"ever\". Then the rep hung up… ok")
    assert split_sentences(text) == ["Great shoes, e.g. the laces.", "But the sole broke after 3.5 weeks!!!",
                                     "Terrible.", 'no refund "ever".', "Then the rep hung up…", "ok"]
    assert split_sentences("Awful!!! 😡😡") == ["Awful!!! 😡😡"]
    assert split_sentences("  \n ") == []


def test_select_evidence_keeps_up_to_three_in_reading_order() -> None:
    sentences = ["a", "b", "c", "d", "e"]
    negative = [0.9, 0.2, 0.95, 0.7, 0.8]
    assert select_evidence(sentences, negative, [True, False, True, True, True]) == ["a", "c", "e"]
    assert select_evidence(sentences, negative, [False, False, True, False, False]) == ["c"]
    # no sentence is negative on its own: the single most negative one
    assert select_evidence(sentences, negative, [False] * 5) == ["c"]
    assert select_evidence([], [], []) == []


def test_negative_evidence_uses_one_batch_of_the_shared_classifier(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import classifier as model

    clf = model.get_classifier()
    calls: list[int] = []
    real = clf.probabilities

    def counting(texts: Any) -> Any:
        calls.append(len(texts))
        return real(texts)

    monkeypatch.setattr(clf, "probabilities", counting)
    text = ("The box arrived on time and the colour is lovely. The zipper broke on day two and support never "
            "answered my emails. I want a refund, this is a disgrace. Otherwise it looks fine.")
    evidence = negative_evidence(text)
    assert calls == [4]
    sentences = split_sentences(text)
    assert 1 <= len(evidence) <= 3
    assert all(sentence in sentences for sentence in evidence)
    assert evidence == sorted(evidence, key=sentences.index)  # reading order
    assert negative_evidence("Broke on day one") == ["Broke on day one"]  # one sentence: no model call
    assert calls == [4]


# --- the chat message ----------------------------------------------------------------------------

def test_chat_message_quotes_the_evidence() -> None:
    followup = {"review_id": "r1", "customer_id": "c7", "source": "app", "priority": "high",
                "sentiment": {"label": "negative", "score": 0.97}, "evidence": ["It broke.", "No refund."]}
    text = chat_message(followup)
    assert "r1" in text and "c7" in text and "HIGH" in text and "0.97" in text
    assert "> It broke.\n> No refund." in text
    assert len(chat_message({**followup, "evidence": ["x" * 5000]})) <= MAX_MESSAGE_CHARS


# --- the follow-up state machine and its outbox ----------------------------------------------------

def version(text_sha: str, updated_at: datetime | None = None) -> ReviewVersion:
    return ReviewVersion("r1", review(sha=text_sha), updated_at)


OPEN = Decision(Action.OPEN, "negative 0.900")
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # fixed: parameters are built at collection, tests run minutes later


@pytest.mark.parametrize(("existing", "event", "expected"), [
    (None, version("a" * 64), Change.CREATED),
    # the bug: back to the very text first complained about left the follow-up resolved
    ({"status": "resolved_by_edit", "text_sha256": "a" * 64}, version("a" * 64), Change.REOPENED),
    ({"status": "resolved_by_edit", "text_sha256": "a" * 64}, version("b" * 64), Change.REOPENED),
    ({"status": "needs_review", "text_sha256": "a" * 64}, version("a" * 64), Change.UPGRADED),
    ({"status": "open", "text_sha256": "a" * 64}, version("b" * 64), Change.EDITED),
    ({"status": "open", "text_sha256": "a" * 64}, version("a" * 64), Change.EXISTS),
    # an old event redelivered after the follow-up moved on changes nothing
    ({"status": "resolved_by_edit", "text_sha256": "a" * 64, "review_updated_at": datetime(2026, 1, 2, tzinfo=UTC)},
     version("a" * 64, datetime(2026, 1, 1, tzinfo=UTC)), Change.EXISTS),
])
def test_what_a_negative_label_does_to_the_followup(existing: dict[str, Any] | None, event: ReviewVersion,
                                                    expected: Change) -> None:
    assert on_negative(existing, event, OPEN) is expected


def test_a_reopen_starts_a_new_episode_and_keeps_the_old_notifications() -> None:
    existing = {"status": "resolved_by_edit", "episode": 1, "text_sha256": "a" * 64,
                "notifications": {"pubsub": {"message_id": "1"}, "webhook": {"status_code": 204}},
                "notification_attempts": {"webhook": {"state": "sent"}}}
    update = changes(Change.REOPENED, existing, version("a" * 64), OPEN, ["It broke."])
    assert update["status"] == "open" and update["episode"] == 2
    assert update["notifications"] == {} and update["notification_attempts"] == {}
    assert update["notification_history.e1"] == existing["notifications"]
    assert due({**existing, **update}, "webhook", datetime.now(UTC)) is Due.SEND


@pytest.mark.parametrize(("followup", "expected"), [
    ({"status": "open"}, Due.SEND),
    ({"status": "needs_review"}, Due.SKIP),
    ({"status": "open", "notifications": {"webhook": {"status_code": 204}}}, Due.SKIP),
    ({"status": "open", "notification_attempts": {"webhook": {"state": "rejected"}}}, Due.SKIP),
    ({"status": "open", "notification_attempts": {"webhook": {"state": "failed"}}}, Due.SEND),
    ({"status": "open", "notification_attempts": {"webhook": {
        "state": "sending", "lease_until": NOW + timedelta(minutes=1)}}}, Due.IN_PROGRESS),
    ({"status": "open", "notification_attempts": {"webhook": {
        "state": "sending", "lease_until": NOW - timedelta(minutes=1)}}}, Due.SEND),  # holder died
])
def test_when_a_channel_is_due(followup: dict[str, Any], expected: Due) -> None:
    assert due(followup, "webhook", NOW) is expected


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (401, True), (404, True), (410, True),
                                                   (408, False), (429, False), (500, False), (503, False),
                                                   (None, False)])
def test_which_webhook_failures_are_permanent(status: int | None, permanent: bool) -> None:
    assert WebhookError("webhook answered", status).permanent is permanent


@pytest.mark.parametrize(("created_at", "action"), [
    ("2026-12-01T09:00:00Z", Action.OPEN),  # yesterday
    ("2026-11-20T09:00:00Z", Action.NONE),  # 12 days before "now": labeled, pages nobody
    (None, Action.OPEN),  # no created_at: arrival time (publish_time) decides
])
def test_only_recent_reviews_open_followups(created_at: str | None, action: Action) -> None:
    now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    fields = review(score=0.95, publish_time="2026-12-02T08:00:00Z",
                    **({"created_at": created_at} if created_at else {}), labeled_by="backfill")
    decision = decide(None, fields, SETTINGS, now=now)
    assert decision.action is action
    if action is Action.NONE:
        assert "FOLLOWUP_MAX_AGE_DAYS" in decision.reason and "backfill" in decision.reason


def test_a_backfilled_review_of_unknown_age_pages_nobody() -> None:
    fields = review(score=0.95, labeled_by="backfill")  # neither created_at nor publish_time
    decision = decide(None, fields, SETTINGS)
    assert decision.action is Action.NONE and "backfill" in decision.reason
    assert decide(None, review(score=0.95), SETTINGS).action is Action.OPEN  # unknown age, but not a backfill
