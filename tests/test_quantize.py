"""Quantization presets on a tiny BERT: each one builds, and ``int8_weights`` keeps fp32 arithmetic.

Why: the preset decides whether one review gets one answer on every CPU. ``int8_weights`` must store int8 and
compute in fp32 (DequantizeLinear folded at session start, never fused into MatMulNBits, whose arithmetic is
per instruction set); the portability tool's bookkeeping (follow-up decisions, fragile texts) must count right.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tests.tiny_bert import make_tiny_checkpoint  # noqa: E402
from tools import quantize  # noqa: E402
from tools.build_artifact import export_onnx, optimize  # noqa: E402
from tools.portability import decisions, emulated_sample, fragile  # noqa: E402


@pytest.fixture(scope="module")
def fp32_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    make_tiny_checkpoint(folder / "ckpt")
    config, _ = export_onnx(folder / "ckpt", folder / "raw.onnx")
    optimize(folder / "raw.onnx", folder / "fp32.onnx", config)
    return folder / "fp32.onnx"


def run(path: Path, fold: bool) -> tuple[np.ndarray, list[str]]:
    options = ort.SessionOptions()
    if fold:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    options.optimized_model_filepath = str(path.with_suffix(".optimized.onnx"))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ids = np.random.default_rng(0).integers(5, 17, size=(1, 12))
    out = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                             "token_type_ids": np.zeros_like(ids)})[0]
    ops = [n.op_type for n in onnx.load(str(path.with_suffix(".optimized.onnx"))).graph.node]
    return np.asarray(out), ops


@pytest.mark.parametrize("scheme", sorted(quantize.SCHEMES))
def test_every_preset_builds_and_records_itself(scheme: str, fp32_model: Path, tmp_path: Path) -> None:
    record = quantize.apply(fp32_model, tmp_path / "model.onnx", scheme)
    assert record["scheme"] == scheme and record["description"]
    onnx.checker.check_model(str(tmp_path / "model.onnx"))


def test_int8_weights_store_int8_and_compute_in_fp32(fp32_model: Path, tmp_path: Path) -> None:
    quantize.apply(fp32_model, tmp_path / "model.onnx", quantize.WEIGHTS_ONLY)
    stored = onnx.load(str(tmp_path / "model.onnx"))
    original = onnx.load(str(fp32_model))
    constants = {i.name for i in original.graph.initializer}
    weights = [n.input[1] for n in original.graph.node if n.op_type == "MatMul" and n.input[1] in constants]
    dtypes = {i.name: i.data_type for i in stored.graph.initializer}
    producers = {n.output[0]: n for n in stored.graph.node}
    # every constant MatMul weight is now int8 behind a DequantizeLinear; no fp32 copy is stored
    assert weights and all(w not in dtypes and producers[w].op_type == "DequantizeLinear" for w in weights)
    assert all(dtypes[producers[w].input[0]] == onnx.TensorProto.INT8 for w in weights)
    reference, _ = run(fp32_model, fold=False)
    folded, ops = run(tmp_path / "model.onnx", fold=True)
    assert "MatMulNBits" not in ops and "DequantizeLinear" not in ops  # constants folded: plain fp32 MatMuls
    np.testing.assert_allclose(folded, reference, atol=0.05)
    _, fused = run(tmp_path / "model.onnx", fold=False)
    assert "MatMulNBits" in fused  # what the classifier's session option prevents


def test_unknown_preset_is_refused(fp32_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown quantization scheme"):
        quantize.apply(fp32_model, tmp_path / "model.onnx", "int4_everything")


def test_followup_decisions_and_fragile_texts() -> None:
    probs = np.array([[0.85, 0.1, 0.05], [0.6, 0.3, 0.1], [0.5, 0.0, 0.5], [0.1, 0.1, 0.8],
                      [0.8000001, 0.1, 0.0999999]])
    assert decisions(probs).tolist() == [2, 1, 0, 0, 2]  # 0.5 is below the needs_review band
    counts = fragile(probs, 1e-6)
    assert counts == {"label": 1, "decision": 1}  # the 50/50 text; the one a hair above the 0.80 threshold


def test_emulated_sample_spreads_over_splits() -> None:
    rows = [{"split": s, "text": "x" * n} for s in ("a", "b") for n in range(1, 41)]
    picked = emulated_sample(rows, 6)
    assert len(picked) == 6 and {rows[i]["split"] for i in picked} == {"a", "b"}
    assert all(len(rows[i]["text"]) > 10 for i in picked)  # the shortest quarter of each split is skipped
