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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import artifacts, compute, prices, report, sizes, texts  # noqa: E402
from bench.serving import Server, import_check  # noqa: E402
from bench.stats import summary  # noqa: E402
from shared.cpu import kernel_family  # noqa: E402

DEFAULT_CHECKPOINT = ROOT / "checkpoints" / "review-sentiment-minilm"
DEFAULT_INT8 = ROOT / "model_artifacts" / "review-sentiment-minilm"
DEFAULT_FP32 = ROOT / "build" / "artifacts" / "review-sentiment-minilm-fp32"
WORKER = ROOT / "bench" / "workers.py"
HTTP_SOURCE = ROOT / "main.py"
REFERENCE_SOURCE = ROOT / "bench" / "reference_app.py"
QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "PYTHONWARNINGS": "ignore"}


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


class Progress:
    """Timestamped progress lines on stderr (a full run takes minutes)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


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


class Bench:
    def __init__(self, args: argparse.Namespace, settings: Settings, progress: Progress) -> None:
        self.args, self.settings, self.say = args, settings, progress
        self.work = args.out_dir / "tmp" / "work" if args.out_dir.name != "tmp" else args.out_dir / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.threads_all = len(os.sched_getaffinity(0))
        self.max_length = int(compute.read_config(args.checkpoint).get("max_position_embeddings", 512))
        self.fp32_self_check = bool((artifacts.manifest_of(args.fp32) or {}).get("self_check", {}).get("cases"))
        self.runs = 0

    # ------------------------------------------------------------------ plans
    def plan(self, variant: Variant, sets: texts.TextSets, mode: str, threads: int) -> dict[str, Any]:
        s = self.settings
        plan: dict[str, Any] = {
            "label": variant.key, "runtime": variant.runtime, "model": str(variant.model), "threads": threads,
            "provider": variant.provider, "mode": mode, "first_text": sets.median[0], "max_length": self.max_length,
            "self_check": self.fp32_self_check if variant.model == self.args.fp32 else True,
        }
        if mode in ("full", "throughput"):
            plan["median"] = sets.median
            plan["throughput"] = {"batch_sizes": list(s.batch_sizes), "min_seconds": s.min_seconds,
                                  "min_batches": s.min_batches}
        if mode == "full":
            plan.update({"long": sets.long, "agreement": sets.agreement,
                         "latency_iterations": s.latency_iterations,
                         "batch_latency_iterations": s.batch_latency_iterations})
        return plan

    # ------------------------------------------------------------ in-process
    def run_worker(self, variant: Variant, sets: texts.TextSets, mode: str, threads: int) -> dict[str, Any]:
        self.runs += 1
        plan_path = self.work / f"{variant.key}-{mode}-{threads}-{self.runs}.plan.json"
        out_path = plan_path.with_suffix("").with_suffix(".out.json")
        plan_path.write_text(json.dumps(self.plan(variant, sets, mode, threads)), encoding="utf-8")
        out_path.unlink(missing_ok=True)
        env = {**os.environ, **QUIET_ENV}
        spawned = time.monotonic()
        done = subprocess.run([sys.executable, str(WORKER), str(plan_path), str(out_path)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=None, timeout=3600)
        if done.returncode != 0 or not out_path.is_file():
            raise RuntimeError(f"{variant.key} worker exited with {done.returncode} ({plan_path})")
        result: dict[str, Any] = json.loads(out_path.read_text())
        ts = result["timestamps"]
        result["cold"] = {"total": ts["first_answer"] - spawned, "interpreter": ts["started"] - spawned,
                          "imports": ts["imported"] - ts["started"], "load": ts["loaded"] - ts["imported"],
                          "first_inference": ts["first_answer"] - ts["loaded"]}
        return result

    # ------------------------------------------------------------------ HTTP
    def server(self, variant: Variant, threads: int | None = None) -> Server:
        self.runs += 1
        log = self.work / f"{variant.key}-{self.runs}.log"
        if variant.runtime == "onnx":
            # INFO: the function logs each request's latency; the first one's is the model load + first inference
            env = {"MODEL_DIR": str(variant.model), "EXECUTION_PROVIDER": variant.provider, "LOG_LEVEL": "INFO"}
            if threads:
                env["ORT_INTRA_OP_THREADS"] = str(threads)
            return Server(HTTP_SOURCE, "classify_http", env, log)
        env = {**QUIET_ENV, "BENCH_CHECKPOINT": str(variant.model), "BENCH_MAX_LENGTH": str(self.max_length),
               "BENCH_DEVICE": variant.provider}
        if threads:
            env["BENCH_THREADS"] = str(threads)
        return Server(REFERENCE_SOURCE, "classify_http", env, log)

    def http_cold(self, server: Server, sets: texts.TextSets) -> dict[str, float]:
        server.start()
        total = server.first_answer([sets.median[0]])
        first_request = (server.first_request_ms() or float("nan")) / 1000
        return {"total": total, "first_request": first_request, "server_start": total - first_request}

    def run_http(self, variant: Variant, sets: texts.TextSets, mode: str) -> dict[str, Any]:
        server = self.server(variant)
        try:
            result: dict[str, Any] = {"cold": self.http_cold(server, sets)}
            result["memory_mb"] = {"after_first_answer": server.memory()}
            if mode != "full":
                return result
            started = time.perf_counter()
            server.labels(sets.long)
            result["long_batch_seconds"] = round(time.perf_counter() - started, 3)
            result["memory_mb"]["after_long_batch"] = server.memory()
            peak = result["memory_mb"]["after_long_batch"]["serving_process"]["VmHWM"]
            self.say(f"      {variant.key}: batch of {len(sets.long)} long reviews in "
                     f"{result['long_batch_seconds']:.2f} s, serving process peak RSS {peak:.0f} MB")
            result["labels"] = [label for start in range(0, len(sets.agreement), 32)
                                for label in server.labels(sets.agreement[start:start + 32])]
            result["latency_ms"] = {
                "single": self._http_latencies(server, sets.median, 1, self.settings.latency_iterations),
                "batch32": self._http_latencies(server, sets.median, 32, self.settings.batch_latency_iterations),
            }
            result["throughput"] = {str(size): self._http_throughput(variant, server, sets.median, size)
                                    for size in self.settings.batch_sizes}
            result["memory_mb"]["end"] = server.memory()
            return result
        finally:
            server.stop()

    @staticmethod
    def _batches(items: list[str], size: int, count: int) -> list[list[str]]:
        return [[items[(i * size + j) % len(items)] for j in range(size)] for i in range(count)]

    def _http_latencies(self, server: Server, items: list[str], size: int, iterations: int) -> list[float]:
        out = []
        for batch in self._batches(items, size, iterations):
            started = time.perf_counter()
            server.labels(batch)
            out.append((time.perf_counter() - started) * 1000)
        return out

    def _http_throughput(self, variant: Variant, server: Server, items: list[str], size: int) -> dict[str, float]:
        s = self.settings
        server.labels(self._batches(items, size, 1)[0])
        done, started, elapsed = 0, time.perf_counter(), 0.0
        while done < s.min_batches or elapsed < s.min_seconds:
            server.labels(self._batches(items, size, done + 1)[done])
            done += 1
            elapsed = time.perf_counter() - started
        self.say(f"      {variant.key}: batch {size}: {done * size / elapsed:.1f} reviews/s")
        return {"reviews_per_second": round(done * size / elapsed, 2), "batches": done, "seconds": round(elapsed, 3)}

    # ------------------------------------------------------------------ runs
    def cold_only(self, variant: Variant, sets: texts.TextSets) -> dict[str, float]:
        if variant.transport == "http":
            server = self.server(variant)
            try:
                return self.http_cold(server, sets)
            finally:
                server.stop()
        return dict(self.run_worker(variant, sets, "cold", self.threads_all)["cold"])


def summarize_variant(variant: Variant, full: dict[str, Any], colds: list[dict[str, float]],
                      one_thread: dict[str, Any] | None, threads_all: int) -> dict[str, Any]:
    samples = [*colds, full["cold"]]
    parts = sorted(samples[0])
    out: dict[str, Any] = {
        "title": variant.title, "transport": "HTTP (functions-framework)" if variant.transport == "http"
        else "in-process", "runtime": variant.runtime, "precision": variant.precision,
        "provider": variant.provider, "model": str(variant.model.relative_to(ROOT) if variant.model.is_relative_to(
            ROOT) else variant.model), "baseline": variant.baseline,
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
            "ours_int8": round((args.int8 / "model.onnx").stat().st_size / 1e6, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
                        help="Hugging Face checkpoint folder the reference serves and fp32 is built from")
    parser.add_argument("--int8", type=Path, default=DEFAULT_INT8, help="the shipped int8 artifact folder")
    parser.add_argument("--fp32", type=Path, default=DEFAULT_FP32, help="fp32 artifact folder (built if missing)")
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
    args = parser.parse_args(argv)

    base = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    settings = Settings(**{**base.__dict__,
                           **({"cold_runs": args.cold_runs} if args.cold_runs else {}),
                           **({"latency_iterations": args.latency_iterations} if args.latency_iterations else {})})
    args.out_dir = (args.out_dir or (ROOT / "bench" / "results" / ("tmp" if args.smoke else ""))).resolve()
    args.checkpoint, args.int8, args.fp32 = (p.resolve() for p in (args.checkpoint, args.int8, args.fp32))
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
        "compute_bound": report.compute_bound(results, flops, rates, tokens, bench.threads_all),
        "cost": report.cost(results, sets, args.tier, bench.threads_all),
    }
    data["gains"] = report.gains(data)
    data["targets"] = report.targets(data)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "latest.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    markdown = report.markdown(data)
    (args.out_dir / "latest.md").write_text(markdown, encoding="utf-8")
    if not args.no_plot:
        try:
            report.plot(data, args.out_dir / "latest.png")
        except ImportError:
            say("matplotlib is not installed (pip install -r bench/requirements.txt): no plot")
    print(markdown)
    say(f"wrote {args.out_dir / 'latest.json'}, latest.md" + ("" if args.no_plot else ", latest.png"))
    if failures:
        say(f"{len(failures)} variant(s) failed: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
