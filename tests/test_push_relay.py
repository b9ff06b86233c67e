"""The local stack's push delivery keeps Terraform's retry and dead-letter policy, on the real Pub/Sub emulator.

Why this matters: with the emulator's own push (no backoff), a 7-second restart of
``ingest_review`` during a storm dead-lettered 28% of it; production's backoff would have
absorbed the restart. Here an endpoint is down for a few seconds and then up again, and
another never comes up: the first loses nothing, the second is dead-lettered after exactly
``max_delivery_attempts`` deliveries.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local.emulators import PubSubEmulator, free_port
from local.push_relay import PushRelay, backoff_seconds

pytestmark = pytest.mark.emulator


def test_backoff_doubles_from_the_minimum_up_to_the_maximum() -> None:
    assert [backoff_seconds(n, 10, 600) for n in range(1, 9)] == [10, 20, 40, 80, 160, 320, 600, 600]


class Endpoint:
    """An HTTP function stand-in: answers 503 until ``up_at`` (monotonic), then 204; records every push."""

    def __init__(self, up_at: float) -> None:
        self.up_at = up_at
        self.pushes: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 204 if time.monotonic() >= endpoint.up_at else 503
                with endpoint.lock:
                    endpoint.pushes.append({**body, "status": status})
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/push"

    def delivered(self) -> set[str]:
        with self.lock:
            return {p["message"]["messageId"] for p in self.pushes if p["status"] == 204}


@pytest.fixture
def wired(pubsub_emulator: PubSubEmulator) -> Iterator[tuple[PubSubEmulator, str, str, str]]:
    suffix = uuid.uuid4().hex[:8]
    topic, subscription, dead, hold = (f"relay-{suffix}", f"relay-sub-{suffix}", f"relay-dead-{suffix}",
                                       f"relay-hold-{suffix}")
    for name in (topic, dead):
        pubsub_emulator.create_topic(name)
    pubsub_emulator.create_subscription(hold, dead)
    pubsub_emulator.create_subscription(subscription, topic, ack_deadline_seconds=10, dead_letter_topic=dead,
                                        max_delivery_attempts=5)
    yield pubsub_emulator, topic, subscription, hold
    for name in (subscription, hold):
        pubsub_emulator.delete_subscription(name)


def drain(pubsub: PubSubEmulator, subscription: str, want: int, timeout: float) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < want and time.monotonic() < deadline:
        found += pubsub.pull(subscription)
        time.sleep(0.2)
    return found


def test_an_endpoint_down_for_a_few_seconds_loses_nothing(wired: tuple[PubSubEmulator, str, str, str]) -> None:
    pubsub, topic, subscription, hold = wired
    endpoint = Endpoint(up_at=time.monotonic() + 4)
    with PushRelay(pubsub, subscription, endpoint.url, min_backoff_seconds=1, max_backoff_seconds=4,
                   ack_deadline_seconds=10) as relay:
        ids = set(pubsub.publish(topic, [json.dumps({"n": n}) for n in range(30)]))
        deadline = time.monotonic() + 60
        while endpoint.delivered() != ids and time.monotonic() < deadline:
            time.sleep(0.2)
    assert endpoint.delivered() == ids
    assert relay.counts.delivered == 30 and relay.counts.failed_attempts > 0  # it was down, and retried
    assert drain(pubsub, hold, 1, timeout=2) == []  # nothing dead-lettered
    first = [p for p in endpoint.pushes if p["deliveryAttempt"] == 1]
    assert first and all(p["subscription"] == pubsub.subscription_path(subscription) for p in first)
    assert all(p["message"]["message_id"] == p["message"]["messageId"] for p in first)


def test_an_endpoint_that_never_comes_up_dead_letters_after_max_attempts(
        wired: tuple[PubSubEmulator, str, str, str]) -> None:
    pubsub, topic, subscription, hold = wired
    endpoint = Endpoint(up_at=float("inf"))
    with PushRelay(pubsub, subscription, endpoint.url, min_backoff_seconds=1, max_backoff_seconds=2,
                   ack_deadline_seconds=10):
        [message_id] = pubsub.publish(topic, ["doomed"])
        dead = drain(pubsub, hold, 1, timeout=60)
    assert len(dead) == 1 and dead[0]["attributes"]["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    attempts = sorted(p["deliveryAttempt"] for p in endpoint.pushes if p["message"]["messageId"] == message_id)
    assert attempts == [1, 2, 3, 4, 5]
