"""Benchmark reviewsense against the usual deployment, side by side, in one run, on one machine.

    python bench/run.py            # full run (minutes): bench/results/latest.{json,md,png}
    python bench/run.py --quick    # fewer iterations, same figures (noisy; for debugging)
    python bench/run.py --smoke    # one fresh process per variant, a few texts (seconds; CI)

Variants, each measured in fresh processes of its own:
- reference: the fine-tuned checkpoint in a ``transformers`` ``pipeline("text-classification")``, fp32 PyTorch;
- ours fp32: the ONNX export before quantization through ``shared.classifier``;
- ours int8: the shipped artifact through ``shared.classifier``;
- ours int8 HTTP: the real HTTP function (``main.classify_http``) served by functions-framework;
- reference HTTP: the pipeline behind functions-framework (``bench/reference_app.py``), for HTTP vs HTTP;
- ours accurate and ours cascade (where the accurate artifact exists): the mpnet tier alone, and the fast model
  with the accurate one re-scoring what it is unsure of (``shared/cascade.py``), each priced on the accurate tier;
- GPU variants (CUDA execution provider, torch on cuda) only where CUDA is available.

See bench/README.md for what each figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import artifacts, compute, prices, report, sizes, texts  # noqa: E402
from bench.measure import QUIET_ENV, Bench, Progress  # noqa: E402
from bench.serving import import_check  # noqa: E402
from bench.stats import summary  # noqa: E402
from bench.variants import MODES, Settings, Variant, variants_for  # noqa: E402
from shared.cpu import kernel_family  # noqa: E402

DEFAULT_CHECKPOINT = ROOT / "checkpoints" / "review-sentiment-minilm"
DEFAULT_INT8 = ROOT / "model_artifacts" / "review-sentiment-minilm"
DEFAULT_FP32 = ROOT / "build" / "artifacts" / "review-sentiment-minilm-fp32"
DEFAULT_ACCURATE = ROOT / "model_artifacts" / "review-sentiment-mpnet"

def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    return {"cpu": model, "kernel_family": kernel_family(), "cpus": len(os.sched_getaffinity(0)),
            "memory_gb": round(mem * 1024 / 1e9, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def gpu_status() -> tuple[bool, str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return True, f"CUDA available (onnxruntime providers: {available}); GPU columns included"
    return False, (f"no GPU: onnxruntime offers {available} (CUDA needs onnxruntime-gpu, see "
                   "bench/requirements-gpu.txt, and a CUDA device); GPU columns skipped")


def summarize_variant(variant: Variant, full: dict[str, Any], colds: list[dict[str, float]],
                      one_thread: dict[str, Any] | None, threads_all: int) -> dict[str, Any]:
    samples = [*colds, full["cold"]]
    parts = sorted(samples[0])
    out: dict[str, Any] = {
        "title": variant.title, "transport": "HTTP (functions-framework)" if variant.transport == "http"
        else "in-process", "runtime": variant.runtime, "precision": variant.precision,
        "arithmetic": artifacts.arithmetic(variant.model, variant.precision) if variant.runtime == "onnx"
        else variant.precision,
        "provider": variant.provider, "tier": variant.tier,
        "cascade": str(variant.cascade) if variant.cascade else None,
        "model": str(variant.model.relative_to(ROOT) if variant.model.is_relative_to(ROOT) else variant.model),
        "baseline": variant.baseline,
        "cold_start_s": {part: summary([s[part] for s in samples]) for part in parts},
        "memory_mb": full.get("memory_mb", {}),
        "facts": full.get("facts", {}),
    }
    if "latency_ms" in full:
        out["latency_ms"] = {name: summary(values, 2) for name, values in full["latency_ms"].items()}
        out["long_batch_seconds"] = full["long_batch_seconds"]
    throughput: dict[str, Any] = {}
    if "throughput" in full:
        throughput[f"threads={threads_all}"] = {k: v["reviews_per_second"] for k, v in full["throughput"].items()}
    if one_thread is not None and "throughput" in one_thread:
        throughput["threads=1"] = {k: v["reviews_per_second"] for k, v in one_thread["throughput"].items()}
    out["throughput_rps"] = throughput
    return out


def token_stats(int8_dir: Path, sets: texts.TextSets) -> dict[str, Any]:
    """Token counts (with [CLS]/[SEP]) of the benchmark texts, and padding efficiency of the measured batches."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(int8_dir / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()

    def lengths(items: list[str]) -> list[int]:
        return [len(e.ids) + 2 for e in tok.encode_batch(items, add_special_tokens=False)]

    med = lengths(sets.median)
    out: dict[str, Any] = {name: summary([float(x) for x in lengths(getattr(sets, name))], 1)
                           for name in ("short", "median", "long")}
    efficiency = []
    for size in (8, 32):
        batches = Bench._batches([str(x) for x in range(len(med))], size, max(1, len(med) // size * 4))
        real = padded = 0
        for batch in batches:
            widths = [med[int(i)] for i in batch]
            real += sum(widths)
            padded += len(widths) * max(widths)
        efficiency.append((size, round(real / padded, 3)))
    out["padding_efficiency"] = {f"batch {size}": value for size, value in efficiency}
    out["agreement_lengths"] = lengths(sets.agreement)
    return out


def agreement(results: dict[str, dict[str, Any]], lengths: list[int], budget: int) -> dict[str, Any]:
    """Label agreement between variants on the same texts; also on texts every variant reads whole."""
    labels = {k: v["labels"] for k, v in results.items() if "labels" in v}
    whole = [i for i, n in enumerate(lengths) if n <= budget]
    pairs = [("ours_int8", "ours_fp32"), ("ours_int8", "reference"), ("ours_fp32", "reference"),
             ("ours_int8_http", "ours_int8"), ("reference_http", "reference"), ("ours_fp32_cuda", "ours_fp32"),
             ("reference_cuda", "reference")]
    out: dict[str, Any] = {"texts": len(lengths), "texts_read_whole_by_all": len(whole),
                           "whole_text_budget_tokens": budget, "pairs": {}}
    for a, b in pairs:
        if a in labels and b in labels:
            same = [x == y for x, y in zip(labels[a], labels[b], strict=True)]
            out["pairs"][f"{a} vs {b}"] = {
                "all": round(sum(same) / len(same), 4),
                "read_whole": round(sum(same[i] for i in whole) / len(whole), 4) if whole else None,
                "disagreements": len(same) - sum(same),
            }
    return out


def model_sizes(args: argparse.Namespace) -> dict[str, float]:
    weights = sum(p.stat().st_size for p in args.checkpoint.iterdir()
                  if p.suffix in (".safetensors", ".bin") and p.is_file())
    return {"reference": round(weights / 1e6, 1),
            "ours_fp32": round((args.fp32 / "model.onnx").stat().st_size / 1e6, 1),
            "ours_int8": round((args.int8 / "model.onnx").stat().st_size / 1e6, 1),
            **({"ours_accurate": round((args.accurate / "model.onnx").stat().st_size / 1e6, 1)}
               if (args.accurate / "model.onnx").is_file() else {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
                        help="Hugging Face checkpoint folder the reference serves and fp32 is built from")
    parser.add_argument("--int8", type=Path, default=DEFAULT_INT8, help="the shipped int8 artifact folder")
    parser.add_argument("--fp32", type=Path, default=DEFAULT_FP32, help="fp32 artifact folder (built if missing)")
    parser.add_argument("--accurate", type=Path, default=DEFAULT_ACCURATE,
                        help="the accurate tier's artifact: measured alone and as the cascade's second tier "
                             "(skipped when the folder has no manifest)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where latest.{json,md,png} go (default bench/results; smoke: bench/results/tmp)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="few iterations (minutes less; noisy)")
    group.add_argument("--smoke", action="store_true", help="one process per variant, a few texts (CI)")
    parser.add_argument("--cold-runs", type=int, default=None, help="fresh processes per variant for cold start")
    parser.add_argument("--latency-iterations", type=int, default=None, help="calls for the one-review latency")
    parser.add_argument("--variants", default="", help="comma-separated subset of variant keys")
    parser.add_argument("--tier", default="http", choices=sorted(prices.TIERS), help="Cloud Run tier for cost")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (matplotlib not needed)")
    parser.add_argument("--report-only", action="store_true",
                        help="measure nothing: derive gains, bounds, targets, latest.md and the plot again from "
                             "the measurements in --out-dir's latest.json (after a change to the report)")
    args = parser.parse_args(argv)
    if args.report_only:
        return write_report((args.out_dir or ROOT / "bench" / "results").resolve(), args.no_plot)

    base = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    settings = Settings(**{**base.__dict__,
                           **({"cold_runs": args.cold_runs} if args.cold_runs else {}),
                           **({"latency_iterations": args.latency_iterations} if args.latency_iterations else {})})
    args.out_dir = (args.out_dir or (ROOT / "bench" / "results" / ("tmp" if args.smoke else ""))).resolve()
    args.checkpoint, args.int8, args.fp32, args.accurate = (
        p.resolve() for p in (args.checkpoint, args.int8, args.fp32, args.accurate))
    say = Progress()
    if not (args.checkpoint / "config.json").is_file():
        print(f"no Hugging Face checkpoint at {args.checkpoint}: pass --checkpoint FOLDER (config.json, "
              "model.safetensors, tokenizer files)", file=sys.stderr)
        return 2
    if not (args.int8 / "manifest.json").is_file():
        print(f"no int8 artifact at {args.int8}: pass --int8 FOLDER", file=sys.stderr)
        return 2
    say(f"reviewsense benchmark, {settings.mode} mode; results to {args.out_dir}")
    notes: list[str] = []

    reason = artifacts.rebuild_reason(args.fp32, args.checkpoint)
    if reason:
        say(f"fp32 artifact {args.fp32}: {reason}; building it from {args.checkpoint}")
        subprocess.run([sys.executable, str(ROOT / "bench" / "artifacts.py"), "--checkpoint", str(args.checkpoint),
                        "--fp32", str(args.fp32), "--int8", str(args.int8)], cwd=ROOT, check=True,
                       env={**os.environ, **QUIET_ENV})
    warning = artifacts.consistency_warning(args.int8, args.checkpoint)
    if warning:
        notes.append(warning)
        say(f"WARNING: {warning}")

    # tools/build_artifact.py writes the same folders: a build during the run would swap models under it
    fingerprints = {path: (artifacts.manifest_of(path) or {}).get("sha256") for path in (args.int8, args.fp32)}
    sets = texts.select(settings.per_class, settings.agreement_extra)
    notes += sets.notes
    tokens = token_stats(args.int8, sets)
    with_gpu, gpu_note = gpu_status()
    say(gpu_note)
    notes.append(gpu_note)
    info = machine()
    bench = Bench(args, settings, say)
    variants = variants_for(args, with_gpu)
    say(f"{len(variants)} variants, {bench.threads_all} CPU threads; texts: {len(sets.short)} short, "
        f"{len(sets.median)} median, {len(sets.long)} long, {len(sets.agreement)} for agreement")

    say("installed size of the serving dependencies (RECORD files)")
    dep_sizes = sizes.report(ROOT / "requirements.txt")
    say("importing the HTTP path in a fresh process")
    imports = import_check({"MODEL_DIR": str(args.int8)})
    if imports["forbidden_loaded"]:
        say(f"WARNING: importing main.py loaded {imports['forbidden_loaded']}")

    failures: dict[str, str] = {}
    colds: dict[str, list[dict[str, float]]] = {v.key: [] for v in variants}
    for round_ in range(settings.cold_runs - 1):
        for variant in variants:
            if variant.key in failures:
                continue
            try:
                sample = bench.cold_only(variant, sets)
            except Exception as exc:  # a broken variant is reported, the others still run
                failures[variant.key] = str(exc)
                say(f"FAILED {variant.key}: {exc}")
                continue
            colds[variant.key].append(sample)
            say(f"cold start {round_ + 1}/{settings.cold_runs}: {variant.key:<15} {sample['total']:.2f} s")

    results: dict[str, dict[str, Any]] = {}
    raw: dict[str, dict[str, Any]] = {}
    for variant in variants:
        if variant.key in failures:
            continue
        say(f"{variant.title}: fresh process, {'full measurement' if settings.mode != 'smoke' else 'smoke run'}")
        try:
            full = (bench.run_http(variant, sets, "full") if variant.transport == "http"
                    else bench.run_worker(variant, sets, "full", bench.threads_all if variant.provider == "cpu"
                                          else 1))
            one = None
            if settings.thread_sweep and variant.transport == "process" and variant.provider == "cpu" \
                    and bench.threads_all > 1:
                say(f"{variant.title}: fresh process, 1 thread")
                one = bench.run_worker(variant, sets, "throughput", 1)
        except Exception as exc:
            failures[variant.key] = str(exc)
            say(f"FAILED {variant.key}: {exc}")
            continue
        say(f"cold start {settings.cold_runs}/{settings.cold_runs}: {variant.key:<15} {full['cold']['total']:.2f} s")
        raw[variant.key] = full
        results[variant.key] = summarize_variant(variant, full, colds[variant.key], one, bench.threads_all)
        if variant.transport == "http" and variant.runtime == "onnx":
            results[variant.key]["imports"] = imports

    say("matrix-multiply rates of this CPU (ONNX Runtime, fp32 and int8)")
    config = compute.read_config(args.checkpoint)
    median_tokens = int(tokens["median"]["median"]) if tokens["median"].get("n") else 128
    rates = compute.matmul_rates(config, median_tokens if settings.mode != "smoke" else 16,
                                 sorted({1, bench.threads_all}), settings.matmul_repeats,
                                 batch=32 if settings.mode != "smoke" else 2)
    flops = compute.flops_per_review(config, median_tokens)
    manifest = artifacts.manifest_of(args.int8) or {}
    budget = int(manifest.get("long_text", {}).get("max_length", 256))
    lengths = tokens.pop("agreement_lengths")
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    for path, sha in fingerprints.items():
        if (artifacts.manifest_of(path) or {}).get("sha256") != sha:
            failures[f"artifact {path.name}"] = (f"{path} changed during the run (another build wrote it): the "
                                                 "figures mix two models; run again")
            say(f"FAILED: {failures[f'artifact {path.name}']}")

    data: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "mode": settings.mode,
            "settings": settings.__dict__, "machine": info, "checkpoint": str(args.checkpoint),
            "int8_artifact": {"path": str(args.int8), "version": manifest.get("version"),
                              "sha256": manifest.get("sha256")},
            "fp32_artifact": str(args.fp32), "texts": sets.summary(), "tokens": tokens, "notes": notes,
            "gpu": gpu_note,
        },
        "variants": results,
        "failures": failures,
        "agreement": agreement(raw, lengths, min(budget, bench.max_length)),
        "sizes": {"model_file_mb": model_sizes(args), "dependencies_mib": dep_sizes},
        # the measured inputs; write_report derives the bounds and fractions from them
        "compute_bound": {"flops_per_review": flops, "matmul": rates,
                          "padding_efficiency": tokens.get("padding_efficiency", {})},
        "cost": report.cost(results, sets, args.tier, bench.threads_all),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "latest.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return write_report(args.out_dir, args.no_plot)


def write_report(out_dir: Path, no_plot: bool) -> int:
    """Everything derived from the measurements in ``out_dir/latest.json``: gains, fractions of the compute bound,
    targets, ``latest.md`` and the plot. Derived, never measured, so a report change needs no new run."""
    say = Progress()
    data = json.loads((out_dir / "latest.json").read_text(encoding="utf-8"))
    bound = data["compute_bound"]
    data["compute_bound"] = report.compute_bound(data["variants"], bound["flops_per_review"], bound["matmul"],
                                                 bound.get("padding_efficiency", {}))
    data["gains"] = report.gains(data)
    data["targets"] = report.targets(data)
    (out_dir / "latest.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    markdown = report.markdown(data)
    (out_dir / "latest.md").write_text(markdown, encoding="utf-8")
    if not no_plot:
        try:
            report.plot(data, out_dir / "latest.png")
        except ImportError:
            say("matplotlib is not installed (pip install -r bench/requirements.txt): no plot")
    print(markdown)
    say(f"wrote {out_dir / 'latest.json'}, latest.md" + ("" if no_plot else ", latest.png"))
    failures = data.get("failures", {})
    if failures:
        say(f"{len(failures)} variant(s) failed: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
