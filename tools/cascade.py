"""Choose the cascade's threshold on development splits and report fast / cascade / accurate side by side.

Why a tool: the threshold trades accuracy against cost (each routed review pays the accurate model's time), and it
must be chosen on data the held-out figures never see. Every development text is scored once by each model, alone
and timed (one thread, as one core serves one request); the cascade's answer for any threshold follows from those
two sets of probabilities, routed exactly as ``shared/cascade.py`` routes (the same ``Cascade.unsure``). The choice:
the lowest threshold whose 3-class macro-F1 on our dev reviews comes within one point of the accurate model alone
(fewest reviews routed for almost all of its accuracy); then the same figures on held-out splits, and the peak
memory of a process serving each tier through the product's own configuration (``MODEL_DIR``,
``CASCADE_MODEL_DIR``).

    python tools/cascade.py --fast model_artifacts/review-sentiment-minilm \\
        --accurate model_artifacts/review-sentiment-mpnet --out bench/results/cascade
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.cascade import Cascade, CascadePolicy
from shared.classifier import Classifier
from shared.config import load_settings
from tools.evaluate import LABEL_ID, Probs, dataset, metrics

GRID = [round(x, 2) for x in np.arange(0.50, 1.001, 0.05)]
WITHIN = 0.01  # macro-F1 the cascade may give up against the accurate model alone
DEV = {"customer_reviews": None, "amazon": 160, "imdb": 150, "pang_lee": 75}
HELD_OUT = {"customer_reviews": None, "amazon": 300, "imdb": 300}
# VmHWM, not getrusage's ru_maxrss: Linux carries a forked parent's peak across exec into ru_maxrss, so every probe
# started by this (large) process reported the parent's peak
RSS_PROBE = """
import json, sys
from pathlib import Path
from shared.classifier import get_classifier
labeler = get_classifier()
labeler.classify(json.loads(sys.argv[1]))
getattr(labeler, "accurate", lambda: None)()  # a cascade at its peak holds both models
hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
print(json.dumps({"peak_rss_mib": round(int(hwm.split()[1]) / 1024, 1)}))
"""


def timed(classifier: Classifier, texts: list[str]) -> tuple[Probs, list[float]]:
    """Each text alone (as a request carries it), with its wall time in milliseconds."""
    rows, times = [], []
    for text in texts:
        started = time.perf_counter()
        rows.append(classifier.probabilities([text])[0])
        times.append((time.perf_counter() - started) * 1000)
    return np.asarray(rows, dtype=np.float32), times


def scored(fast: Classifier, accurate: Classifier, sets: dict[str, int | None], data: Path,
           corpus: Path, split: str) -> dict[str, dict[str, Any]]:
    out = {}
    for name, limit in sets.items():
        public_split = "dev" if split == "dev" else "test"
        rows = dataset(name, data, corpus, split if name == "customer_reviews" else public_split, limit)
        if not rows:
            continue
        texts = [r["text"] for r in rows]
        fast_probs, fast_ms = timed(fast, texts)
        accurate_probs, accurate_ms = timed(accurate, texts)
        out[name] = {"gold": [LABEL_ID[r["label"]] for r in rows], "fast": fast_probs, "accurate": accurate_probs,
                     "fast_ms": fast_ms, "accurate_ms": accurate_ms}
        print(f"{split} {name}: {len(rows)} texts scored by both", flush=True)
    return out


def tiers(cascade: Cascade, sets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Metrics per split and tier, and the mean latency per review of each tier over all texts."""
    result: dict[str, Any] = {"splits": {}}
    ms: dict[str, list[float]] = {"fast": [], "cascade": [], "accurate": []}
    routed_total = 0
    for name, s in sets.items():
        routed = cascade.unsure(s["fast"])
        mixed = np.where(routed[:, None], s["accurate"], s["fast"])
        result["splits"][name] = {"fast": metrics(s["gold"], s["fast"]), "cascade": metrics(s["gold"], mixed),
                                  "accurate": metrics(s["gold"], s["accurate"]),
                                  "routed_fraction": round(float(routed.mean()), 4)}
        ms["fast"] += s["fast_ms"]
        ms["accurate"] += s["accurate_ms"]
        ms["cascade"] += [f + (a if r else 0.0) for f, a, r in zip(s["fast_ms"], s["accurate_ms"], routed,
                                                                   strict=True)]
        routed_total += int(routed.sum())
    result["mean_ms_per_review"] = {k: round(float(np.mean(v)), 2) for k, v in ms.items()}
    result["routed_fraction"] = round(routed_total / max(1, len(ms["fast"])), 4)
    return result


def peak_rss(env: dict[str, str], texts: list[str]) -> float:
    """A fresh process serving one tier through the product's configuration: its peak resident memory (MiB)."""
    run = subprocess.run([sys.executable, "-c", RSS_PROBE, json.dumps(texts)], capture_output=True, text=True,
                         check=True, env={**os.environ, "ORT_INTRA_OP_THREADS": "1", **env},
                         cwd=Path(__file__).resolve().parents[1])
    value: float = json.loads(run.stdout.strip().splitlines()[-1])["peak_rss_mib"]
    return value


def peak_rss_per_tier(args: argparse.Namespace, min_confidence: float) -> dict[str, float]:
    sample = [r["text"] for r in dataset("customer_reviews", args.data, args.corpus, "eval", None)[:40]]
    return {
        "fast": peak_rss({"MODEL_DIR": str(args.fast)}, sample),
        "cascade": peak_rss({"MODEL_DIR": str(args.fast), "CASCADE_MODEL_DIR": str(args.accurate),
                             "CASCADE_MIN_CONFIDENCE": str(min_confidence)}, sample),
        "accurate": peak_rss({"MODEL_DIR": str(args.accurate)}, sample),
    }


def markdown(report: dict[str, Any]) -> str:
    held = report["held_out"]
    lines = [
        f"# Cascade: fast {report['fast']} -> accurate {report['accurate']}",
        "",
        f"Threshold chosen on development splits: re-score when the fast model's top probability is below "
        f"**{report['min_confidence']}** or its negative probability lies in [{report['negative_band'][0]}, "
        f"{report['negative_band'][1]}) "
        f"(the follow-up band). Rule: {report['rule']}.",
        "",
        "| tier | held-out reviews routed | mean ms / review (1 thread) | peak RSS MiB | "
        + " | ".join(f"{n} polarity / macro-F1" for n in held["splits"]) + " |",
        "|---|---|---|---|" + "---|" * len(held["splits"]),
    ]
    for tier in ("fast", "cascade", "accurate"):
        routed = {"fast": "0%", "accurate": "100%"}.get(tier, f"{held['routed_fraction']:.0%}")
        cells = [f"{s[tier].get('polarity_accuracy', float('nan')):.3f} / {s[tier]['macro_f1']:.3f}"
                 for s in held["splits"].values()]
        lines.append(f"| {tier} | {routed} | {held['mean_ms_per_review'][tier]} | {report['peak_rss_mib'][tier]} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Dev macro-F1 of our reviews per threshold (routed fraction of all dev texts):", "",
              "| min_confidence | macro-F1 | routed |", "|---|---|---|"]
    lines += [f"| {g['min_confidence']} | {g['macro_f1']:.3f} | {g['routed_fraction']:.0%} |" for g in report["grid"]]
    lines += ["", f"Command: `{report['command']}`. {report['cpus']} CPUs, load average "
              f"{report['load_average_at_start']} at start, {report['load_average_at_end']} at end: latencies measured "
              "beside other work are inflated alike for every tier; compare tiers, not machines.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", type=Path, required=True)
    parser.add_argument("--accurate", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("build/data"))
    parser.add_argument("--corpus", type=Path, default=Path("data/reviews/splits"))
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    parser.add_argument("--rss-only", action="store_true",
                        help="re-measure only the peak memory of an existing OUT.json (minutes less)")
    args = parser.parse_args(argv)
    if args.rss_only:
        report = json.loads(args.out.with_suffix(".json").read_text())
        report["peak_rss_mib"] = peak_rss_per_tier(args, report["min_confidence"])
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(report))
        print(markdown(report))
        return

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    settings = load_settings({})
    band = CascadePolicy.configured(settings).negative_band
    fast = Classifier.load(args.fast, threads=1)
    accurate = Classifier.load(args.accurate, threads=1)
    dev = scored(fast, accurate, DEV, args.data, args.corpus, "dev")
    grid = []
    for threshold in GRID:
        result = tiers(Cascade(fast, lambda: accurate, CascadePolicy(threshold, band)), dev)
        grid.append({"min_confidence": threshold, "macro_f1": result["splits"]["customer_reviews"]["cascade"]
                     ["macro_f1"], "routed_fraction": result["routed_fraction"]})
    ceiling = tiers(Cascade(fast, lambda: accurate, CascadePolicy(1.01, band)), dev)
    target = ceiling["splits"]["customer_reviews"]["accurate"]["macro_f1"] - WITHIN
    good = [g for g in grid if g["macro_f1"] >= target]
    chosen = (min(good, key=lambda g: g["min_confidence"]) if good else max(grid, key=lambda g: g["macro_f1"]))
    policy = CascadePolicy(chosen["min_confidence"], band)
    held = scored(fast, accurate, HELD_OUT, args.data, args.corpus, "eval")
    report = {
        "fast": f"{fast.model_info['name']} {fast.model_info['version']}",
        "accurate": f"{accurate.model_info['name']} {accurate.model_info['version']}",
        "min_confidence": policy.min_confidence, "negative_band": list(band),
        "rule": f"the lowest threshold within {WITHIN:.0%} macro-F1 of the accurate model on our dev reviews",
        "grid": grid,
        "dev": tiers(Cascade(fast, lambda: accurate, policy), dev),
        "held_out": tiers(Cascade(fast, lambda: accurate, policy), held),
        "peak_rss_mib": peak_rss_per_tier(args, policy.min_confidence),
        "command": "python tools/cascade.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
