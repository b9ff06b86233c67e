"""Throughput of the backfill on this machine, and what labelling 1 M and 10 M reviews costs on Dataflow.

    .venv-beam/bin/python -m backfill.bench [--reviews 2000]   (make bench-backfill)

Measures, on the same texts and machine: the single-process classifier (one review per call,
one ORT thread, as a function instance labels) and the pipeline on the DirectRunner with one
worker process per core (file in, JSONL out, start-up included). The Dataflow cost model assumes
a worker does what this machine's 2 cores did (an n2-standard-2 runs 2 SDK processes), and sets
it beside the Cloud Natural Language API's sentiment price for the same reviews. Writes
bench/results/backfill.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import prices
from shared.classifier import Classifier
from shared.config import DEFAULT_MODEL_DIR, PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"


def texts(count: int) -> list[str]:
    corpus = [json.loads(line)["text"] for split in ("train", "dev", "eval") for line in
              (PROJECT_ROOT / "data" / "reviews" / "splits" / f"{split}.jsonl").read_text().splitlines() if line]
    return [f"{corpus[i % len(corpus)]} ({i})" for i in range(count)]


def single_process(sample: list[str]) -> float:
    classifier = Classifier.load(DEFAULT_MODEL_DIR, threads=1)
    classifier.classify(sample[:5])
    started = time.perf_counter()
    for text in sample:
        classifier.classify([text])
    return len(sample) / (time.perf_counter() - started)


def direct_runner(sample: list[str], workers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.jsonl"
        source.write_text("".join(json.dumps({"review_id": f"b{i}", "text": t}) + "\n" for i, t in enumerate(sample)))
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "backfill.pipeline", "--source", str(source), "--sink",
                                 str(Path(folder) / "out.jsonl"), "--rejected", str(Path(folder) / "bad.jsonl"),
                                 "--runner", "DirectRunner", "--direct_running_mode", "multi_processing",
                                 f"--direct_num_workers={workers}"], cwd=PROJECT_ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(result.stderr[-3000:])
        labelled = sum(1 for _ in (Path(folder) / "out.jsonl").open())
    return {"reviews": labelled, "seconds": round(wall, 1), "reviews_per_second": round(labelled / wall, 1)}


def cost_model(reviews_per_second_per_worker: float, units_per_review: float) -> list[dict[str, Any]]:
    rate = prices.dataflow_worker_usd_per_hour()
    rows = []
    for reviews, workers in ((1_000_000, 10), (10_000_000, 50)):
        worker_hours = reviews / reviews_per_second_per_worker / 3600
        rows.append({"reviews": reviews, "workers": workers, "machine_type": prices.DATAFLOW["worker"]["machine_type"],
                     "worker_hours": round(worker_hours, 1), "wall_hours": round(worker_hours / workers, 2),
                     "dataflow_usd": round(worker_hours * rate, 2),
                     "natural_language_usd": prices.natural_language_usd(reviews, units_per_review)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=2000)
    args = parser.parse_args(argv)
    sample = texts(args.reviews)
    workers = os.cpu_count() or 1
    single = single_process(sample[:500])
    pipeline = direct_runner(sample, workers)
    units = sum(max(1, math.ceil(len(t) / 1000)) for t in sample) / len(sample)
    result = {"machine": {"cpus": workers}, "reviews": len(sample),
              "single_process_reviews_per_second": round(single, 1), "direct_runner": pipeline,
              "dataflow_worker_usd_per_hour": round(prices.dataflow_worker_usd_per_hour(), 4),
              "natural_language_units_per_review": round(units, 3),
              "cost": cost_model(pipeline["reviews_per_second"], units),
              "prices": {"dataflow": prices.DATAFLOW, "natural_language": prices.NATURAL_LANGUAGE}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "backfill.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "backfill.md").write_text(render(result))
    print(render(result))
    return 0


def render(result: dict[str, Any]) -> str:
    runner = result["direct_runner"]
    lines = [
        "# Backfill throughput and cost",
        "",
        f"Measured by `make bench-backfill` on {result['machine']['cpus']} cores, {result['reviews']} reviews of our "
        "corpus (the fast model, int8).",
        "",
        "| path | reviews/s |",
        "|---|---|",
        f"| single process, one review per call, 1 ORT thread (a function instance) | "
        f"{result['single_process_reviews_per_second']} |",
        f"| Beam DirectRunner, {result['machine']['cpus']} worker processes, start-up included "
        f"({runner['reviews']} reviews in {runner['seconds']} s) | {runner['reviews_per_second']} |",
        "",
        f"Cost model: one Dataflow worker ({prices.DATAFLOW['worker']['machine_type']}, "
        f"${result['dataflow_worker_usd_per_hour']}/h with its disk) labels what these cores did; Cloud Natural "
        f"Language sentiment at {result['natural_language_units_per_review']} units a review, volume tiers, "
        "first 5,000 units free.",
        "",
        "| reviews | workers | worker-hours | wall time (h) | Dataflow (USD) | Natural Language API (USD) |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["cost"]:
        lines.append(f"| {row['reviews']:,} | {row['workers']} × {row['machine_type']} | {row['worker_hours']} | "
                     f"{row['wall_hours']} | {row['dataflow_usd']:,} | {row['natural_language_usd']:,} |")
    lines += ["", f"Prices: {prices.DATAFLOW['source']} ({prices.DATAFLOW['read_on']}); "
              f"{prices.NATURAL_LANGUAGE['source']} (read {prices.PRICES_READ_ON}). Start-up, shuffle and the "
              "Firestore writes are not in the model; a job of this size spends most of its time labelling.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
