"""Delivering a follow-up notification: a Pub/Sub message and an optional chat webhook.

Why two channels: the Pub/Sub topic is the durable, machine-readable feed
(ticketing, CRM, analytics subscribe to it); the webhook puts the complaint in
front of a person in Discord or Slack right away. The payload
``{"content": ..., "text": ...}`` is accepted by both (Discord reads
``content``, Slack incoming webhooks read ``text``).

This module only sends, once per call, and raises a typed error when a send
fails; deciding whether to send at all (exactly once per review) is
``shared.followups``'s job. Clients are created lazily, once per process, so
importing this module opens nothing; the Pub/Sub client honours
``PUBSUB_EMULATOR_HOST`` by itself. The webhook URL is a secret (it embeds a
token): it never appears in errors or logs, only its host does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from shared.config import Settings
from shared.errors import ReviewsenseError
from shared.process_wide import ProcessWide

# Discord rejects "content" over 2000 characters; stay clear of it.
MAX_MESSAGE_CHARS = 1900
# A publish that has not completed by then is treated as failed (the claim is released and the event retried).
PUBLISH_TIMEOUT_SECONDS = 30.0


class NotificationError(ReviewsenseError):
    """A notification could not be delivered; unless ``permanent``, the function raises so the event is retried."""

    code = "notification_failed"

    @property
    def permanent(self) -> bool:
        """Whether sending the same message again would fail the same way."""
        return False


class PublishError(NotificationError):
    code = "publish_failed"


class WebhookError(NotificationError):
    code = "webhook_failed"

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code

    @property
    def permanent(self) -> bool:
        """A 4xx refuses this request for good (revoked webhook, bad URL), except 408 and 429, which ask to wait."""
        return self.status_code is not None and 400 <= self.status_code < 500 and self.status_code not in (408, 429)


def _new_publisher() -> Any:
    from google.cloud.pubsub_v1 import PublisherClient

    return PublisherClient()


_publisher: ProcessWide[Any] = ProcessWide(_new_publisher)


def publish(settings: Settings, payload: Mapping[str, Any], attributes: Mapping[str, str]) -> str:
    """Publish one JSON message to the follow-up topic and wait for its message id."""
    from google.api_core import exceptions as api_exceptions

    publisher = _publisher.get()
    topic = publisher.topic_path(settings.project_id, settings.followup_topic)
    data = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    try:
        future = publisher.publish(topic, data, **dict(attributes))
        message_id = future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
    except (api_exceptions.GoogleAPIError, TimeoutError, OSError, RuntimeError) as exc:
        raise PublishError(f"publishing to {topic} failed: {type(exc).__name__}: {exc}") from exc
    return str(message_id)


def post_webhook(settings: Settings, text: str) -> int:
    """POST the chat message to the configured webhook; return its status code (2xx), raise otherwise."""
    import requests

    url = settings.followup_webhook_url
    if not url:
        raise WebhookError("no webhook URL is configured")
    host = urlsplit(url).netloc or "the webhook"
    body = {"content": text, "text": text}
    try:
        response = requests.post(url, json=body, timeout=settings.webhook_timeout_seconds)
    except requests.RequestException as exc:
        # The exception text repeats the URL (and its token): name only the host and the error type.
        raise WebhookError(f"webhook at {host} unreachable: {type(exc).__name__}") from None
    if not 200 <= response.status_code < 300:
        raise WebhookError(f"webhook at {host} answered {response.status_code}", response.status_code)
    return int(response.status_code)


def chat_message(followup: Mapping[str, Any]) -> str:
    """The human message: who, how negative, and the sentences that drove the label, quoted."""
    sentiment = followup.get("sentiment") or {}
    score = sentiment.get("score")
    priority = str(followup.get("priority", "normal"))
    who = ", ".join(part for part in (
        f"customer {followup['customer_id']}" if followup.get("customer_id") else "",
        f"via {followup['source']}" if followup.get("source") else "",
    ) if part)
    head = (f"{'🔴 HIGH priority' if priority == 'high' else '🟠'} negative review {followup.get('review_id')}"
            + (f" ({who})" if who else "")
            + (f", score {float(score):.2f}" if isinstance(score, int | float) else ""))
    evidence: Sequence[str] = followup.get("evidence") or [followup.get("excerpt") or ""]
    quoted = "\n".join(f"> {sentence}" for sentence in evidence if sentence)
    text = f"{head}\n{quoted}" if quoted else head
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS - 1] + "…"
