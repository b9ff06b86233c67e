"""Typed errors, so each edge (HTTP, Pub/Sub, Firestore trigger) maps them to one clear answer.

Why typed: a handler must tell "the client sent something wrong" (answer 4xx,
or keep the message as rejected and acknowledge it) from "our artifact is
broken" (refuse to serve, loudly) from "a dependency is briefly down" (raise
so the platform retries). Each class carries a stable machine-readable
``code`` for JSON answers and logs.
"""

from __future__ import annotations


class ReviewsenseError(Exception):
    """Base of every error this product raises on purpose."""

    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(ReviewsenseError):
    """An environment variable holds a value we cannot use."""

    code = "bad_config"


class ArtifactError(ReviewsenseError):
    """The model artifact is missing, malformed or does not match its manifest."""

    code = "bad_artifact"


class SelfCheckError(ArtifactError):
    """The model loads but answers the manifest's self-check texts differently than at build time.

    Typically int8 kernels that differ on this CPU (VNNI or not): we refuse to
    serve rather than mislabel reviews.
    """

    code = "self_check_failed"


class ProviderUnavailableError(ReviewsenseError):
    """An execution provider was asked for (for example CUDA) that this onnxruntime lacks."""

    code = "provider_unavailable"


class InvalidInputError(ReviewsenseError):
    """The caller sent something we will not classify; the answer is the caller's to fix."""

    code = "invalid_input"
    status = 400

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class PayloadTooLargeError(InvalidInputError):
    """Too many reviews, a review too long, or a body too big."""

    code = "payload_too_large"
    status = 413


class ContentionError(ReviewsenseError):
    """A document kept changing under our conditional writes; raised as transient so the platform retries."""

    code = "contention"


class RequestTimeoutError(InvalidInputError):
    """The client did not send the body it announced in time; its thread is given back to others."""

    code = "body_timeout"
    status = 408
