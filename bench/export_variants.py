"""Export variants of a model (the fast one by default), timed through the serving classifier: which graph to ship.

Why: the shipped preset computes in fp32 (int8 weights folded at session start, ``tools/quantize.py``), so speed
comes from the graph, not from int8 kernels. Each variant here is the same checkpoint exported with one attention
implementation (Hugging Face ``attn_implementation``: eager or SDPA) and one graph optimizer (none: ONNX Runtime's
own fusions at session start; bert: its offline transformer optimizer), quantized with the shipped preset and
loaded by ``shared.classifier`` exactly as a function loads it. Measured: one median review (p50 of 100 calls) and
32 median reviews in one ``classify`` call, with 1 and 2 intra-op threads, and the largest probability difference
from the first variant (the same weights must give the same answers).

    .venv/bin/python bench/export_variants.py [--checkpoint checkpoints/review-sentiment-minilm]
        [--artifact model_artifacts/review-sentiment-minilm] [--variants eager:none,eager:bert]
        [--out bench/results/export_variants.md]

``--artifact`` is the built artifact of the same checkpoint, whose tokenizer and long-text policy the variants
borrow (the accurate tier: a checkpoint of ``make accurate-model`` or of a leave-domains-out fold, and its artifact).

Run it on a quiet machine (pause training: ``kill -STOP``); it takes about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import texts  # noqa: E402
from bench.stats import percentile  # noqa: E402
from shared.artifact import sha256_of  # noqa: E402
from shared.classifier import Classifier  # noqa: E402
from tools import quantize  # noqa: E402
from tools.build_artifact import export_onnx, optimize  # noqa: E402

VARIANTS = (("sdpa", "bert"), ("sdpa", "none"), ("eager", "bert"), ("eager", "none"))
SHIPPED = ROOT / "model_artifacts" / "review-sentiment-minilm"


def build_variant(checkpoint: Path, shipped: Path, attention: str, optimizer: str, folder: Path) -> Path:
    """An artifact folder the classifier loads: the variant's int8_weights graph with the shipped tokenizer and
    long-text policy (the manifest's hashes rewritten for the new graph)."""
    folder.mkdir(parents=True)
    raw, fp32 = folder / "raw.onnx", folder / "fp32.onnx"
    config, _ = export_onnx(checkpoint, raw, attention=attention)
    optimize(raw, fp32, config, optimizer)
    quantize.apply(fp32, folder / "model.onnx", quantize.WEIGHTS_ONLY)
    raw.unlink()
    fp32.unlink()
    shutil.copy(shipped / "tokenizer.json", folder / "tokenizer.json")
    manifest = json.loads((shipped / "manifest.json").read_text())
    manifest.update(sha256=sha256_of(folder / "model.onnx"), size_bytes=(folder / "model.onnx").stat().st_size)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def measure(folder: Path, one: str, batch: list[str], threads: int) -> dict[str, Any]:
    model = Classifier.load(folder, threads=threads, self_check=False)
    for _ in range(10):
        model.probabilities([one])
    single = []
    for _ in range(100):
        started = time.perf_counter()
        model.probabilities([one])
        single.append(time.perf_counter() - started)
    batches = []
    for _ in range(3):
        started = time.perf_counter()
        probs = model.probabilities(batch)
        batches.append(time.perf_counter() - started)
    return {"one_p50_ms": round(percentile(single, 50) * 1000, 2),
            "batch32_reviews_per_s": round(len(batch) / min(batches), 1), "probabilities": probs}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "checkpoints" / "review-sentiment-minilm")
    parser.add_argument("--artifact", type=Path, default=SHIPPED)
    parser.add_argument("--variants", default=",".join(f"{a}:{o}" for a, o in VARIANTS),
                        help="comma-separated attention:optimizer pairs, the first one the reference")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "export_variants.md")
    args = parser.parse_args(argv)
    variants = [tuple(pair.split(":")) for pair in args.variants.split(",")]
    sets = texts.select()
    one, batch = sets.typical(), (sets.median * 2)[:32]
    rows, first = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for attention, optimizer in variants:
            folder = build_variant(args.checkpoint, args.artifact, attention, optimizer,
                                   Path(tmp) / f"{attention}-{optimizer}")
            size = (folder / "model.onnx").stat().st_size / 1e6
            for threads in (1, 2):
                result = measure(folder, one, batch, threads)
                first = result["probabilities"] if first is None else first
                drift = float(np.abs(result["probabilities"] - first).max())
                rows.append(f"| {attention} | {optimizer} | {threads} | {result['one_p50_ms']} | "
                            f"{result['batch32_reviews_per_s']} | {size:.1f} | {drift:.1e} |")
                print(rows[-1], flush=True)
    header = [f"# Export variants of {args.checkpoint.name} (int8_weights, through shared.classifier)", "",
              f"`{' '.join(['python', *sys.argv])}` · {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}", "",
              "| attention | graph optimizer | threads | 1 median review p50 (ms) | batch 32 (reviews/s) | "
              "model MB | max probability difference from the first row |", "|---|---|---:|---:|---:|---:|---:|"]
    args.out.write_text("\n".join([*header, *rows]) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
