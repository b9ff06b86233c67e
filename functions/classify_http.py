"""``classify_http``: classify reviews on demand over HTTP.

Thin by design: method, key and body rules live in ``shared.classify_request``,
the model in ``shared.classifier``; this module maps their typed errors to
JSON answers with the right status, never a stack trace.
"""

from __future__ import annotations

import time
from typing import Any

import flask
import functions_framework

from shared import classifier as model
from shared import logs
from shared.classify_request import check_api_key, check_compute, check_method, parse_get, parse_post
from shared.config import get_settings
from shared.errors import ArtifactError, InvalidInputError, ProviderUnavailableError, ReviewsenseError
from shared.request_body import read_body, server_socket


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> flask.Response:
    response = flask.jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _forget_unread_body(request: flask.Request) -> None:
    """Stop functions-framework from reading what is left of the body after we answer.

    It reads the whole request before responding (its ``read_request`` after-request hook,
    ``request.get_data()``), with no deadline: a 401, 405, 408 or 413 sent before the body
    arrived, or a GET that announced a body, then waited on the client forever (a 2 GB
    ``Content-Length`` with no body held its 413 for 40 s). Whatever we did not read, we do
    not want; gunicorn drains leftovers for keep-alive within its own 5 s bound.
    """
    request._cached_data = b""  # what get_data() returns from now on


@functions_framework.http
def classify_http(request: flask.Request) -> flask.Response:
    try:
        return _classify(request)
    finally:
        _forget_unread_body(request)


def _classify(request: flask.Request) -> flask.Response:
    started = time.perf_counter()
    cold = not model.is_loaded()
    try:
        settings = get_settings()
        check_method(request.method)
        check_api_key(settings, request.headers.get("X-API-Key"))
        if request.method == "GET":
            texts = parse_get(request.args, settings)
        else:
            raw = read_body(request.stream, request.content_length, settings.max_body_bytes,
                            settings.body_read_timeout_seconds, server_socket(request.environ))
            texts = parse_post(request.content_type, raw, settings)
        classifier = model.get_classifier()
        check_compute(sum(len(classifier.windows(text)) for text in texts), settings)
        results = classifier.classify(texts)
    except InvalidInputError as exc:
        headers = {"Allow": "GET, POST"} if exc.status == 405 else None
        logs.warning("request rejected", code=exc.code, status=exc.status, detail=exc.message)
        return _error(exc.status, exc.code, exc.message, headers)
    except (ArtifactError, ProviderUnavailableError) as exc:
        logs.error("classifier unavailable", code=exc.code, detail=exc.message)
        return _error(503, exc.code, "the classifier cannot serve right now; operators have the details in the logs")
    except ReviewsenseError as exc:
        logs.error("request failed", code=exc.code, detail=exc.message)
        return _error(500, exc.code, "internal error")
    except Exception as exc:  # the edge: never leak a stack trace to the caller
        logs.error("unexpected error", error=repr(exc))
        return _error(500, "internal", "internal error")
    body: dict[str, Any] = {"results": [r.as_dict() for r in results], "model": classifier.model_info}
    latency_ms = (time.perf_counter() - started) * 1000
    logs.info("classified", latency_ms=round(latency_ms, 2), batch_size=len(texts), cold_start=cold,
              model_version=classifier.model_info["version"],
              **({"texts": texts} if settings.log_review_text else {}))
    return flask.jsonify(body)
