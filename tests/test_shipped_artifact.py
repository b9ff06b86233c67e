"""The artifact we ship: intact, tokenizer without hidden limits, and right on obvious reviews.

Why: the base checkpoint's tokenizer.json truncates and pads to 128 tokens by
default, which would silently cut every long review; and a model that gets
"love it" wrong must never ship whatever its other figures say.
"""

from __future__ import annotations

import json

import pytest

from shared.artifact import load_manifest, sha256_of
from shared.classifier import Classifier
from shared.config import DEFAULT_MODEL_DIR

SAMPLES = [
    "", "Great product!!! 😍😍 would buy again", "Café crème brûlée was naïve-ly överpriced — 12€",
    "see https://example.com/path?q=1&x=2 for details", "ALL CAPS RAGE!!! NEVER AGAIN",
    "tabs\tand\nnewlines  and   spaces", "日本語のレビュー、とても良い", "don't won't can't it's y'all",
    " ".join(["a very long review that keeps going"] * 200),
]


def test_manifest_hash_matches_the_model() -> None:
    manifest = load_manifest(DEFAULT_MODEL_DIR)
    assert sha256_of(DEFAULT_MODEL_DIR / "model.onnx") == manifest.sha256
    assert (DEFAULT_MODEL_DIR / "model.onnx").stat().st_size <= 25_000_000
    for key in ("provenance", "evaluation", "parity", "quantization", "long_text", "self_check"):
        assert key in manifest.raw, key


def test_tokenizer_has_no_hidden_truncation_or_padding() -> None:
    raw = json.loads((DEFAULT_MODEL_DIR / "tokenizer.json").read_text())
    assert raw["truncation"] is None
    assert raw["padding"] is None


def test_tokens_equal_the_training_tokenizer() -> None:
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer

    from tools.train import base_checkpoint_dir

    training = transformers.AutoTokenizer.from_pretrained(base_checkpoint_dir())
    shipped = Tokenizer.from_file(str(DEFAULT_MODEL_DIR / "tokenizer.json"))
    for text in SAMPLES:
        expected = training(text, truncation=False)["input_ids"]
        assert shipped.encode(text).ids == expected, text[:40]


@pytest.mark.parametrize(("text", "label"), [
    ("Absolutely love it, works perfectly", "positive"),
    ("Broke after two days and support never answered", "negative"),
    ("Best purchase I've made all year, five stars.", "positive"),
    ("Complete waste of money. Avoid.", "negative"),
    ("Rude staff, cold food and we waited an hour. Never again.", "negative"),
    ("Setup took two minutes and it has worked flawlessly since. Highly recommend.", "positive"),
])
def test_obvious_reviews_are_classified_right(text: str, label: str) -> None:
    assert Classifier.load(DEFAULT_MODEL_DIR).classify([text])[0].label == label
