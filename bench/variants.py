"""What a benchmark run measures: the variants (each a model in a runtime behind a transport) and the counts per mode.

Why its own module: adding a tier (the accurate model, the cascade) is a change of this list, not of the machinery
that measures (``bench/measure.py``) or reports (``bench/report.py``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """How much of everything a run measures; the modes differ only in these counts."""

    mode: str
    per_class: int
    agreement_extra: bool
    cold_runs: int
    latency_iterations: int
    batch_latency_iterations: int
    min_seconds: float
    min_batches: int
    batch_sizes: tuple[int, ...]
    thread_sweep: bool
    matmul_repeats: int


MODES = {
    "full": Settings("full", 32, True, 5, 300, 20, 3.0, 5, (1, 8, 32), True, 10),
    "quick": Settings("quick", 32, False, 2, 30, 3, 0.5, 2, (1, 8, 32), True, 3),
    "smoke": Settings("smoke", 3, False, 1, 3, 1, 0.0, 1, (1, 8), False, 1),
}


@dataclass(frozen=True)
class Variant:
    key: str
    title: str
    transport: str  # "process" or "http"
    runtime: str  # "onnx" or "torch"
    model: Path
    precision: str  # "fp32" or "int8"
    baseline: str  # the key of the reference it is compared with
    provider: str = "cpu"
    cascade: Path | None = None  # the accurate artifact that re-scores what ``model`` is unsure of
    tier: str | None = None  # the Cloud Run tier its cost is priced on (None: the run's --tier)


def variants_for(args: argparse.Namespace, with_gpu: bool) -> list[Variant]:
    out = [
        Variant("reference", "Reference: transformers pipeline, fp32", "process", "torch", args.checkpoint, "fp32",
                "reference"),
        Variant("ours_fp32", "Ours fp32 (ONNX, shared classifier)", "process", "onnx", args.fp32, "fp32",
                "reference"),
        Variant("ours_int8", "Ours int8 (shipped artifact)", "process", "onnx", args.int8, "int8", "reference"),
        Variant("reference_http", "Reference via HTTP (functions-framework)", "http", "torch", args.checkpoint,
                "fp32", "reference_http"),
        Variant("ours_int8_http", "Ours int8 via the HTTP function", "http", "onnx", args.int8, "int8",
                "reference_http"),
    ]
    accurate = getattr(args, "accurate", None)
    if accurate is not None and (accurate / "manifest.json").is_file():
        out += [
            Variant("ours_accurate", "Ours accurate int8 (mpnet artifact)", "process", "onnx", accurate, "int8",
                    "reference", tier="accurate"),
            Variant("ours_cascade", "Ours cascade (fast, accurate when unsure)", "process", "onnx", args.int8,
                    "int8", "reference", cascade=accurate, tier="accurate"),
        ]
    if with_gpu:
        out += [
            Variant("reference_cuda", "Reference on GPU (torch cuda)", "process", "torch", args.checkpoint, "fp32",
                    "reference_cuda", "cuda"),
            Variant("ours_fp32_cuda", "Ours fp32 on GPU (CUDA EP)", "process", "onnx", args.fp32, "fp32",
                    "reference_cuda", "cuda"),
        ]
    if args.variants:
        wanted = set(args.variants.split(","))
        out = [v for v in out if v.key in wanted]
    return out
