"""The benchmark's smoke run end to end on a tiny model: every variant in fresh processes, report written.

Why: the full benchmark is run by hand (it takes minutes and needs a quiet
machine); this keeps all of its code paths from rotting in CI: the fp32 build
from a checkpoint, the in-process workers (ONNX Runtime and the transformers
pipeline), both HTTP functions under functions-framework, the dependency sizes,
the compute bound, the report and the plot. It asserts that every figure is
there and sane, never how fast anything is.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.tiny_bert import WORDS, make_tiny_checkpoint, make_tiny_mpnet_checkpoint  # noqa: E402
from tools import build_artifact  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"reference", "ours_fp32", "ours_int8", "reference_http", "ours_int8_http", "ours_accurate",
            "ours_cascade"}


def test_bench_smoke_runs_every_variant_and_writes_the_report(tmp_path: Path) -> None:
    checkpoint, int8, fp32, out = tmp_path / "ckpt", tmp_path / "int8", tmp_path / "fp32", tmp_path / "results"
    make_tiny_checkpoint(checkpoint)
    held_out = tmp_path / "held_out.jsonl"
    rows = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(3 + i % 40)) for i in range(120)]
    held_out.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    build_artifact.main(["--checkpoint", str(checkpoint), "--out", str(int8), "--fp32-out",
                         str(tmp_path / "build-fp32"), "--name", "tiny", "--version", "0.0.1", "--max-length", "32",
                         "--stride", "8", "--head", "8", "--parity-texts", str(held_out)])

    accurate = tmp_path / "accurate"  # the accurate tier's shape (MPNet), tiny
    make_tiny_mpnet_checkpoint(tmp_path / "mpnet-ckpt")
    build_artifact.main(["--checkpoint", str(tmp_path / "mpnet-ckpt"), "--out", str(accurate), "--fp32-out",
                         str(tmp_path / "mpnet-fp32"), "--name", "tiny-mpnet", "--max-length", "32", "--stride", "8",
                         "--head", "8", "--families"])

    # fp32 is missing on purpose: the benchmark must build it from the checkpoint
    run = subprocess.run([sys.executable, "bench/run.py", "--smoke", "--checkpoint", str(checkpoint), "--int8",
                          str(int8), "--fp32", str(fp32), "--accurate", str(accurate), "--out-dir", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-4000:]

    data = json.loads((out / "latest.json").read_text())
    assert data["failures"] == {}
    assert set(data["variants"]) >= VARIANTS
    assert json.loads((fp32 / "manifest.json").read_text())["self_check"]["cases"]
    for key in VARIANTS:
        v = data["variants"][key]
        cold = v["cold_start_s"]["total"]
        assert cold["n"] == 1 and 0 < cold["median"] < 600
        assert v["latency_ms"]["single"]["median"] > 0
        assert all(rate > 0 for sweep in v["throughput_rps"].values() for rate in sweep.values())
        peak = v["memory_mb"]["after_long_batch"]
        assert (peak["serving_process"] if key.endswith("_http") else peak)["VmHWM"] > 10
    for part in ("interpreter", "imports", "load", "first_inference"):
        assert data["variants"]["ours_int8"]["cold_start_s"][part]["median"] >= 0
    assert data["variants"]["ours_int8_http"]["imports"]["forbidden_loaded"] == []
    pairs = data["agreement"]["pairs"]
    assert {"ours_int8 vs ours_fp32", "ours_int8 vs reference", "ours_int8_http vs ours_int8"} <= set(pairs)
    assert pairs["ours_int8_http vs ours_int8"]["all"] == 1.0  # same model, same texts, over HTTP or not
    assert all(0 <= row["all"] <= 1 for row in pairs.values())
    sizes = data["sizes"]["dependencies_mib"]
    assert sizes["reference_runtime"]["mib"] > sizes["ours_runtime"]["mib"] > 0
    assert data["compute_bound"]["matmul"]["gflops"]
    assert data["cost"]["per_1000_reviews_usd"]["ours_int8_http"]
    # the accurate model and the cascade are priced on the tier sized for them
    assert {data["cost"]["per_1000_reviews_usd"][k]["tier"] for k in ("ours_accurate", "ours_cascade")} == {"accurate"}
    assert data["variants"]["ours_cascade"]["cascade"] == str(accurate)
    assert data["sizes"]["model_file_mb"]["ours_accurate"] > 0
    assert {t["target"] for t in data["targets"]} >= {"HTTP cold start", "int8 agrees with fp32"}
    markdown = (out / "latest.md").read_text()
    assert "| Metric |" in markdown and "## Targets" in markdown and "cloud.google.com" in markdown
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
