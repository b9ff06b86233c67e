"""The compute bound: FLOPs per review for this architecture and this CPU's measured matmul rates.

Why: throughput alone does not say whether there is speed left on the table.
FLOPs per review (from the model's config and the token count) divided by the
rate at which this CPU multiplies matrices gives the fastest this model could
classify here; the measured throughput as a fraction of that shows how much is
lost to everything else (tokenizing, padding, non-matmul ops, Python).

The rates are measured with ONNX Runtime itself, on the model's own shapes:
the feed-forward pair (hidden -> intermediate -> hidden) at 32 reviews x the
median token count, fp32 as exported and int8 as ``quantize_dynamic`` makes it
(per-channel weights, activations quantized on the fly, which is part of the
int8 cost). Each rate is the best of several runs: a limit, not a typical value.
In the int8 model the two attention products (QK^T, AV) stay in fp32, so its
bound charges them at the fp32 rate.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any


def flops_per_review(config: dict[str, Any], tokens: int) -> dict[str, float]:
    """Multiply-add FLOPs (2 per MAC) of one forward pass of a BERT-style encoder over ``tokens`` tokens."""
    hidden = int(config["hidden_size"])
    inter = int(config["intermediate_size"])
    layers = int(config["num_hidden_layers"])
    labels = len(config.get("id2label") or {0: 0, 1: 1, 2: 2})
    projections = 2 * tokens * hidden * hidden * 4          # Q, K, V, output
    feed_forward = 2 * tokens * hidden * inter * 2          # up and down
    attention = 2 * tokens * tokens * hidden * 2            # QK^T and AV, all heads together
    head = 2 * hidden * hidden + 2 * hidden * labels        # pooler + classifier, once per review
    linear = layers * (projections + feed_forward) + head
    return {"tokens": tokens, "linear": float(linear), "attention": float(layers * attention),
            "total": float(linear + layers * attention)}


def _ffn_model(path: Path, rows: int, hidden: int, inter: int) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array((rng.standard_normal((hidden, inter)) * 0.05).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((inter, hidden)) * 0.05).astype(np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["y"])],
        "ffn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, hidden])], initializer=[w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _rate(path: Path, rows: int, hidden: int, threads: int, repeats: int) -> float:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((rows, hidden)).astype(np.float32)
    session.run(None, {"x": x})
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, {"x": x})
        best = min(best, time.perf_counter() - started)
    return best


def matmul_rates(config: dict[str, Any], tokens: int, threads: list[int], repeats: int = 10,
                 batch: int = 32) -> dict[str, Any]:
    """GFLOP/s of fp32 and int8 matmuls at the model's shapes, per thread count."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice to pre-process does not apply here
    hidden, inter = int(config["hidden_size"]), int(config["intermediate_size"])
    rows = batch * tokens
    flops = 2 * rows * hidden * inter * 2
    out: dict[str, Any] = {"shape": f"[{rows} x {hidden}] @ [{hidden} x {inter}] @ [{inter} x {hidden}]",
                           "method": f"ONNX Runtime, best of {repeats} runs", "gflops": {}}
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        _ffn_model(fp32, rows, hidden, inter)
        quantize_dynamic(str(fp32), str(int8), per_channel=True, weight_type=QuantType.QInt8)
        for n in threads:
            out["gflops"][str(n)] = {
                "fp32": round(flops / _rate(fp32, rows, hidden, n, repeats) / 1e9, 1),
                "int8": round(flops / _rate(int8, rows, hidden, n, repeats) / 1e9, 1),
            }
    return out


def bound(flops: dict[str, float], rates: dict[str, float], precision: str) -> float:
    """Reviews per second if every FLOP ran at the measured matmul rate (attention in fp32 for int8)."""
    fp32 = rates["fp32"] * 1e9
    if precision == "int8":
        seconds = flops["linear"] / (rates["int8"] * 1e9) + flops["attention"] / fp32
    else:
        seconds = flops["total"] / fp32
    return 1.0 / seconds


def read_config(checkpoint: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((checkpoint / "config.json").read_text())
    return config
