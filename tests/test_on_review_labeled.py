"""``on_review_labeled`` on the real emulators, fired by the Firestore emulator's own trigger delivery.

Set-up, once for the module: the Firestore emulator started through its launcher with
``--functions_emulator`` pointing at a functions-framework server that runs
``on_review_labeled``; the trigger registered with ``local.firestore_triggers``; the
Pub/Sub emulator with the follow-up topic and a pull subscription; a local HTTP
server standing in for the Discord/Slack webhook. Tests write review documents as
ingest_review would (the shared contract) and observe what a person would: the
follow-up document, the message on the topic, the webhook call.

Each test uses its own review ids, so the tests share the emulators without seeing
each other's effects. "Nothing happened" is observed through the function's own
structured log line for that review, never by sleeping. The emulator never retries
a failed delivery, so tests that need Eventarc's retry redeliver the event themselves.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.emulators import FirestoreEmulator, FunctionServer, PubSubEmulator, free_port
from local.firestore_triggers import deliver as deliver_event
from local.firestore_triggers import register_written_trigger, written_event
from shared.config import load_settings, names
from shared.document_event import DocumentSnapshot
from shared.evidence import split_sentences
from shared.followup_rule import Action, decide
from tests.conftest import StartServer

pytestmark = pytest.mark.emulator

PROJECT = "reviewsense-followups-test"
SETTINGS = load_settings({})
TRIGGER_ID = "on_review_labeled"
SUBSCRIPTION = "followups-test-pull"
FINAL_LOG_LINES = ("review write handled", "follow-up incomplete; the event will be retried",
                   "follow-up failed; the event will be retried")
WAIT = 90.0  # generous: the first event loads the model on a busy 2-core machine

COMPLAINT = ("The delivery came a day early and the box was fine. The blender motor died after two uses and smelled "
             "of burning plastic. Support told me 'that is not covered' and hung up. Honestly the jug is nice.")


# --- a webhook receiver ----------------------------------------------------------------------------

@dataclass
class Webhook:
    """A local HTTP server standing in for Discord/Slack; ``answer`` is the status it replies with."""

    answer: int = 204
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls_for(self, review_id: str, ok: bool | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.calls if review_id in c["body"].get("content", "")
                    and (ok is None or (c["status"] < 300) == ok)]


def serve_webhook(hook: Webhook) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            status = hook.answer
            with hook.lock:
                hook.calls.append({"path": self.path, "body": body, "status": status,
                                   "content_type": self.headers.get("Content-Type")})
            self.send_response(status)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- the stack -------------------------------------------------------------------------------------

@dataclass
class Stack:
    firestore: FirestoreEmulator
    pubsub: PubSubEmulator
    function: FunctionServer
    webhook: Webhook
    db: Any
    trigger_url: str
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def messages_for(self, review_id: str) -> list[dict[str, Any]]:
        """Follow-up topic messages about a review (pulled and kept, so no test loses another's)."""
        for message in self.pubsub.pull(SUBSCRIPTION):
            key = message.get("attributes", {}).get("review_id", "")
            self.received.setdefault(key, []).append(message)
        return self.received.get(review_id, [])

    def followup(self, review_id: str) -> dict[str, Any] | None:
        snapshot = self.db.collection(SETTINGS.followups_collection).document(review_id).get()
        return snapshot.to_dict() if snapshot.exists else None

    def handled(self, review_id: str) -> list[dict[str, Any]]:
        """The function's log lines about this review (one per finished or failed delivery)."""
        return [e for e in self.function.structured_logs() if e.get("review_id") == review_id
                and e.get("message") in FINAL_LOG_LINES]

    def review_snapshot(self, review_id: str) -> DocumentSnapshot:
        snapshot = self.db.collection(SETTINGS.reviews_collection).document(review_id).get()
        name = f"projects/{PROJECT}/databases/(default)/documents/{SETTINGS.reviews_collection}/{review_id}"
        return DocumentSnapshot(name=name, fields=snapshot.to_dict(), create_time=snapshot.create_time,
                                update_time=snapshot.update_time)

    def redeliver(self, old: DocumentSnapshot | None, new: DocumentSnapshot, *, base64_body: bool = True,
                  time: datetime | None = None) -> int:
        """Deliver a write event again, as Eventarc retries (raw protobuf) or the emulator sends (base64)."""
        headers, body = written_event(PROJECT, old, new, base64_body=base64_body, time=time)
        return deliver_event(self.trigger_url, headers, body)


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("followup-stack")
    hook = Webhook()
    hook_server = serve_webhook(hook)
    function_port = free_port()
    with PubSubEmulator(project=PROJECT, log_dir=logs) as pubsub, \
            FirestoreEmulator(project=PROJECT, functions_emulator=f"127.0.0.1:{function_port}", log_dir=logs) as fs:
        pubsub.create_topic(SETTINGS.followup_topic)
        pubsub.create_subscription(SUBSCRIPTION, SETTINGS.followup_topic)
        env = {**pubsub.env(), **fs.env(), "GOOGLE_CLOUD_PROJECT": PROJECT, "ORT_INTRA_OP_THREADS": "1",
               "FOLLOWUP_WEBHOOK_URL": f"http://127.0.0.1:{hook_server.server_port}/api/webhooks/123/secret-token",
               "WEBHOOK_TIMEOUT_SECONDS": "5", "LOG_LEVEL": "INFO", "FOLLOWUP_TOPIC": SETTINGS.followup_topic,
               # the tests reason with the default thresholds: pin them whatever this shell sets
               "FOLLOWUP_THRESHOLD": str(SETTINGS.followup_threshold),
               "FOLLOWUP_HIGH_PRIORITY": str(SETTINGS.followup_high_priority),
               "FOLLOWUP_UNSURE_MIN": str(SETTINGS.followup_unsure_min),
               "FOLLOWUP_MAX_EVENT_AGE_SECONDS": str(SETTINGS.followup_max_event_age_seconds)}
        with FunctionServer("on_review_labeled", env=env, port=function_port, log_dir=logs) as function:
            path = register_written_trigger(fs.address, PROJECT, TRIGGER_ID, SETTINGS.reviews_collection)
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("FIRESTORE_EMULATOR_HOST", fs.address)
                from google.cloud import firestore

                db = firestore.Client(project=PROJECT)
            yield Stack(fs, pubsub, function, hook, db, f"{function.url}{path}")
    hook_server.shutdown()


# --- writing reviews as ingest_review does -----------------------------------------------------------

def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def review_doc(review_id: str, text: str, label: str, score: float, **extra: Any) -> dict[str, Any]:
    from google.cloud import firestore

    others = {name: round((1 - score) / 2, 6) for name in ("negative", "neutral", "positive") if name != label}
    return {
        "review_id": review_id, "text": text, "customer_id": "cust-42", "source": "web-form",
        "created_at": datetime.now(UTC).isoformat(), "metadata": {"order": "A-1001"}, "attributes": {},
        "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "sentiment": {"label": label, "score": score, "scores": {label: score, **others}},
        "model": {"name": "review-sentiment-minilm", "version": "test"}, "status": "labeled",
        "classified_at": firestore.SERVER_TIMESTAMP, "message_id": uuid.uuid4().hex,
        "publish_time": datetime.now(UTC).isoformat(), "edited": False, "edit_count": 0, **extra,
    }


def write_review(stack: Stack, review_id: str, text: str, label: str, score: float, **extra: Any) -> None:
    stack.db.collection(SETTINGS.reviews_collection).document(review_id).set(
        review_doc(review_id, text, label, score, **extra))


def last_outcome(stack: Stack, review_id: str, count: int = 1) -> dict[str, Any]:
    entries = wait_for(f"{count} handled log line(s) for {review_id}",
                       lambda: (lines := stack.handled(review_id)) and len(lines) >= count and lines)
    return dict(entries[-1])


def fully_notified(stack: Stack, review_id: str) -> dict[str, Any]:
    return dict(wait_for(f"both notifications recorded on followups/{review_id}",
                         lambda: (doc := stack.followup(review_id)) and {"pubsub", "webhook"} <= set(
                             doc.get("notifications") or {}) and doc))


# --- the tests -----------------------------------------------------------------------------------------

def test_negative_review_opens_one_followup_and_notifies_once(stack: Stack) -> None:
    review_id = new_id("neg")
    write_review(stack, review_id, COMPLAINT, "negative", 0.97)
    doc = fully_notified(stack, review_id)

    assert doc["review_id"] == review_id and doc["customer_id"] == "cust-42" and doc["source"] == "web-form"
    assert doc["status"] == "open" and doc["priority"] == "high"
    assert doc["sentiment"]["label"] == "negative" and doc["sentiment"]["score"] == 0.97
    assert doc["text_sha256"] == hashlib.sha256(COMPLAINT.encode()).hexdigest()
    assert doc["excerpt"] and COMPLAINT.startswith(doc["excerpt"].rstrip("…"))
    assert 1 <= len(doc["evidence"]) <= 3 and set(doc["evidence"]) <= set(split_sentences(COMPLAINT))
    assert doc["created_at"] is not None and doc["notifications"]["webhook"]["status_code"] == 204

    messages = wait_for("the follow-up message", lambda: stack.messages_for(review_id))
    assert len(messages) == 1
    message = messages[0]
    assert message["messageId"] == doc["notifications"]["pubsub"]["message_id"]
    assert message["attributes"]["notification_id"] == f"{SETTINGS.followups_collection}/{review_id}#1"
    assert message["attributes"]["event"] == "followup.opened"
    payload = json.loads(base64.b64decode(message["data"]))
    assert payload["review_id"] == review_id and payload["evidence"] == doc["evidence"]

    calls = stack.webhook.calls_for(review_id)
    assert len(calls) == 1
    body = calls[0]["body"]
    assert body["content"] == body["text"] and calls[0]["content_type"] == "application/json"
    assert all(f"> {sentence}" in body["content"] for sentence in doc["evidence"])
    assert calls[0]["path"] == "/api/webhooks/123/secret-token"
    assert all("secret-token" not in json.dumps(e) for e in stack.function.structured_logs())


def test_same_event_five_times_and_concurrently_still_one_of_each(stack: Stack) -> None:
    review_id = new_id("dup")
    write_review(stack, review_id, COMPLAINT, "negative", 0.9)
    new = stack.review_snapshot(review_id)
    # five concurrent copies race the emulator's own delivery; then five more, one after another
    with ThreadPoolExecutor(max_workers=5) as pool:
        statuses = list(pool.map(lambda i: stack.redeliver(None, new, base64_body=i % 2 == 0), range(5)))
    assert all(status in (200, 500) for status in statuses)  # 500: "in progress, retry later"
    for i in range(5):
        stack.redeliver(None, new, base64_body=i % 2 == 1)
    doc = fully_notified(stack, review_id)
    assert stack.redeliver(None, new) == 200  # all done: a duplicate is a quiet no-op

    assert doc["status"] == "open" and doc["priority"] == "normal"
    assert len(wait_for("the follow-up message", lambda: stack.messages_for(review_id))) == 1
    assert len(stack.webhook.calls_for(review_id)) == 1
    assert len(stack.db.collection(SETTINGS.followups_collection).where("review_id", "==", review_id).get()) == 1


def test_webhook_down_then_up_retries_until_delivered(stack: Stack) -> None:
    review_id = new_id("down")
    stack.webhook.answer = 503
    try:
        write_review(stack, review_id, COMPLAINT, "negative", 0.85)
        failed = last_outcome(stack, review_id)
        assert failed["code"] == "webhook_failed" and failed["severity"] == "WARNING"
        doc = stack.followup(review_id)
        assert doc is not None and "pubsub" in doc["notifications"] and "webhook" not in doc["notifications"]
        assert doc["notification_attempts"]["webhook"]["state"] == "failed"
        created_at = doc["created_at"]
        new = stack.review_snapshot(review_id)
        assert stack.redeliver(None, new, base64_body=False) == 500  # Eventarc's retry, still down
    finally:
        stack.webhook.answer = 204
    assert stack.redeliver(None, new, base64_body=False) == 200  # up again: delivered now
    assert stack.redeliver(None, new, base64_body=False) == 200  # and never again

    doc = fully_notified(stack, review_id)
    assert doc["created_at"] == created_at and doc["notification_attempts"]["webhook"]["count"] == 3
    assert len(stack.webhook.calls_for(review_id, ok=False)) == 2
    assert len(stack.webhook.calls_for(review_id, ok=True)) == 1
    assert len(wait_for("the follow-up message", lambda: stack.messages_for(review_id))) == 1


@pytest.mark.parametrize(("label", "score"), [("positive", 0.99), ("neutral", 0.9), ("negative", 0.5)])
def test_reviews_that_need_no_followup_do_nothing(stack: Stack, label: str, score: float) -> None:
    review_id = new_id(label)
    write_review(stack, review_id, COMPLAINT, label, score)
    outcome = last_outcome(stack, review_id)
    assert outcome["action"] == "none"
    assert stack.followup(review_id) is None
    assert stack.messages_for(review_id) == [] and stack.webhook.calls_for(review_id) == []


def test_unsure_negative_needs_review_and_never_notifies(stack: Stack) -> None:
    review_id = new_id("unsure")
    write_review(stack, review_id, COMPLAINT, "negative", 0.7)
    assert last_outcome(stack, review_id)["action"] == "needs_review"
    doc = stack.followup(review_id)
    assert doc is not None and doc["status"] == "needs_review" and doc["notifications"] == {}
    assert 1 <= len(doc["evidence"]) <= 3
    assert stack.redeliver(None, stack.review_snapshot(review_id)) == 200
    assert stack.messages_for(review_id) == [] and stack.webhook.calls_for(review_id) == []


def test_edits_of_other_fields_and_negative_edits_do_not_notify_again(stack: Stack) -> None:
    review_id = new_id("edit")
    write_review(stack, review_id, COMPLAINT, "negative", 0.9)
    fully_notified(stack, review_id)
    reviews = stack.db.collection(SETTINGS.reviews_collection)
    reviews.document(review_id).update({"metadata.order": "A-1002"})
    assert last_outcome(stack, review_id, count=2)["reason"].startswith("already open")
    edited = "The motor died on day two. Still waiting for a refund."
    reviews.document(review_id).set(review_doc(review_id, edited, "negative", 0.92, edited=True, edit_count=1))
    edit = last_outcome(stack, review_id, count=3)
    assert edit["action"] == "open" and edit["followup"] == "edited" and edit["notified"] == []
    doc = stack.followup(review_id)
    assert doc is not None and doc["text_sha256"] == hashlib.sha256(edited.encode()).hexdigest()
    assert len(stack.messages_for(review_id)) == 1 and len(stack.webhook.calls_for(review_id)) == 1


def test_edit_from_negative_to_positive_resolves_the_followup(stack: Stack) -> None:
    review_id = new_id("resolve")
    write_review(stack, review_id, COMPLAINT, "negative", 0.88)
    before = stack.review_snapshot(review_id)
    fully_notified(stack, review_id)
    praise = "Update: they replaced the blender within a week and the new one is superb. Thank you!"
    stack.db.collection(SETTINGS.reviews_collection).document(review_id).set(
        review_doc(review_id, praise, "positive", 0.93, edited=True, edit_count=1,
                   previous_sentiment={"label": "negative", "score": 0.88}))
    doc = wait_for("resolved_by_edit", lambda: (d := stack.followup(review_id)) and
                   d["status"] == "resolved_by_edit" and d)
    assert doc["resolved_at"] is not None
    # the old event delivered late must not reopen it or notify again
    assert stack.redeliver(None, before) == 200
    assert stack.followup(review_id)["status"] == "resolved_by_edit"  # type: ignore[index]
    assert len(stack.messages_for(review_id)) == 1 and len(stack.webhook.calls_for(review_id)) == 1


def test_back_to_the_first_complaint_reopens_the_followup_and_notifies_again(stack: Stack) -> None:
    """Negative, edited positive, then edited back to the very same complaint: a new episode, notified again."""
    review_id = new_id("reopen")
    reviews = stack.db.collection(SETTINGS.reviews_collection)
    write_review(stack, review_id, COMPLAINT, "negative", 0.9)
    fully_notified(stack, review_id)
    praise = "Update: they replaced the blender within a week and the new one is superb. Thank you!"
    reviews.document(review_id).set(review_doc(review_id, praise, "positive", 0.93, edited=True, edit_count=1))
    wait_for("resolved_by_edit", lambda: (d := stack.followup(review_id)) and d["status"] == "resolved_by_edit")
    resolved = stack.review_snapshot(review_id)
    reviews.document(review_id).set(review_doc(review_id, COMPLAINT, "negative", 0.9, edited=True, edit_count=2))

    doc = wait_for("the follow-up reopened and notified again", lambda: (d := stack.followup(review_id))
                   and d["status"] == "open" and d.get("episode") == 2
                   and {"pubsub", "webhook"} <= set(d.get("notifications") or {}) and d)
    assert doc["reopened_at"] is not None and set(doc["notification_history"]["e1"]) == {"pubsub", "webhook"}
    messages = wait_for("two follow-up messages", lambda: len(m := stack.messages_for(review_id)) >= 2 and m)
    events = sorted((m["attributes"]["notification_id"], m["attributes"]["event"]) for m in messages)
    name = f"{SETTINGS.followups_collection}/{review_id}"
    assert events == [(f"{name}#1", "followup.opened"), (f"{name}#2", "followup.reopened")]
    # the reopening event, redelivered, changes nothing and sends nothing
    assert stack.redeliver(resolved, stack.review_snapshot(review_id)) == 200
    assert len(stack.messages_for(review_id)) == 2 and len(stack.webhook.calls_for(review_id)) == 2
    assert stack.followup(review_id)["episode"] == 2  # type: ignore[index]


def test_a_webhook_that_refuses_for_good_is_recorded_and_not_retried(stack: Stack) -> None:
    review_id = new_id("gone")
    stack.webhook.answer = 410  # a revoked Discord webhook
    try:
        write_review(stack, review_id, COMPLAINT, "negative", 0.9)
        outcome = last_outcome(stack, review_id)
        assert outcome["notified"] == ["pubsub"] and outcome["rejected"] == ["webhook"]
        attempt = stack.followup(review_id)["notification_attempts"]["webhook"]  # type: ignore[index]
        assert attempt["state"] == "rejected" and "410" in attempt["last_error"]
        assert stack.redeliver(None, stack.review_snapshot(review_id)) == 200  # acknowledged, nothing resent
    finally:
        stack.webhook.answer = 204
    assert len(stack.webhook.calls_for(review_id)) == 1
    assert len(wait_for("the follow-up message", lambda: stack.messages_for(review_id))) == 1


def test_an_event_too_old_to_retry_is_logged_and_acknowledged(stack: Stack) -> None:
    review_id = new_id("old")
    stack.webhook.answer = 503
    try:
        write_review(stack, review_id, COMPLAINT, "negative", 0.9)
        assert last_outcome(stack, review_id)["code"] == "webhook_failed"  # young: retried
        old = datetime.now(UTC) - timedelta(seconds=SETTINGS.followup_max_event_age_seconds + 60)
        assert stack.redeliver(None, stack.review_snapshot(review_id), time=old) == 200  # old: given up
    finally:
        stack.webhook.answer = 204
    abandoned = [e for e in stack.function.structured_logs() if e.get("review_id") == review_id
                 and e.get("message") == "follow-up abandoned: the event is too old to retry"]
    assert len(abandoned) == 1 and abandoned[0]["severity"] == "ERROR" and abandoned[0]["code"] == "webhook_failed"
    attempt = stack.followup(review_id)["notification_attempts"]["webhook"]  # type: ignore[index]
    assert attempt["state"] == "failed" and attempt["count"] == 2


def test_other_collections_do_not_fire_the_trigger(stack: Stack) -> None:
    marker = new_id("other")
    stack.db.collection("not_reviews").document(marker).set({"status": "labeled", "text": "x",
                                                             "sentiment": {"label": "negative", "score": 0.99}})
    # a review written afterwards is handled; the other document never reached the function
    probe = new_id("probe")
    write_review(stack, probe, "Fine.", "positive", 0.9)
    last_outcome(stack, probe)
    assert all(marker not in json.dumps(entry) for entry in stack.function.structured_logs())


def test_full_chain_from_the_ingest_topic_to_the_followup(stack: Stack,
                                                          start_function_server: StartServer) -> None:
    """Publish -> Pub/Sub push -> ingest_review -> Firestore -> the emulator's trigger -> on_review_labeled."""
    topic = f"{names()['ingest_topic']}-chain"
    ingest = start_function_server(names()["functions"]["ingest_review"], {
        **stack.firestore.env(), "GOOGLE_CLOUD_PROJECT": PROJECT, "ORT_INTRA_OP_THREADS": "1", "LOG_LEVEL": "INFO"})
    stack.pubsub.create_topic(topic)
    subscription = f"{names()['ingest_subscription']}-chain"
    stack.pubsub.create_subscription(subscription, topic, push_endpoint=stack.pubsub.push_endpoint(ingest, topic))
    try:
        review_id = new_id("chain")
        text = ("Terrible. The blender broke the first time I used it and smelled of burning. Support ignored "
                "three emails and refused a refund. Worst purchase this year, never again.")
        stack.pubsub.publish(topic, [json.dumps({"review_id": review_id, "text": text, "customer_id": "cust-9",
                                                 "source": "app-store"})])
        stored = wait_for("the label in Firestore", lambda: (doc := stack.db.collection(
            SETTINGS.reviews_collection).document(review_id).get()).exists and doc.to_dict())
        # the trigger reached on_review_labeled, which decided on exactly what ingest_review stored
        expected = decide(None, stored, SETTINGS)
        assert last_outcome(stack, review_id)["action"] == expected.action.value
        if expected.action is Action.NONE:
            pytest.skip(f"chain reached on_review_labeled, but the shipped model labels this complaint "
                        f"{stored['sentiment']['label']} {stored['sentiment']['score']:.2f}: no follow-up to check")
        doc = stack.followup(review_id)
        assert doc is not None and doc["status"] == expected.action.value
        assert doc["customer_id"] == "cust-9" and doc["source"] == "app-store"
        assert doc["text_sha256"] == stored["text_sha256"] and doc["sentiment"]["score"] == stored["sentiment"]["score"]
        if expected.action is Action.OPEN:
            fully_notified(stack, review_id)
            assert len(wait_for("the follow-up message", lambda: stack.messages_for(review_id))) == 1
            assert len(stack.webhook.calls_for(review_id)) == 1
    finally:
        stack.pubsub.delete_subscription(subscription)
