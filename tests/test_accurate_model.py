"""The shipped accurate tier (all-mpnet-base-v2, int8 weights) on a few texts, and a cascade of the two shipped tiers.

Why only a few texts: an mpnet window costs about eight MiniLM ones, and the suite must stay well inside CI's
budget; its held-out figures are measured by ``make accurate-model`` and recorded in its manifest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from shared.artifact import load_manifest
from shared.cascade import Cascade
from shared.classifier import Classifier, Labeler
from shared.config import ACCURATE_MODEL_DIR, DEFAULT_MODEL_DIR

CLEAR = {
    "Absolutely love it. Setup took two minutes and it has worked flawlessly every day since.": "positive",
    "Broke after two days, support never answered and the refund is still missing. Avoid.": "negative",
}


@pytest.fixture(scope="module")
def accurate() -> Classifier:
    return Classifier.load(ACCURATE_MODEL_DIR, threads=1)


def test_the_accurate_artifact_is_the_portable_mpnet_export(accurate: Classifier) -> None:
    manifest = load_manifest(ACCURATE_MODEL_DIR)
    assert manifest.name == "review-sentiment-mpnet"
    assert manifest.quantization == "int8_weights"  # fp32 arithmetic: the same answer on every CPU family
    assert manifest.raw["inputs"] == ["input_ids", "attention_mask"]
    assert (ACCURATE_MODEL_DIR / "model.onnx").stat().st_size <= 120e6
    assert manifest.raw["parity"]["argmax_agreement"] >= 0.99
    assert "int8" in manifest.raw["evaluation"]
    assert (ACCURATE_MODEL_DIR / "MODEL_CARD.md").is_file()
    vocab = json.loads((ACCURATE_MODEL_DIR / "tokenizer.json").read_text())["model"]["vocab"]
    opening = vocab["<s>"] if isinstance(vocab, dict) else next(i for i, (t, _) in enumerate(vocab) if t == "<s>")
    assert all(w[0] == opening for w in accurate.windows("fine " * 600))


def test_the_accurate_model_labels_clear_reviews(accurate: Classifier) -> None:
    assert [p.label for p in accurate.classify(list(CLEAR))] == list(CLEAR.values())


def test_a_cascade_of_the_shipped_tiers_serves_from_the_configuration(
        configured_model: Callable[..., Labeler]) -> None:
    labeler = configured_model(MODEL_DIR=str(DEFAULT_MODEL_DIR), CASCADE_MODEL_DIR=str(ACCURATE_MODEL_DIR),
                               ORT_INTRA_OP_THREADS="1")
    assert isinstance(labeler, Cascade)
    labeler.policy = replace(labeler.policy, min_confidence=1.01)  # route everything: the accurate tier answers
    got = labeler.classify(list(CLEAR))
    assert [p.label for p in got] == list(CLEAR.values())
    assert {p.model["name"] for p in got} == {"review-sentiment-mpnet"}
    assert labeler.model_info["name"] == "review-sentiment-minilm+review-sentiment-mpnet"
