"""One measured process: a fresh interpreter that imports one runtime, loads one model and answers.

Run by ``bench/run.py`` as ``python bench/workers.py PLAN.json OUT.json``, never
imported by it: every figure of a variant (imports, load, memory) must come from
a process that has nothing else in it. The first line takes a timestamp on the
system-wide monotonic clock, so the parent, which noted the same clock just
before it started this process, can split the cold start into interpreter
start, imports, model load and first inference.

Runtimes:
- ``onnx``: our shared classifier (``shared.classifier.Classifier``) on an artifact folder;
- ``torch``: the reference, a ``transformers`` ``pipeline("text-classification")`` in fp32 PyTorch.

Modes: ``cold`` (stop after the first answer), ``throughput`` (the batch-size
sweep only, for the one-thread runs), ``full`` (memory after a batch of long
reviews, labels for agreement, latency, throughput).
"""

import time

STARTED = time.monotonic()

import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
Classify = Callable[[Sequence[str]], list[str]]


def memory_mb() -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) * 1024 / 1e6, 1)
    return out


def import_runtime(runtime: str) -> None:
    """Everything the runtime needs before it can load a model: the 'imports' part of a cold start."""
    if runtime == "onnx":
        sys.path.insert(0, str(ROOT))
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401

        import shared.classifier  # noqa: F401
    else:
        import torch  # noqa: F401
        from transformers import pipeline  # noqa: F401


def load(plan: dict[str, Any]) -> tuple[Classify, dict[str, Any]]:
    """Load the model; returns a labels-only classify function and facts about the loaded runtime."""
    threads = int(plan["threads"])
    if plan["runtime"] == "onnx":
        from shared.classifier import Classifier, Labeler

        def open_model(folder: str) -> Classifier:
            return Classifier.load(Path(folder), threads=threads, provider=plan.get("provider", "cpu"),
                                   self_check=bool(plan.get("self_check", True)))

        classifier = open_model(plan["model"])
        labeler: Labeler = classifier
        if plan.get("cascade"):  # as shared.classifier builds it from CASCADE_MODEL_DIR, with the configured policy
            from shared.cascade import Cascade, CascadePolicy
            from shared.config import load_settings

            labeler = Cascade(classifier, lambda: open_model(plan["cascade"]),
                              CascadePolicy.configured(load_settings({})))

        def classify_onnx(texts: Sequence[str]) -> list[str]:
            return [p.label for p in labeler.classify(texts)]

        import onnxruntime

        facts = {"onnxruntime": onnxruntime.__version__, "threads": threads,
                 "providers": classifier._session.get_providers()}
        return classify_onnx, facts

    import torch
    import transformers
    from transformers import pipeline

    torch.set_num_threads(threads)
    device = 0 if plan.get("provider") == "cuda" else -1
    pipe = pipeline("text-classification", model=plan["model"], tokenizer=plan["model"], device=device,
                    dtype=torch.float32)
    max_length = int(plan["max_length"])

    def classify_torch(texts: Sequence[str]) -> list[str]:
        out = pipe(list(texts), batch_size=len(texts), truncation=True, max_length=max_length)
        return [str(row["label"]).lower() for row in out]

    facts = {"torch": torch.__version__, "transformers": transformers.__version__,
             "threads": torch.get_num_threads(), "device": str(pipe.device)}
    return classify_torch, facts


def batches(texts: Sequence[str], size: int, count: int) -> list[list[str]]:
    """``count`` batches of ``size`` texts, cycling through ``texts`` so every text gets its turn."""
    return [[texts[(i * size + j) % len(texts)] for j in range(size)] for i in range(count)]


def latencies_ms(classify: Classify, texts: Sequence[str], size: int, iterations: int) -> list[float]:
    out = []
    for batch in batches(texts, size, iterations):
        started = time.perf_counter()
        classify(batch)
        out.append((time.perf_counter() - started) * 1000)
    return out


def throughput(classify: Classify, texts: Sequence[str], size: int, min_seconds: float, min_batches: int,
               progress: Callable[[str], None]) -> dict[str, float]:
    """Reviews per second at one batch size: batches back to back until both minimums are met."""
    classify(batches(texts, size, 1)[0])  # warm this shape
    done, started = 0, time.perf_counter()
    elapsed = 0.0
    while done < min_batches or elapsed < min_seconds:
        classify(batches(texts, size, done + 1)[done])
        done += 1
        elapsed = time.perf_counter() - started
    progress(f"batch {size}: {done * size / elapsed:.1f} reviews/s")
    return {"reviews_per_second": round(done * size / elapsed, 2), "batches": done, "seconds": round(elapsed, 3)}


def main(plan_path: str, out_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text(encoding="utf-8"))
    label = plan.get("label", plan["runtime"])

    def progress(message: str) -> None:
        print(f"      {label}: {message}", file=sys.stderr, flush=True)

    import_runtime(plan["runtime"])
    imported = time.monotonic()
    classify, facts = load(plan)
    loaded = time.monotonic()
    classify([plan["first_text"]])
    first_answer = time.monotonic()
    result: dict[str, Any] = {
        "timestamps": {"started": STARTED, "imported": imported, "loaded": loaded, "first_answer": first_answer},
        "memory_mb": {"after_first_answer": memory_mb()},
        "facts": facts,
    }
    mode = plan["mode"]
    if mode == "full":
        started = time.perf_counter()
        classify(plan["long"])
        result["long_batch_seconds"] = round(time.perf_counter() - started, 3)
        result["memory_mb"]["after_long_batch"] = memory_mb()
        progress(f"batch of {len(plan['long'])} long reviews in {result['long_batch_seconds']:.2f} s, "
                 f"peak RSS {result['memory_mb']['after_long_batch']['VmHWM']:.0f} MB")
        agreement = plan["agreement"]
        result["labels"] = [label for start in range(0, len(agreement), 32)
                            for label in classify(agreement[start:start + 32])]
        result["latency_ms"] = {
            "single": latencies_ms(classify, plan["median"], 1, plan["latency_iterations"]),
            "batch32": latencies_ms(classify, plan["median"], 32, plan["batch_latency_iterations"]),
        }
        progress(f"latency of one review measured over {plan['latency_iterations']} calls")
    if mode in ("full", "throughput"):
        sweep = plan["throughput"]
        result["throughput"] = {str(size): throughput(classify, plan["median"], size, sweep["min_seconds"],
                                                      sweep["min_batches"], progress)
                                for size in sweep["batch_sizes"]}
    result["memory_mb"]["end"] = memory_mb()
    Path(out_path).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
