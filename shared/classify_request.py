"""What a valid on-demand classification request is, independent of the web framework.

Why here and not in the handler: the limits (batch size, text length, body
size) are product rules that the OpenAPI document, the tests and the handler
must share; the handler only hands over method, headers and body.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from shared.config import Settings
from shared.errors import InvalidInputError, PayloadTooLargeError
from shared.untrusted_json import UntrustedJSONError, check_text, loads

ALLOWED_METHODS = ("GET", "POST")


def check_api_key(settings: Settings, presented: str | None) -> None:
    """With an API key configured, the request must present it (constant-time comparison)."""
    if settings.api_key is None:
        return
    if presented is None or not hmac.compare_digest(presented.encode(), settings.api_key.encode()):
        raise InvalidInputError("missing or wrong X-API-Key header", code="unauthorized", status=401)


def check_method(method: str) -> None:
    if method not in ALLOWED_METHODS:
        raise InvalidInputError(f"method {method} is not allowed; use GET or POST", code="method_not_allowed",
                                status=405)


def _check_texts(texts: list[Any], settings: Settings) -> list[str]:
    if not texts:
        raise InvalidInputError("'reviews' must hold at least one review", code="empty_batch")
    if len(texts) > settings.max_batch:
        raise PayloadTooLargeError(f"{len(texts)} reviews in one request; at most {settings.max_batch}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(f"review {i} is a {type(text).__name__}, not a string", code="not_a_string")
        if not text.strip():
            raise InvalidInputError(f"review {i} is empty", code="empty_review")
        try:
            check_text(text, f"review {i}")
        except UntrustedJSONError as exc:
            raise InvalidInputError(str(exc), code="invalid_text") from None
        if len(text) > settings.max_review_chars:
            raise PayloadTooLargeError(
                f"review {i} has {len(text)} characters; at most {settings.max_review_chars}")
    return texts


def check_compute(windows: int, settings: Settings) -> None:
    """A request under every size limit can still ask for minutes of CPU (64 long reviews); bound its windows."""
    if windows > settings.max_windows_per_request:
        raise PayloadTooLargeError(
            f"these reviews make {windows} model windows (about 200 words each); one request may ask for at most "
            f"{settings.max_windows_per_request}: send fewer or shorter reviews per request")


def parse_get(args: Mapping[str, str], settings: Settings) -> list[str]:
    if "review" not in args:
        raise InvalidInputError("missing query parameter 'review'", code="missing_field")
    return _check_texts([args["review"]], settings)


def parse_post(content_type: str | None, body: bytes, settings: Settings) -> list[str]:
    """The reviews of a POST body, or a typed error saying exactly what is wrong with it."""
    if len(body) > settings.max_body_bytes:
        raise PayloadTooLargeError(f"body of {len(body)} bytes; at most {settings.max_body_bytes}")
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime != "application/json":
        raise InvalidInputError(f"content type {mime or 'none'!r} is not supported; send application/json",
                                code="unsupported_content_type")
    try:
        payload = loads(body.decode("utf-8"))
    except (UnicodeDecodeError, UntrustedJSONError) as exc:
        raise InvalidInputError(f"body is not UTF-8 JSON we accept: {exc}", code="malformed_json") from None
    if not isinstance(payload, dict):
        raise InvalidInputError("body must be a JSON object with 'review' or 'reviews'", code="wrong_shape")
    unknown = sorted(set(payload) - {"review", "reviews"})
    if unknown:
        raise InvalidInputError(f"unknown field {unknown[0][:40]!r}: send only 'review' or 'reviews'",
                                code="unknown_field")
    if ("review" in payload) == ("reviews" in payload):
        raise InvalidInputError("send exactly one of 'review' (a string) or 'reviews' (a list of strings)",
                                code="missing_field")
    if "review" in payload:
        return _check_texts([payload["review"]], settings)
    if not isinstance(payload["reviews"], list):
        raise InvalidInputError("'reviews' must be a list of strings", code="not_a_list")
    return _check_texts(payload["reviews"], settings)
