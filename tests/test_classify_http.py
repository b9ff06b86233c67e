"""The HTTP function through functions-framework's own app: every status the API promises.

Why through ``create_app``: it is the same WSGI app Cloud Functions runs, so
routing, body handling and JSON answers are tested as deployed. Each answer is
also checked against the OpenAPI document, so the document cannot drift.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from functions_framework import create_app

from shared import classifier as model
from shared.classifier import Classifier
from shared.config import DEFAULT_MODEL_DIR, PROJECT_ROOT, get_settings

SPEC = yaml.safe_load((PROJECT_ROOT / "docs" / "openapi.yaml").read_text())


def validate(path_item: str, method: str, status: int, body: Any) -> None:
    """The answer must be one the OpenAPI document lists, with a body of its schema."""
    responses = SPEC["paths"][path_item][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {status} is not documented"
    response = responses[str(status)]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": SPEC["components"]})


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(target="classify_http", source=str(PROJECT_ROOT / "main.py"))


@pytest.fixture()
def client(app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("API_KEY", "MAX_BATCH", "MAX_REVIEW_CHARS", "MAX_BODY_BYTES", "MODEL_DIR", "LOG_REVIEW_TEXT"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield app.test_client()
    get_settings.cache_clear()


def call(client: Any, method: str, **kwargs: Any) -> tuple[int, Any]:
    response = client.open("/", method=method, **kwargs)
    assert response.mimetype == "application/json"
    body = response.get_json()
    validate("/", method, response.status_code, body)
    return response.status_code, body


def test_post_one_review(client: Any) -> None:
    status, body = call(client, "POST", json={"review": "Absolutely love it, works perfectly"})
    assert status == 200
    assert body["results"][0]["label"] == "positive"
    assert body["model"] == model.get_classifier().model_info


def test_post_batch_keeps_order(client: Any) -> None:
    texts = ["Broke after two days and support never answered.", "Absolutely love it, works perfectly",
             "Terrible. Refund refused, never again.", "Fantastic service, thank you so much!"]
    status, body = call(client, "POST", json={"reviews": texts})
    assert status == 200
    assert [r["label"] for r in body["results"]] == ["negative", "positive", "negative", "positive"]
    expected = [p.label for p in model.get_classifier().classify(texts)]
    assert [r["label"] for r in body["results"]] == expected


def test_get_one_review(client: Any) -> None:
    status, body = call(client, "GET", query_string={"review": "Broke after two days and support never answered."})
    assert status == 200
    assert len(body["results"]) == 1 and body["results"][0]["label"] == "negative"
    assert abs(sum(body["results"][0]["scores"].values()) - 1) < 1e-3


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"data": "{not json", "content_type": "application/json"}, "malformed_json"),
    ({"data": b"\xff\xfe", "content_type": "application/json"}, "malformed_json"),
    ({"data": "review=hi", "content_type": "application/x-www-form-urlencoded"}, "unsupported_content_type"),
    ({"data": json.dumps({"review": "hi"}), "content_type": "text/plain"}, "unsupported_content_type"),
    ({"json": {"text": "hi"}}, "unknown_field"),
    ({"json": {"review": "hi", "lang": "en"}}, "unknown_field"),
    ({"json": {}}, "missing_field"),
    ({"json": {"review": "a", "reviews": ["b"]}}, "missing_field"),
    ({"json": {"review": 42}}, "not_a_string"),
    ({"json": {"reviews": ["ok", None]}}, "not_a_string"),
    ({"json": {"reviews": "not a list"}}, "not_a_list"),
    ({"json": {"review": ""}}, "empty_review"),
    ({"json": {"review": "   \n "}}, "empty_review"),
    ({"json": {"reviews": []}}, "empty_batch"),
    ({"json": ["a", "b"]}, "wrong_shape"),
    # hostile JSON: each of these was a 500 before (RecursionError, ValueError, TypeError in the tokenizer)
    ({"data": "[" * 100_000, "content_type": "application/json"}, "malformed_json"),
    ({"data": '{"review": "hi", "n": ' + "9" * 100_000 + "}", "content_type": "application/json"},
     "malformed_json"),
    ({"data": '{"review": "\\ud800 hi"}', "content_type": "application/json"}, "malformed_json"),
    ({"data": '{"review": "a", "review": "b"}', "content_type": "application/json"}, "malformed_json"),
    ({"data": '{"review": NaN}', "content_type": "application/json"}, "malformed_json"),
])
def test_post_bad_input_is_400(client: Any, kwargs: dict[str, Any], code: str) -> None:
    status, body = call(client, "POST", **kwargs)
    assert (status, body["error"]["code"]) == (400, code)
    assert body["error"]["message"]


def test_get_without_review_is_400(client: Any) -> None:
    status, body = call(client, "GET")
    assert (status, body["error"]["code"]) == (400, "missing_field")


def test_too_many_reviews_is_413(client: Any) -> None:
    status, body = call(client, "POST", json={"reviews": ["fine"] * 65})
    assert (status, body["error"]["code"]) == (413, "payload_too_large")


def test_batch_limit_is_configurable(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BATCH", "2")
    get_settings.cache_clear()
    assert call(client, "POST", json={"reviews": ["a", "b", "c"]})[0] == 413
    assert call(client, "POST", json={"reviews": ["good", "bad"]})[0] == 200


def test_a_request_asking_for_too_much_compute_is_413_before_any_inference(
        client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """64 reviews of 4,800 characters pass every size limit but took 44 s of CPU: the window budget says no."""
    long_review = ("The battery lasts two days and the screen is sharp, but the charger died twice. " * 60)[:4800]
    status, body = call(client, "POST", json={"reviews": [long_review] * 64})
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert "at most 128" in body["error"]["message"] and "windows" in body["error"]["message"]
    assert '"classified"' not in capsys.readouterr().out
    assert call(client, "POST", json={"reviews": [long_review] * 2})[0] == 200


def test_review_too_long_is_413(client: Any) -> None:
    status, body = call(client, "POST", json={"review": "x" * 5001})
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert call(client, "GET", query_string={"review": "y" * 5001})[0] == 413


def test_body_over_a_megabyte_is_413(client: Any) -> None:
    status, body = call(client, "POST", data="[" + " " * 1_000_001 + "]", content_type="application/json")
    assert (status, body["error"]["code"]) == (413, "payload_too_large")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(client: Any, method: str) -> None:
    response = client.open("/", method=method, json={"review": "hi"})
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert method.lower() not in SPEC["paths"]["/"], "a method that is always refused is not an operation"
    schema = SPEC["components"]["responses"]["Error"]["content"]["application/json"]["schema"]
    jsonschema.validate(response.get_json(), {**schema, "components": SPEC["components"]})
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_api_key_required_when_configured(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "s3cret-key")
    get_settings.cache_clear()
    status, body = call(client, "POST", json={"review": "great"})
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert call(client, "POST", json={"review": "great"}, headers={"X-API-Key": "wrong"})[0] == 401
    assert call(client, "GET", query_string={"review": "great"}, headers={"X-API-Key": "s3cret-ke"})[0] == 401
    assert call(client, "POST", json={"review": "great"}, headers={"X-API-Key": "s3cret-key"})[0] == 200


def test_broken_artifact_is_503_not_a_stack_trace(client: Any, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    broken = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, broken)
    with (broken / "model.onnx").open("ab") as fh:
        fh.write(b"tampered")
    monkeypatch.setenv("MODEL_DIR", str(broken))
    get_settings.cache_clear()
    model.reset_for_tests()
    loads: list[int] = []
    real_load = Classifier.load

    def counting_load(*args: Any, **kwargs: Any) -> Classifier:
        loads.append(1)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(Classifier, "load", staticmethod(counting_load))
    try:
        for _ in range(5):
            status, body = call(client, "POST", json={"review": "great"})
            assert (status, body["error"]["code"]) == (503, "bad_artifact")
            assert "Traceback" not in body["error"]["message"]
        assert loads == [1], "a failed load is remembered for a backoff, not paid again by every request"
    finally:
        model.reset_for_tests()


def test_logs_are_structured_and_leave_text_out(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    secret = "my card number is 4111 and the app crashed"
    assert call(client, "POST", json={"reviews": [secret, "fine"]})[0] == 200
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    entry = next(e for e in lines if e["message"] == "classified")
    assert entry["severity"] == "INFO" and entry["batch_size"] == 2
    assert isinstance(entry["latency_ms"], float) and isinstance(entry["cold_start"], bool)
    assert entry["model_version"] == model.get_classifier().model_info["version"]
    assert secret not in json.dumps(lines)
