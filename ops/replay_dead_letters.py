"""Move what the dead-letter subscription holds back to the ingestion topic, once the cause is fixed.

    python -m ops.replay_dead_letters [--project P] [--limit N]      # make replay-dead-letters
    python -m ops.replay_dead_letters --local                         # the running `make run` stack

Why: when the classifier cannot load (or Firestore is down for longer than the retries last), ``ingest_review``
fails the delivery and Pub/Sub dead-letters the message after ``max_delivery_attempts``; the dead-letter
subscription keeps it for ``dead_letter_retention_seconds``. Nothing is lost, but nothing comes back by itself.

Safe to run any number of times, also concurrently or after a crash:
- a message is acknowledged on the dead-letter subscription only after the ingestion topic accepted its copy, so
  a crash in between replays it again rather than losing it;
- each copy carries the identity of the dead-lettered message (``REPLAY_ID``) and the original publish time Pub/Sub
  recorded (``REPLAY_PUBLISH_TIME``), and ``ingest_review`` treats those as the delivery's id and time: replaying
  twice is a redelivery (one label), and an old text replayed late never overwrites a newer edit.
Talks to Pub/Sub through the client library, so ``PUBSUB_EMULATOR_HOST`` points it at the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.config import get_settings, names
from shared.review_event import REPLAY_ID, REPLAY_PUBLISH_TIME

# Attributes Pub/Sub adds when it dead-letters a message: the original publish time is worth keeping (as
# REPLAY_PUBLISH_TIME), the rest describes the failed delivery and must not travel with the copy.
DEAD_LETTER_PREFIX = "CloudPubSubDeadLetter"
SOURCE_PUBLISH_TIME = "CloudPubSubDeadLetterSourceTopicPublishTime"
BATCH = 100


@dataclass
class ReplayReport:
    moved: int = 0
    failed: int = 0
    review_ids: list[str] = field(default_factory=list)


def replay_attributes(message_id: str, publish_time: str, attributes: Mapping[str, str]) -> dict[str, str]:
    """The copy's attributes: the producer's, plus the replay identity (kept from the first replay)."""
    out = {k: v for k, v in attributes.items() if not k.startswith(DEAD_LETTER_PREFIX)}
    if REPLAY_ID not in out:
        out[REPLAY_ID] = message_id
        out[REPLAY_PUBLISH_TIME] = attributes.get(SOURCE_PUBLISH_TIME) or publish_time
    return out


def _review_id(data: bytes) -> str:
    try:
        value = json.loads(data).get("review_id")
    except (ValueError, AttributeError):
        return "?"
    return str(value) if value is not None else "?"


def replay(project: str, subscription: str, topic: str, limit: int | None = None,
           empty_pulls: int = 3) -> ReplayReport:
    """Pull, republish, acknowledge, until the subscription answers empty ``empty_pulls`` times in a row."""
    from google.cloud import pubsub_v1

    subscriber, publisher = pubsub_v1.SubscriberClient(), pubsub_v1.PublisherClient()
    source, target = subscriber.subscription_path(project, subscription), publisher.topic_path(project, topic)
    report, empty = ReplayReport(), 0
    try:
        while (limit is None or report.moved < limit) and empty < empty_pulls:
            wanted = BATCH if limit is None else min(BATCH, limit - report.moved)
            response = subscriber.pull(request={"subscription": source, "max_messages": wanted,
                                                "return_immediately": True}, timeout=30)
            if not response.received_messages:
                empty += 1
                time.sleep(1)
                continue
            empty = 0
            done, retry = [], []
            futures = []
            for received in response.received_messages:
                message = received.message
                attributes = replay_attributes(message.message_id, _timestamp(message.publish_time),
                                               dict(message.attributes))
                futures.append((received, publisher.publish(target, message.data, **attributes)))
            for received, future in futures:
                try:
                    future.result(timeout=60)
                except Exception as exc:  # the copy did not land: leave the original on the subscription
                    print(f"could not republish {received.message.message_id}: {exc}", file=sys.stderr)
                    retry.append(received.ack_id)
                    report.failed += 1
                    continue
                done.append(received.ack_id)
                report.moved += 1
                report.review_ids.append(_review_id(received.message.data))
            if done:
                subscriber.acknowledge(request={"subscription": source, "ack_ids": done})
            if retry:
                subscriber.modify_ack_deadline(request={"subscription": source, "ack_ids": retry,
                                                        "ack_deadline_seconds": 0})
                break  # the topic refuses copies: stop rather than spin; the rest stays held
    finally:
        subscriber.close()
    return report


def _timestamp(value: Any) -> str:
    """Pub/Sub's publish time (a proto timestamp or datetime) as RFC 3339."""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value.ToJsonString())


def main(argv: list[str] | None = None) -> int:
    n = names()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", default=None, help="default: GOOGLE_CLOUD_PROJECT")
    parser.add_argument("--subscription", default=n["dead_letter_subscription"])
    parser.add_argument("--topic", default=n["ingest_topic"])
    parser.add_argument("--limit", type=int, default=None, help="move at most this many messages")
    parser.add_argument("--local", action="store_true", help="the Pub/Sub emulator of the running `make run`")
    args = parser.parse_args(argv)
    if args.local:
        from local.publish import PublishError, load_state

        try:
            state = load_state()
        except PublishError as exc:
            parser.error(str(exc))
        os.environ["PUBSUB_EMULATOR_HOST"] = str(state["pubsub"])
        args.project = args.project or state["project"]
    project = args.project or get_settings().project_id
    report = replay(project, args.subscription, args.topic, args.limit)
    print(json.dumps({"moved": report.moved, "failed": report.failed, "from": args.subscription,
                      "to": args.topic, "project": project}))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
