"""Reviews dead-lettered while the model could not serve come back, once, with ``make replay-dead-letters``.

On the real emulators: ``ingest_review`` serving a broken artifact fails every delivery until Pub/Sub dead-letters
the messages; a healthy function takes over the subscription; the replay moves what the dead-letter subscription
holds back to the ingestion topic and each review is labeled exactly once. A second replay moves nothing, and a
copy replayed twice (a crash between publishing and acknowledging) changes nothing.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from local.emulators import FirestoreEmulator, PubSubEmulator
from ops import replay_dead_letters
from ops.replay_dead_letters import replay, replay_attributes
from shared.config import DEFAULT_MODEL_DIR, names
from shared.review_event import REPLAY_ID, REPLAY_PUBLISH_TIME, read_message
from tests.conftest import PROJECT, StartServer, function_env
from tests.test_ingest_review import payload, wait_until

NAMES = names()
TARGET = NAMES["functions"]["ingest_review"]
FAILED = "ingestion failed; Pub/Sub will redeliver, then dead-letter"


def broken_artifact(tmp_path: Path) -> Path:
    folder = tmp_path / "broken-model"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    with (folder / "model.onnx").open("r+b") as fh:
        fh.seek(4096)
        fh.write(b"\xff" * 16)
    return folder


def test_replay_attributes_keep_the_first_identity_and_drop_delivery_details() -> None:
    dead = {"source": "discord", "CloudPubSubDeadLetterSourceDeliveryCount": "5",
            "CloudPubSubDeadLetterSourceTopicPublishTime": "2026-11-30T10:00:00.123Z"}
    first = replay_attributes("111", "2026-11-30T11:00:00Z", dead)
    assert first == {"source": "discord", REPLAY_ID: "111", REPLAY_PUBLISH_TIME: "2026-11-30T10:00:00.123Z"}
    # dead-lettered again after a replay: the copy keeps the identity of the first dead letter
    assert replay_attributes("222", "2026-12-01T00:00:00Z", {**first, **dead}) == first


def test_a_replayed_copy_is_read_as_the_original_delivery() -> None:
    body = {"message": {"data": "e30=", "messageId": "999", "publishTime": "2026-12-01T09:00:00Z",
                        "attributes": {REPLAY_ID: "111", REPLAY_PUBLISH_TIME: "2026-11-30T10:00:00.123Z"}}}
    message = read_message(body)
    assert (message.message_id, message.publish_time) == ("111", "2026-11-30T10:00:00.123000Z")
    assert read_message({"message": {**body["message"], "attributes": {REPLAY_ID: "111"}}}).message_id == "999"


@pytest.mark.emulator
def test_dead_lettered_reviews_are_replayed_once_the_model_serves(
        tmp_path: Path, clean_firestore: FirestoreEmulator, pubsub_emulator: PubSubEmulator,
        start_function_server: StartServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    topic, dead_topic = "replay-ingest", "replay-dead"
    push, hold = "replay-push", "replay-hold"
    for name in (topic, dead_topic):
        pubsub_emulator.create_topic(name)
    pubsub_emulator.create_subscription(hold, dead_topic, ack_deadline_seconds=10)
    broken = start_function_server(TARGET, function_env(clean_firestore, MODEL_DIR=str(broken_artifact(tmp_path))))
    attempts = NAMES["max_delivery_attempts"]
    pubsub_emulator.create_subscription(push, topic, push_endpoint=pubsub_emulator.push_endpoint(broken, topic),
                                        ack_deadline_seconds=NAMES["ack_deadline_seconds"],
                                        dead_letter_topic=dead_topic, max_delivery_attempts=attempts)
    texts = {"rp-1": "Broke after two days and support never answered.",
             "rp-2": "Absolutely love it, works perfectly.",
             "rp-3": "It's fine. Nothing special."}
    ids = pubsub_emulator.publish(topic, [payload(k, v) for k, v in texts.items()])

    def failures() -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in broken.structured_logs():
            if entry.get("message") == FAILED:
                counts[str(entry.get("message_id"))] = counts.get(str(entry.get("message_id")), 0) + 1
        return counts

    wait_until(lambda: all(failures().get(i, 0) >= attempts for i in ids), "every delivery to fail")
    held: dict[str, Any] = {}

    def all_dead_lettered() -> bool:  # peek without acknowledging: they stay on the hold subscription
        held.update({m["messageId"]: m for m in pubsub_emulator.pull(hold, ack=False)})
        return len(held) == len(texts)

    wait_until(all_dead_lettered, "the three messages to be dead-lettered")
    pubsub_emulator.delete_subscription(push)
    time.sleep(11)  # the peeked messages' ack deadline (10 s) passes: the hold subscription offers them again
    db = clean_firestore.client()
    reviews = db.collection(NAMES["reviews_collection"])
    assert [d.id for d in reviews.stream()] == []  # nothing was labeled by the broken model

    # the cause is fixed: a healthy function takes the subscription, the operator replays
    healthy = start_function_server(TARGET, function_env(clean_firestore))
    pubsub_emulator.create_subscription(push + "-fixed", topic,
                                        push_endpoint=pubsub_emulator.push_endpoint(healthy, topic),
                                        ack_deadline_seconds=NAMES["ack_deadline_seconds"],
                                        dead_letter_topic=dead_topic, max_delivery_attempts=attempts)
    for key, value in pubsub_emulator.env().items():
        monkeypatch.setenv(key, value)
    moved: dict[str, Any] = {}

    def everything_moved() -> bool:  # the emulator publishes dead letters asynchronously: collect until all 3
        report = replay(PROJECT, hold, topic, empty_pulls=1)
        moved.update(dict.fromkeys(report.review_ids, True))
        return len(moved) == len(texts)

    wait_until(everything_moved, "the three dead letters to be replayed")
    assert sorted(moved) == sorted(texts)

    def labeled() -> dict[str, dict[str, Any]]:
        return {d.id: d.to_dict() or {} for d in reviews.stream()}

    wait_until(lambda: set(labeled()) == set(texts), "the replayed reviews to be labeled")
    docs = labeled()
    assert {k: d["text"] for k, d in docs.items()} == texts
    assert all(d["status"] == "labeled" and d["attributes"][REPLAY_ID] for d in docs.values())
    assert docs["rp-1"]["sentiment"]["label"] == "negative"

    # a second run moves nothing; the CLI says so
    assert replay_dead_letters.main(["--project", PROJECT, "--subscription", hold, "--topic", topic]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["moved"] == 0

    # the same copy published again (a crash between publish and acknowledge) is a redelivery: no second write
    before = {d.id: d.update_time for d in reviews.stream()}
    again = docs["rp-1"]
    copy_id = pubsub_emulator.publish(topic, [{"data": payload("rp-1", texts["rp-1"]),
                                               "attributes": again["attributes"]}])[0]
    wait_until(lambda: any(e.get("message") == "review ingested" and e.get("outcome") == "duplicate"
                           and e.get("review_id") == "rp-1" for e in healthy.structured_logs()),
               f"the repeated copy {copy_id} to be seen as a duplicate")
    assert {d.id: d.update_time for d in reviews.stream()} == before
