"""The build command end to end on a tiny randomly initialised BERT (seconds, no training).

Why: the build is what turns any checkpoint into what we serve; it must keep
working (export, optimizer, quantization, parity, manifest) without the hours
a real fine-tune takes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from shared.artifact import load_manifest, sha256_of  # noqa: E402
from shared.classifier import Classifier  # noqa: E402
from tools import build_artifact  # noqa: E402

WORDS = ["good", "bad", "great", "awful", "ok", "the", "phone", "broke", "love", "it", "service", "slow"]


def make_tiny_checkpoint(folder: Path) -> None:
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = BertNormalizer(lowercase=True)
    tok.pre_tokenizer = BertPreTokenizer()
    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                            special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.enable_truncation(max_length=128)  # a baked-in setting the build must strip
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, num_labels=3,  # type: ignore[call-arg]
                        id2label={0: "negative", 1: "neutral", 2: "positive"},
                        label2id={"negative": 0, "neutral": 1, "positive": 2})
    BertForSequenceClassification(config).save_pretrained(folder)
    fast.save_pretrained(folder)


def test_build_command_end_to_end(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    make_tiny_checkpoint(checkpoint)
    texts = tmp_path / "held_out.jsonl"
    rows = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(3 + i % 40)) for i in range(120)]
    texts.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    out = tmp_path / "artifact"
    build_artifact.main(["--checkpoint", str(checkpoint), "--out", str(out), "--fp32-out", str(tmp_path / "fp32"),
                         "--name", "tiny", "--version", "0.0.1", "--max-length", "32", "--stride", "8", "--head", "8",
                         "--parity-texts", str(texts)])

    manifest = load_manifest(out)
    assert manifest.labels == ["negative", "neutral", "positive"]
    assert manifest.sha256 == sha256_of(out / "model.onnx")
    assert manifest.long_text.strategy == "windows" and manifest.long_text.max_length == 32
    assert len(manifest.self_check) == len(build_artifact.SELF_CHECK_TEXTS)
    assert manifest.raw["parity"]["argmax_agreement"] >= 0.99
    raw_tokenizer = json.loads((out / "tokenizer.json").read_text())
    assert raw_tokenizer["truncation"] is None and raw_tokenizer["padding"] is None
    # int8 is smaller than fp32 and the runtime serves it after its own checks
    assert (out / "model.onnx").stat().st_size < (tmp_path / "fp32" / "model.onnx").stat().st_size
    classifier = Classifier.load(out)
    long_text = " ".join(["good phone"] * 100)
    assert len(classifier.windows(long_text)) > 1
    predictions = classifier.classify(["good", long_text])
    assert [len(p.scores) for p in predictions] == [3, 3]
    assert all(abs(sum(p.scores.values()) - 1) < 1e-4 for p in predictions)


def test_build_rejects_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"config\.json"):
        build_artifact.main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "out")])
