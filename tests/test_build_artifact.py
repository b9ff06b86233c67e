"""The build command end to end on a tiny randomly initialised BERT (seconds, no training).

Why: the build is what turns any checkpoint into what we serve; it must keep
working (export, optimizer, quantization, parity, manifest) without the hours
a real fine-tune takes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from shared.artifact import load_manifest, sha256_of  # noqa: E402
from shared.classifier import Classifier  # noqa: E402
from shared.cpu import kernel_family  # noqa: E402
from shared.errors import ArtifactError  # noqa: E402
from tests.tiny_bert import WORDS, make_tiny_checkpoint  # noqa: E402
from tools import build_artifact, emulate  # noqa: E402


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
    assert manifest.tokenizer_sha256 == sha256_of(out / "tokenizer.json")
    assert manifest.quantization == "int8_weights"
    check = manifest.self_check
    assert [c.text for c in check.cases][:len(build_artifact.SELF_CHECK_TEXTS)] == build_artifact.SELF_CHECK_TEXTS
    # expectations for every kernel family the build could run (natively, and under qemu where installed)
    assert check.families == emulate.families()
    assert all(set(c.expected) == set(check.families) for c in check.cases)
    assert manifest.raw["self_check"]["built_on"] == kernel_family()
    # int8 weights with fp32 arithmetic: families differ in the last float bits only, so the tolerance is tight
    assert manifest.raw["self_check"]["spread"] < 1e-4
    assert check.tolerance <= 0.002 < check.unmeasured_tolerance
    assert manifest.raw["parity"]["argmax_agreement"] >= 0.99
    assert manifest.raw["parity"]["cpu"]  # parity depends on the CPU's kernels: record which
    assert manifest.raw["parity"]["kernel_family"] == kernel_family()
    raw_tokenizer = json.loads((out / "tokenizer.json").read_text())
    assert raw_tokenizer["truncation"] is None and raw_tokenizer["padding"] is None
    # int8 storage is smaller than fp32 and the runtime serves it after its own checks
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


def build_tiny(tmp_path: Path, make: Callable[[Path], None]) -> Path:
    """A tiny artifact with 32-token windows, self-check answers on this CPU only (seconds)."""
    checkpoint = tmp_path / "ckpt"
    make(checkpoint)
    out = tmp_path / "artifact"
    build_artifact.main(["--checkpoint", str(checkpoint), "--out", str(out), "--fp32-out", str(tmp_path / "fp32"),
                         "--name", "tiny", "--max-length", "32", "--stride", "8", "--head", "8", "--families"])
    return out


def test_an_mpnet_checkpoint_builds_and_serves_with_its_own_template(tmp_path: Path) -> None:
    """The accurate tier's encoder family: no token_type_ids, and ``<s> ... </s>`` instead of ``[CLS] ... [SEP]``."""
    from tests.tiny_bert import make_tiny_mpnet_checkpoint

    out = build_tiny(tmp_path, make_tiny_mpnet_checkpoint)

    manifest = load_manifest(out)
    assert manifest.raw["inputs"] == ["input_ids", "attention_mask"]
    classifier = Classifier.load(out)
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    windows = classifier.windows(" ".join(["good phone"] * 40))
    assert len(windows) > 1
    assert all(w[0] == vocab["<s>"] and w[-1] == vocab["</s>"] and len(w) <= 32 for w in windows)
    assert classifier.probabilities(["good phone", "awful service"]).shape == (2, 3)


def test_a_tokenizer_without_a_wrapping_template_is_refused(tmp_path: Path) -> None:
    """Windows are budgeted for one opening and one closing token; a tokenizer that adds none is not served."""
    out = build_tiny(tmp_path, make_tiny_checkpoint)
    tokenizer = json.loads((out / "tokenizer.json").read_text())
    tokenizer["post_processor"] = None
    (out / "tokenizer.json").write_text(json.dumps(tokenizer))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["tokenizer_sha256"] = sha256_of(out / "tokenizer.json")
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="opening and one closing"):
        Classifier.load(out, self_check=False)


def test_a_failed_build_leaves_the_served_artifact_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds go to a folder beside the target and replace it only once every check passed."""
    out = build_tiny(tmp_path, make_tiny_checkpoint)
    (out / build_artifact.CARD).write_text("written by people\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(build_artifact, "PARITY_MIN_AGREEMENT", 1.01)  # no build can pass: the gate fails
    with pytest.raises(SystemExit) as refused:
        build_artifact.main(["--checkpoint", str(tmp_path / "ckpt"), "--out", str(out), "--fp32-out",
                             str(tmp_path / "fp32"), "--name", "tiny", "--version", "9.9.9", "--max-length", "32",
                             "--stride", "8", "--head", "8", "--families"])
    assert refused.value.code == build_artifact.PARITY_FAILED
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact", "ckpt", "fp32"], "no staging folder is left"
    Classifier.load(out)  # still served

    monkeypatch.setattr(build_artifact, "PARITY_MIN_AGREEMENT", 0.99)
    build_artifact.main(["--checkpoint", str(tmp_path / "ckpt"), "--out", str(out), "--fp32-out",
                         str(tmp_path / "fp32"), "--name", "tiny", "--version", "9.9.9", "--max-length", "32",
                         "--stride", "8", "--head", "8", "--families"])
    assert load_manifest(out).version == "9.9.9" and (out / build_artifact.CARD).read_text() == "written by people\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact", "ckpt", "fp32"]
