"""Where one median review's HTTP time goes: the model, the Flask layer, and gunicorn with its socket.

Why: the full benchmark reports the HTTP function against the model in process, each in fresh processes; this
splits the difference in one process tree, layer by layer, with the same text and a keep-alive client:

1. ``shared.classifier`` in process (tokenizer + ONNX Runtime), and the tokenizer alone;
2. the deployed WSGI app (``functions_framework.create_app`` on ``main.classify_http``) through Flask's test
   client: routing, functions-framework's hooks, body parsing, validation, JSON, logging, no socket;
3. the same function behind ``functions-framework`` (gunicorn, the settings it runs with on Cloud Functions gen2),
   a kept-alive ``http.client`` connection: what Pub/Sub push or an API client sees.

Then the thread choice (``--sweep``): the served function with 1 and 2 ONNX Runtime intra-op threads, under 1, 2
and 4 concurrent keep-alive clients (Cloud Run's concurrency), p50 latency and reviews/s: Terraform gives each
concurrent request ``cpu / concurrency`` threads, and this measures whether that is right on this machine.

    .venv/bin/python bench/http_overhead.py [--threads 2] [--calls 300] [--sweep]

Prints milliseconds per layer and the differences; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import texts  # noqa: E402
from bench.serving import Server  # noqa: E402
from bench.stats import percentile  # noqa: E402
from shared.classifier import Classifier  # noqa: E402

MODEL = ROOT / "model_artifacts" / "review-sentiment-minilm"


def percentiles(call: Callable[[], object], calls: int) -> tuple[float, float]:
    for _ in range(10):
        call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return round(percentile(times, 50), 2), round(percentile(times, 90), 2)


def load(server: Server, text: str, clients: int, seconds: float) -> tuple[float, float]:
    """``clients`` threads, each on its own kept-alive connection, for ``seconds``: p50 ms and reviews/s."""
    import http.client
    import threading

    latencies: list[float] = []
    lock = threading.Lock()
    body = json.dumps({"reviews": [text]})
    stop = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        mine = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
            conn.getresponse().read()
            mine.append((time.perf_counter() - started) * 1000)
        conn.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=client) for _ in range(clients)]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return round(percentile(latencies, 50), 2), round(len(latencies) / (time.monotonic() - began), 1)


def sweep(text: str, env: dict[str, str], seconds: float = 8.0) -> None:
    print(f"{'intra-op threads':>16s} {'clients':>8s} {'p50 ms':>8s} {'reviews/s':>10s}")
    for threads in (1, 2):
        server = Server(ROOT / "main.py", "classify_http", {**env, "ORT_INTRA_OP_THREADS": str(threads)},
                        ROOT / "build" / "http_overhead.log")
        server.start()
        try:
            server.first_answer([text])
            for clients in (1, 2, 4):
                p50, rate = load(server, text, clients, seconds)
                print(f"{threads:16d} {clients:8d} {p50:8.2f} {rate:10.1f}", flush=True)
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--sweep", action="store_true", help="also intra-op threads x concurrent clients")
    args = parser.parse_args(argv)
    text = texts.select().typical()
    env = {"MODEL_DIR": str(MODEL), "ORT_INTRA_OP_THREADS": str(args.threads)}
    os.environ.update(env)

    rows: dict[str, tuple[float, float]] = {}
    model = Classifier.load(MODEL, threads=args.threads)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(MODEL / "tokenizer.json"))  # the classifier keeps recent texts' tokens
    rows["tokenizer only (uncached)"] = percentiles(lambda: tokenizer.encode(text), args.calls)
    rows["classifier in process"] = percentiles(lambda: model.classify([text]), args.calls)

    import functions_framework

    from shared import classifier

    classifier.reset_for_tests()  # the app loads its own, as a function instance does
    client = functions_framework.create_app("classify_http", str(ROOT / "main.py")).test_client()
    body = json.dumps({"reviews": [text]})
    rows["WSGI app, Flask test client"] = percentiles(
        lambda: client.post("/", data=body, content_type="application/json"), args.calls)
    classifier.reset_for_tests()

    server = Server(ROOT / "main.py", "classify_http", env, ROOT / "build" / "http_overhead.log")
    server.log_path.parent.mkdir(parents=True, exist_ok=True)
    server.start()
    try:
        server.first_answer([text])
        rows["functions-framework, keep-alive client"] = percentiles(lambda: server.post([text]), args.calls)
    finally:
        server.stop()

    if args.sweep:
        sweep(text, env)
    base = rows["classifier in process"][0]
    print(f"one median review ({len(text.split())} words), {args.threads} intra-op thread(s), {args.calls} calls")
    print(f"{'layer':42s} {'p50 ms':>8s} {'p90 ms':>8s} {'p50 above in process':>22s}")
    for name, (p50, p90) in rows.items():
        print(f"{name:42s} {p50:8.2f} {p90:8.2f} {p50 - base:22.2f}")


if __name__ == "__main__":
    main()
