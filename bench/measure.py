"""The measuring machinery: fresh worker processes (in-process figures) and served functions (HTTP figures).

Why apart from ``bench/run.py``: run.py decides what to measure and writes the report; this module only knows how
to start a process or a server for one variant and time it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import artifacts, compute, texts
from bench.serving import Server
from bench.variants import Settings, Variant

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "bench" / "workers.py"
HTTP_SOURCE = ROOT / "main.py"
REFERENCE_SOURCE = ROOT / "bench" / "reference_app.py"
QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "PYTHONWARNINGS": "ignore"}


class Progress:
    """Timestamped progress lines on stderr (a full run takes minutes)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


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
            "cascade": str(variant.cascade) if variant.cascade else None,
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
            # the batch of long reviews measures memory, not the per-request compute budget (MAX_WINDOWS_PER_REQUEST
            # refuses it with a small test model, whose windows are a few tokens long)
            env = {"MODEL_DIR": str(variant.model), "EXECUTION_PROVIDER": variant.provider, "LOG_LEVEL": "INFO",
                   "MAX_WINDOWS_PER_REQUEST": "1000000"}
            if variant.cascade:
                env["CASCADE_MODEL_DIR"] = str(variant.cascade)
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
