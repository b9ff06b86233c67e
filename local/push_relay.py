"""Pub/Sub push delivery with production's retry policy, for the local stack on the emulator.

Why not the emulator's own push: with a retry policy on a push subscription, the Pub/Sub
emulator stalls. Measured here (30 messages, an endpoint answering 503 for 7 s, backoff
10-600 s as in ``shared/names.json``): 7 were delivered at ~14 s and the other 23 were never
pushed again in 4 minutes (with a 10-20 s backoff: 14 of 30 in 90 s). Without a retry
policy it redelivers at once, so a 7-second restart of ``ingest_review`` burned all five
attempts of 28% of a storm and dead-lettered them, which production would not do.

So the local stack subscribes with a pull subscription carrying the same dead-letter policy
(the emulator counts delivery attempts and dead-letters a pull subscription correctly) and
this relay does what Pub/Sub's push does in production: POST the push envelope
(``{"message": ..., "subscription": ..., "deliveryAttempt": n}``) to the function, acknowledge
on success (102, 200, 201, 202, 204), and on anything else (an error status, a refused
connection, a timeout after the ack deadline) give the message back with the retry policy's
exponential backoff (``modifyAckDeadline`` to ``min_backoff * 2**(attempt-1)``, at most
``max_backoff``), so it is redelivered then, and dead-lettered by the emulator after
``max_delivery_attempts``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Self

import requests

from local.emulators import PubSubEmulator

SUCCESS = frozenset({102, 200, 201, 202, 204})  # what Pub/Sub push counts as an acknowledgement


def backoff_seconds(attempt: int, minimum: float, maximum: float) -> int:
    """The retry policy's delay before delivery ``attempt + 1`` (whole seconds: the ack deadline's unit)."""
    return int(min(maximum, minimum * 2 ** max(0, attempt - 1)))


@dataclass
class RelayCounts:
    delivered: int = 0  # acknowledged by the endpoint
    failed_attempts: int = 0  # given back for a later retry
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, delivered: bool) -> None:
        with self.lock:
            if delivered:
                self.delivered += 1
            else:
                self.failed_attempts += 1


class PushRelay:
    """Pulls ``subscription`` and pushes each message to ``endpoint`` with the retry policy above."""

    def __init__(self, pubsub: PubSubEmulator, subscription: str, endpoint: str, *, min_backoff_seconds: float,
                 max_backoff_seconds: float, ack_deadline_seconds: int, concurrency: int = 8,
                 poll_seconds: float = 0.1) -> None:
        self.pubsub = pubsub
        self.subscription = subscription
        self.endpoint = endpoint
        self.min_backoff = min_backoff_seconds
        self.max_backoff = max_backoff_seconds
        self.ack_deadline = ack_deadline_seconds
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.counts = RelayCounts()
        self._stopping = threading.Event()
        self._slots = threading.Semaphore(concurrency)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="push")
        self._thread = threading.Thread(target=self._run, name=f"push-relay-{subscription}", daemon=True)
        self._session = requests.Session()

    @property
    def path(self) -> str:
        return self.pubsub.subscription_path(self.subscription)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop pulling; pushes in flight finish (bounded by the ack deadline) or are abandoned to redelivery."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.is_set():
            free = 0
            while free < self.concurrency and self._slots.acquire(blocking=False):
                free += 1
            if not free:
                self._stopping.wait(self.poll_seconds)
                continue
            try:
                received = self._api("pull", {"maxMessages": free, "returnImmediately": True}).get(
                    "receivedMessages", [])
            except (requests.RequestException, ValueError):
                received = []  # the emulator is stopping or briefly busy: try again
            for _ in range(free - len(received)):
                self._slots.release()
            for message in received:
                self._pool.submit(self._deliver, message)
            if not received:
                self._stopping.wait(self.poll_seconds)

    def _deliver(self, received: dict[str, Any]) -> None:
        try:
            message = dict(received["message"])
            message.setdefault("message_id", message.get("messageId"))
            message.setdefault("publish_time", message.get("publishTime"))
            attempt = int(received.get("deliveryAttempt") or 1)
            envelope = {"message": message, "subscription": self.path, "deliveryAttempt": attempt}
            try:
                status = self._session.post(self.endpoint, json=envelope, timeout=self.ack_deadline).status_code
            except requests.RequestException:
                status = 0
            delivered = status in SUCCESS
            with_retry = {"ackIds": [received["ackId"]]}
            try:
                if delivered:
                    self._api("acknowledge", with_retry)
                else:
                    delay = backoff_seconds(attempt, self.min_backoff, self.max_backoff)
                    self._api("modifyAckDeadline", {**with_retry, "ackDeadlineSeconds": delay})
            except (requests.RequestException, ValueError):
                pass  # the ack deadline runs out and the emulator redelivers: at least once, as promised
            self.counts.add(delivered)
        finally:
            self._slots.release()

    def _api(self, verb: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._session.post(f"http://{self.pubsub.address}/v1/{self.path}:{verb}", json=body, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json() if response.content else {}
        return result
