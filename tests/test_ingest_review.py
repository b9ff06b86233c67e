"""``ingest_review`` on the real emulators: Pub/Sub pushes to functions-framework, which writes to Firestore.

What is proven here, with the emulators' own delivery (or, where Pub/Sub cannot produce
the case, the exact push body it would send):
- every valid review is labeled exactly once, duplicates write nothing, edits relabel,
  poison messages are kept in ``rejected_events`` and acknowledged, nothing is missing;
- a Firestore outage loses nothing: the push fails, Pub/Sub redelivers, all end labeled;
- a message that fails transiently every time is dead-lettered after the configured
  attempts, and nothing else is;
- concurrent deliveries of one message (a handler outliving its ack deadline) give one label.

"Exactly one write" is checked on Firestore itself: every write sets ``classified_at``
to the server time, so a document written twice has ``update_time > create_time``.
Topic and subscription names are those of ``shared/names.json`` with a per-test suffix.
The test subscriptions carry the dead-letter policy but NO retry policy: with one, the
emulator (0.8.20) intermittently stops redelivering nacked push messages for good (its
periodic task that re-queues backed-off messages stops; seen with 1-2 s and with the
production 10-600 s backoff). Without one it redelivers a failed push after ~1 s, and
counts attempts and dead-letters exactly as configured.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from local.emulators import FirestoreEmulator, FunctionServer, PubSubEmulator, free_port
from shared.classifier import Classifier
from shared.config import get_settings, names
from tests.conftest import PROJECT, StartServer, function_env

pytestmark = pytest.mark.emulator

NAMES = names()
TARGET = NAMES["functions"]["ingest_review"]
TERMINAL = {"review ingested", "message rejected"}
WAIT_SECONDS = 300.0  # a safety net on a busy machine, not a timing assertion


# --- helpers ------------------------------------------------------------------------------------------------

def payload(review_id: str, text: str, **extra: Any) -> bytes:
    return json.dumps({"review_id": review_id, "text": text, **extra}).encode("utf-8")


def review_text(i: int, edited: bool = False) -> str:
    openers = ["Love this app", "The update broke login", "It works, nothing special", "Support never answered",
               "Fast and simple", "Crashes every time I open the camera", "Okay for the price"]
    text = f"{openers[i % len(openers)]} (order {i})."
    return f"Edited: {text} Actually they fixed it, great now." if edited else text


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def terminal_entries(server: FunctionServer) -> dict[str, list[dict[str, Any]]]:
    """Final log entries (labeled/duplicate/stale/edited or rejected) by message id."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in server.structured_logs():
        if entry.get("message") in TERMINAL:
            found[str(entry.get("message_id"))].append(entry)
    return found


def transient_failures(server: FunctionServer) -> Counter[str]:
    return Counter(str(e.get("message_id")) for e in server.structured_logs()
                   if e.get("message") == "transient failure; Pub/Sub will redeliver")


def outcomes_by_review(server: FunctionServer, message_ids: set[str]) -> dict[str, Counter[str]]:
    result: dict[str, Counter[str]] = defaultdict(Counter)
    for message_id, entries in terminal_entries(server).items():
        if message_id in message_ids:
            for entry in entries:
                if entry["message"] == "review ingested":
                    result[entry["review_id"]][entry["outcome"]] += 1
    return result


def all_terminal(server: FunctionServer, message_ids: set[str]) -> Callable[[], bool]:
    return lambda: message_ids <= set(terminal_entries(server))


def push_body(data: bytes | str, message_id: str, publish_time: str,
              attributes: dict[str, str] | None = None) -> dict[str, Any]:
    """What the Pub/Sub emulator POSTs to a push endpoint."""
    encoded = data if isinstance(data, str) else base64.b64encode(data).decode("ascii")
    return {"subscription": f"projects/{PROJECT}/subscriptions/direct",
            "message": {"data": encoded, "attributes": attributes or {}, "messageId": message_id,
                        "publishTime": publish_time}}


ACK = 204  # a success answer to a push: Pub/Sub acknowledges the message


def post(server: FunctionServer, body: dict[str, Any]) -> int:
    url = f"{server.url}/projects/{PROJECT}/topics/{NAMES['ingest_topic']}"
    return requests.post(url, json=body, timeout=60).status_code


@dataclass
class Pipeline:
    """A topic whose push subscription feeds a function server, with a dead-letter topic held by a pull subscription."""

    pubsub: PubSubEmulator
    topic: str
    subscription: str
    dead_letter_hold: str

    def publish(self, messages: Sequence[bytes | Mapping[str, Any]]) -> list[str]:
        return self.pubsub.publish(self.topic, messages)

    def dead_lettered(self) -> list[dict[str, Any]]:
        return self.pubsub.pull(self.dead_letter_hold)


PipelineFactory = Callable[..., Pipeline]


@pytest.fixture
def pipeline(pubsub_emulator: PubSubEmulator, request: pytest.FixtureRequest) -> Iterator[PipelineFactory]:
    created: list[str] = []

    def make(server: FunctionServer, max_delivery_attempts: int = NAMES["max_delivery_attempts"]) -> Pipeline:
        suffix = f"{request.node.name[5:35].replace('_', '-')}-{len(created)}"
        topic, subscription = f"{NAMES['ingest_topic']}-{suffix}", f"{NAMES['ingest_subscription']}-{suffix}"
        dead_topic, hold = f"{NAMES['dead_letter_topic']}-{suffix}", f"{NAMES['dead_letter_subscription']}-{suffix}"
        for name in (topic, dead_topic):
            pubsub_emulator.create_topic(name)
        pubsub_emulator.create_subscription(hold, dead_topic)
        pubsub_emulator.create_subscription(
            subscription, topic, push_endpoint=pubsub_emulator.push_endpoint(server, topic),
            ack_deadline_seconds=NAMES["ack_deadline_seconds"], dead_letter_topic=dead_topic,
            max_delivery_attempts=max_delivery_attempts)
        created.extend([subscription, hold])
        return Pipeline(pubsub_emulator, topic, subscription, hold)

    yield make
    for subscription in created:  # stop pushes to a server that is about to stop
        pubsub_emulator.delete_subscription(subscription)


@pytest.fixture(scope="module")
def ingest_server(firestore_emulator: FirestoreEmulator, emulator_log_dir: Path) -> Iterator[FunctionServer]:
    with FunctionServer(TARGET, env=function_env(firestore_emulator), log_dir=emulator_log_dir) as server:
        yield server


@pytest.fixture(scope="module")
def reference() -> Classifier:
    """The shipped model loaded as the server loads it (one thread, one text a call): same numbers."""
    settings = get_settings()
    return Classifier.load(settings.model_dir, threads=1, provider="cpu", max_chars=settings.max_review_chars)


def expected_sentiment(reference: Classifier, text: str) -> dict[str, Any]:
    return reference.classify([text])[0].as_dict()


def assert_sentiment(sentiment: dict[str, Any], text: str, reference: Classifier) -> None:
    expected = expected_sentiment(reference, text)
    assert sentiment["label"] == expected["label"]
    assert sentiment["score"] == pytest.approx(expected["score"], abs=1e-5)
    assert sentiment["scores"] == pytest.approx(expected["scores"], abs=1e-5)


def assert_labeled(doc: dict[str, Any], text: str, reference: Classifier) -> None:
    assert doc["status"] == "labeled"
    assert doc["text"] == text
    assert_sentiment(doc["sentiment"], text, reference)
    assert doc["model"] == reference.model_info
    assert doc["classified_at"] is not None


# --- tests ---------------------------------------------------------------------------------------------------

def test_end_to_end_labels_each_review_once_relabels_edits_and_keeps_poison(
        clean_firestore: FirestoreEmulator, ingest_server: FunctionServer, pipeline: PipelineFactory,
        reference: Classifier) -> None:
    rng = random.Random(6)
    flow = pipeline(ingest_server)
    max_chars = get_settings().max_review_chars
    originals = {f"e2e-{i:03d}": review_text(i) for i in range(140)}
    extras = {"customer_id": "cust-7", "source": "discord", "created_at": "2026-03-01T12:00:00Z",
              "metadata": {"stars": 2, "app": {"version": "1.2"}}}
    valid = [{"data": payload(rid, text, **(extras if i % 3 == 0 else {})), "attributes": {"lang": "en"}}
             for i, (rid, text) in enumerate(originals.items())]
    duplicates = [dict(m) for m in rng.sample(valid, 25)]
    malformed: list[tuple[bytes, str]] = [
        (b"not json {", "not_json"), (b"{'single': 'quotes'}", "not_json"), (b"review=1", "not_json"),
        (b"\x00\x01", "not_json"),
        (b"\xff\xfe\x00bad", "not_utf8"), (b"caf\xe9", "not_utf8"), (b"\x80" * 40, "not_utf8"),
        (b"[1, 2, 3]", "bad_schema"), (b"42", "bad_schema"), (b'"just a string"', "bad_schema"),
        (payload("e2e-bad-1", ""), "missing_text"), (payload("e2e-bad-2", "   "), "missing_text"),
        (json.dumps({"review_id": "e2e-bad-3"}).encode(), "missing_text"),
        (payload("has/slash", "text"), "bad_review_id"), (payload("x" * 129, "text"), "bad_review_id"),
        (json.dumps({"text": "no id"}).encode(), "bad_review_id"),
        (payload("e2e-long-1", "a" * (max_chars + 1)), "text_too_long"),
        (payload("e2e-long-2", "word " * max_chars), "text_too_long"),
        (payload("e2e-bad-4", "text", metadata=[1, 2]), "bad_schema"),
        (payload("e2e-bad-5", "text", created_at="last tuesday"), "bad_created_at"),
    ]
    batch: list[tuple[str, dict[str, Any]]] = ([("valid", m) for m in valid] + [("dup", m) for m in duplicates]
                                               + [(reason, {"data": data}) for data, reason in malformed])
    rng.shuffle(batch)

    started = time.monotonic()
    ids = flow.publish([m for _, m in batch])
    kinds = dict(zip(ids, (k for k, _ in batch), strict=True))
    wait_until(all_terminal(ingest_server, set(ids)), "the first 185 messages to be handled")
    elapsed = time.monotonic() - started

    edited_ids = rng.sample(sorted(originals), 15)
    edit_ids = flow.publish([{"data": payload(rid, review_text(int(rid[4:]), edited=True)),
                              "attributes": {"lang": "en", "edit": "1"}} for rid in edited_ids])
    wait_until(all_terminal(ingest_server, set(edit_ids)), "the 15 edits to be handled")
    assert len(ids) + len(edit_ids) == 200

    db = clean_firestore.client()
    reviews = {s.id: s for s in db.collection(NAMES["reviews_collection"]).stream()}
    assert set(reviews) == set(originals)  # nothing missing, nothing extra (no poison got in)
    outcomes = outcomes_by_review(ingest_server, set(ids) | set(edit_ids))
    for review_id, snapshot in reviews.items():
        doc = snapshot.to_dict() or {}
        # A create that committed but timed out client-side is retried and then seen as a duplicate,
        # so the log may show no "created"; the document's own times are the proof of a single write.
        assert outcomes[review_id]["created"] <= 1, review_id
        if review_id in edited_ids:
            final = review_text(int(review_id[4:]), edited=True)
            assert_labeled(doc, final, reference)
            assert doc["edited"] is True and doc["edit_count"] == 1 and doc["edited_at"] is not None
            assert_sentiment(doc["previous_sentiment"], originals[review_id], reference)
            assert doc["message_id"] == edit_ids[edited_ids.index(review_id)]
            assert doc["attributes"] == {"lang": "en", "edit": "1"}
            assert outcomes[review_id]["edited"] <= 1
        else:
            assert_labeled(doc, originals[review_id], reference)
            assert doc["edited"] is False and doc["edit_count"] == 0
            assert snapshot.create_time == snapshot.update_time, f"{review_id} was written twice"
            assert kinds[doc["message_id"]] in {"valid", "dup"}
        assert doc["text_sha256"] and doc["publish_time"].endswith("Z")
    assert sum(c["duplicate"] for c in outcomes.values()) >= len(duplicates)
    first = int(next(iter(originals))[4:])
    assert reviews[f"e2e-{first:03d}"].to_dict()["metadata"] == extras["metadata"]  # type: ignore[index]

    rejected = {s.id: s.to_dict() or {} for s in db.collection(NAMES["rejected_collection"]).stream()}
    poison = {mid: kind for mid, kind in kinds.items() if kind not in {"valid", "dup"}}
    assert set(rejected) == set(poison)
    for message_id, doc in rejected.items():
        assert doc["reason_code"] == poison[message_id]
        assert doc["raw"] and doc["reason"] and doc["rejected_at"] is not None
        assert doc["message_id"] == message_id
    assert flow.dead_lettered() == []

    entries = [e for mid in ids for e in terminal_entries(ingest_server)[mid] if e["message"] == "review ingested"]
    classify = sorted(e["classify_ms"] for e in entries if e["outcome"] == "created")
    store = sorted(e["firestore_ms"] for e in entries)
    latency = sorted(e["latency_ms"] for e in entries)
    print(f"\ningest e2e: {len(ids)} messages published -> all handled in {elapsed:.2f} s = "
          f"{len(ids) / elapsed:.1f} msg/s; handler median {latency[len(latency) // 2]:.1f} ms "
          f"(classify {classify[len(classify) // 2]:.1f} ms, firestore {store[len(store) // 2]:.1f} ms), "
          f"p90 {latency[int(len(latency) * 0.9)]:.1f} ms")


def test_firestore_outage_loses_nothing_and_redelivery_labels_everything(
        emulator_log_dir: Path, start_function_server: StartServer, pipeline: PipelineFactory,
        reference: Classifier) -> None:
    down = FirestoreEmulator(project=PROJECT, port=free_port(), log_dir=emulator_log_dir)  # not started yet
    server = start_function_server(TARGET, function_env(down, FIRESTORE_TIMEOUT_SECONDS="2"))
    flow = pipeline(server, max_delivery_attempts=100)
    texts = {f"outage-{i:02d}": review_text(i) for i in range(12)}
    ids = flow.publish([payload(rid, text) for rid, text in texts.items()] + [b"not json", payload("x/y", "t")])

    wait_until(lambda: len(transient_failures(server)) >= 4, "deliveries to fail while Firestore is down")
    assert terminal_entries(server) == {}
    with down:
        wait_until(all_terminal(server, set(ids)), "every message to be handled once Firestore is back")
        db = down.client()
        reviews = {s.id: s for s in db.collection(NAMES["reviews_collection"]).stream()}
        assert set(reviews) == set(texts)
        for review_id, snapshot in reviews.items():
            assert_labeled(snapshot.to_dict() or {}, texts[review_id], reference)
            assert snapshot.create_time == snapshot.update_time
        rejected = {s.id for s in db.collection(NAMES["rejected_collection"]).stream()}
        assert rejected == set(ids[-2:])
    assert flow.dead_lettered() == []


def test_a_message_failing_transiently_every_time_is_dead_lettered_and_nothing_else(
        clean_firestore: FirestoreEmulator, ingest_server: FunctionServer, pipeline: PipelineFactory) -> None:
    """A transaction held on ``reviews/dl-blocked`` makes every write of that review abort (lock timeout)."""
    from google.cloud import firestore

    db = clean_firestore.client()
    blocked = db.collection(NAMES["reviews_collection"]).document("dl-blocked")
    held, release = threading.Event(), threading.Event()

    @firestore.transactional
    def hold_lock(transaction: Any) -> None:
        blocked.get(transaction=transaction)
        held.set()
        release.wait(120)

    holder = threading.Thread(target=hold_lock, args=(db.transaction(),), daemon=True)
    holder.start()
    assert held.wait(30)
    attempts = NAMES["max_delivery_attempts"]
    flow = pipeline(ingest_server, max_delivery_attempts=attempts)
    try:
        poison = payload("dl-blocked", "This one will never be stored.")
        ids = flow.publish([poison] + [payload(f"dl-ok-{i}", review_text(i)) for i in range(5)])
        dead: list[dict[str, Any]] = []

        def dead_lettered() -> bool:
            dead.extend(flow.dead_lettered())
            return bool(dead)

        wait_until(dead_lettered, "the blocked message to be dead-lettered")
        wait_until(all_terminal(ingest_server, set(ids[1:])), "the other messages to be labeled")
        time.sleep(3)  # room for a wrong extra dead-letter to show up
        dead.extend(flow.dead_lettered())
    finally:
        release.set()
        holder.join(30)
    assert [base64.b64decode(m["data"]) for m in dead] == [poison]
    assert transient_failures(ingest_server)[ids[0]] == attempts
    assert ids[0] not in terminal_entries(ingest_server)
    stored = {s.id for s in db.collection(NAMES["reviews_collection"]).stream()}
    assert stored == {f"dl-ok-{i}" for i in range(5)}


def test_concurrent_redeliveries_of_one_message_give_one_label(
        clean_firestore: FirestoreEmulator, ingest_server: FunctionServer, reference: Classifier) -> None:
    """Eight copies of each message at once, as Pub/Sub sends when a handler outlives its ack deadline."""
    bodies: list[dict[str, Any]] = []
    for i in range(3):
        body = push_body(payload(f"conc-{i}", review_text(i)), f"710000{i}", "2026-04-01T10:00:00.000Z")
        bodies += [body] * 8
    # An original and its edit, each delivered four times, all racing: the edit must win whatever the order.
    bodies += [push_body(payload("conc-edit", review_text(50)), "7200000", "2026-04-01T10:00:00.000Z")] * 4
    bodies += [push_body(payload("conc-edit", review_text(50, edited=True)), "7200001", "2026-04-01T10:00:01.000Z")] * 4
    random.Random(3).shuffle(bodies)
    barrier = threading.Barrier(len(bodies))

    def deliver(body: dict[str, Any]) -> int:
        barrier.wait(30)
        return post(ingest_server, body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        statuses = list(pool.map(deliver, bodies))
    assert statuses == [ACK] * len(bodies)

    db = clean_firestore.client()
    reviews = {s.id: s for s in db.collection(NAMES["reviews_collection"]).stream()}
    assert set(reviews) == {"conc-0", "conc-1", "conc-2", "conc-edit"}
    outcomes = outcomes_by_review(ingest_server, {"7100000", "7100001", "7100002", "7200000", "7200001"})
    for i in range(3):
        counts = outcomes[f"conc-{i}"]
        assert counts["created"] <= 1 and counts["created"] + counts["duplicate"] == 8, counts
        snapshot = reviews[f"conc-{i}"]
        assert snapshot.create_time == snapshot.update_time
        assert_labeled(snapshot.to_dict() or {}, review_text(i), reference)
    final = reviews["conc-edit"].to_dict() or {}
    assert_labeled(final, review_text(50, edited=True), reference)
    assert final["message_id"] == "7200001"
    assert final["edit_count"] == (1 if final["edited"] else 0)  # the edit applied at most once
    assert outcomes["conc-edit"]["created"] <= 1 and outcomes["conc-edit"]["edited"] <= 1
    assert sum(outcomes["conc-edit"].values()) == 8


def test_out_of_order_redelivery_never_rolls_an_edit_back(
        clean_firestore: FirestoreEmulator, ingest_server: FunctionServer, reference: Classifier) -> None:
    first = push_body(payload("order-1", review_text(1)), "7300000", "2026-04-02T10:00:00.000Z")
    edit = push_body(payload("order-1", review_text(1, edited=True)), "7300001", "2026-04-02T10:05:00.000Z")
    assert post(ingest_server, first) == ACK
    assert post(ingest_server, edit) == ACK
    assert post(ingest_server, first) == ACK  # late redelivery of the original: stale, ignored
    doc = clean_firestore.client().collection(NAMES["reviews_collection"]).document("order-1").get().to_dict() or {}
    assert_labeled(doc, review_text(1, edited=True), reference)
    assert doc["edited"] is True and doc["edit_count"] == 1
    assert_sentiment(doc["previous_sentiment"], review_text(1), reference)
    outcomes = [e["outcome"] for mid in ("7300000", "7300001") for e in terminal_entries(ingest_server)[mid]]
    assert sorted(outcomes) == ["created", "edited", "stale"]


def test_undecodable_envelopes_are_kept_once_and_acknowledged(
        clean_firestore: FirestoreEmulator, ingest_server: FunctionServer) -> None:
    """Pub/Sub never pushes bad base64 itself, but a corrupted envelope must still be kept, once."""
    body = push_body("!!not base64!!", "7400000", "2026-04-03T10:00:00.000Z", {"k": "v"})
    assert post(ingest_server, body) == ACK
    assert post(ingest_server, body) == ACK  # redelivered poison: acknowledged again, not failed
    doc = clean_firestore.client().collection(NAMES["rejected_collection"]).document("7400000").get().to_dict() or {}
    assert doc["reason_code"] == "bad_base64"
    assert doc["raw"] == "!!not base64!!" and doc["raw_truncated"] is False
    assert doc["attributes"] == {"k": "v"}
    stored_flags = [e["stored"] for e in terminal_entries(ingest_server)["7400000"]]
    assert stored_flags == [True, False]


def test_a_message_with_attributes_and_no_data_is_kept_as_a_rejection(
        clean_firestore: FirestoreEmulator, ingest_server: FunctionServer) -> None:
    """functions-framework answered 400 to such a push before our code ran: retried, then dead-lettered."""
    body = {"subscription": f"projects/{PROJECT}/subscriptions/direct",
            "message": {"attributes": {"review_id": "r-attr"}, "messageId": "7500000",
                        "publishTime": "2026-04-04T10:00:00.000Z"}}
    assert post(ingest_server, body) == ACK
    doc = clean_firestore.client().collection(NAMES["rejected_collection"]).document("7500000").get().to_dict() or {}
    assert doc["reason_code"] == "empty_payload" and doc["attributes"] == {"review_id": "r-attr"}
