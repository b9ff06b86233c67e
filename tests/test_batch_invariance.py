"""One review, one answer: the same probabilities alone, in batches of 32, shuffled, and through the HTTP batch API.

Why: a review's label must depend on its text and the artifact only. With per-call dynamic quantization it
depended on the other reviews of the same request or Beam bundle (12 of 320 labels flipped); the classifier now
runs every window alone, and this test holds it to that on our whole evaluation split.
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest
from functions_framework import create_app

from shared.artifact import load_manifest
from shared.classifier import Classifier
from shared.config import DEFAULT_MODEL_DIR, PROJECT_ROOT, get_settings

EVAL = PROJECT_ROOT / "data" / "reviews" / "splits" / "eval.jsonl"


@pytest.fixture(scope="module")
def reviews() -> list[str]:
    return [json.loads(line)["text"] for line in EVAL.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def alone(reviews: list[str]) -> np.ndarray:
    clf = Classifier.load(DEFAULT_MODEL_DIR, threads=1)
    return np.concatenate([clf.probabilities([t]) for t in reviews])


def test_batches_and_shuffles_give_each_review_its_own_answer(reviews: list[str], alone: np.ndarray) -> None:
    clf = Classifier.load(DEFAULT_MODEL_DIR, threads=2)  # thread count must not matter either
    batched = np.concatenate([clf.probabilities(reviews[i:i + 32]) for i in range(0, len(reviews), 32)])
    np.testing.assert_allclose(batched, alone, atol=1e-5, rtol=0)
    order = list(range(len(reviews)))
    random.Random(14).shuffle(order)
    shuffled = np.empty_like(alone)
    for start in range(0, len(order), 32):
        chunk = order[start:start + 32]
        shuffled[chunk] = clf.probabilities([reviews[i] for i in chunk])
    np.testing.assert_allclose(shuffled, alone, atol=1e-5, rtol=0)
    assert (shuffled.argmax(1) == alone.argmax(1)).all()


def test_http_batches_answer_as_single_reviews(reviews: list[str], alone: np.ndarray,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_KEY", raising=False)
    monkeypatch.setenv("ORT_INTRA_OP_THREADS", "1")
    get_settings.cache_clear()
    client = create_app(target="classify_http", source=str(PROJECT_ROOT / "main.py")).test_client()
    labels = load_manifest(DEFAULT_MODEL_DIR).labels
    order = list(range(len(reviews)))
    random.Random(15).shuffle(order)
    for start in range(0, len(order), 32):
        chunk = order[start:start + 32]
        response = client.post("/", json={"reviews": [reviews[i] for i in chunk]})
        assert response.status_code == 200
        results: list[dict[str, Any]] = response.get_json()["results"]
        for i, result in zip(chunk, results, strict=True):
            expected = alone[i]
            assert result["label"] == labels[int(expected.argmax())]
            assert [result["scores"][k] for k in labels] == pytest.approx(expected.tolist(), abs=1e-5)
    get_settings.cache_clear()
