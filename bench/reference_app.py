"""The reference served the way people deploy it: a ``transformers`` pipeline behind functions-framework.

Serve with ``functions-framework --source bench/reference_app.py --target classify_http``
and ``BENCH_CHECKPOINT`` set to a Hugging Face checkpoint folder. It answers the
same request shape as ours (``{"reviews": [...]}`` -> ``{"results": [...]}``) and,
like ours, loads the model on the first request and logs that request's
latency, so the two HTTP cold starts compare like for like. Not deployed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

import flask
import functions_framework

_lock = threading.Lock()
_pipe: Any = None


def _pipeline() -> Any:
    global _pipe
    if _pipe is None:
        with _lock:
            if _pipe is None:
                import torch
                from transformers import pipeline

                threads = os.environ.get("BENCH_THREADS", "").strip()
                if threads:
                    torch.set_num_threads(int(threads))
                device = 0 if os.environ.get("BENCH_DEVICE", "cpu") == "cuda" else -1
                checkpoint = os.environ["BENCH_CHECKPOINT"]
                _pipe = pipeline("text-classification", model=checkpoint, tokenizer=checkpoint, device=device,
                                 dtype=torch.float32)
    return _pipe


@functions_framework.http
def classify_http(request: flask.Request) -> flask.Response | tuple[flask.Response, int]:
    started = time.perf_counter()
    cold = _pipe is None
    payload = request.get_json(silent=True)
    texts = payload.get("reviews") if isinstance(payload, dict) else None
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        return flask.jsonify({"error": {"code": "bad_request", "message": "send {\"reviews\": [strings]}"}}), 400
    pipe = _pipeline()
    max_length = int(os.environ.get("BENCH_MAX_LENGTH", "512"))
    out = pipe(texts, batch_size=len(texts), truncation=True, max_length=max_length)
    results = [{"label": str(row["label"]).lower(), "score": round(float(row["score"]), 6)} for row in out]
    entry = {"severity": "INFO", "message": "classified", "cold_start": cold, "batch_size": len(texts),
             "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    sys.stdout.write(json.dumps(entry) + "\n")
    sys.stdout.flush()
    return flask.jsonify({"results": results, "model": {"name": "reference-transformers-pipeline",
                                                        "version": os.path.basename(os.environ["BENCH_CHECKPOINT"])}})
