"""Quantization schemes for the serving artifact: one validated preset per name, applied in explicit steps.

Why presets (after Hugging Face Optimum's per-instruction-set quantization configs): the scheme decides whether a
review gets the same answer on every CPU, so it is chosen by measurement (``tools/portability.py``) and recorded
by name in the manifest, never assembled from loose flags.

What we measured (model card, "Portability"): dynamic int8 (``quantize_dynamic``) picks each activation scale
from the whole input tensor and rounds activations to 8 bits at every MatMul; the fp32 work between them (layer
norms, softmax, GELU, attention products) rounds differently with and without FMA and with the vector width,
and each tiny difference moves some activations across a rounding boundary. So every dynamic variant (u8s8,
7-bit weights, u8u8, float FFN outputs) answered differently per instruction set (0.005-0.066 in probability on
our sample), and u8s8 on AVX2 without VNNI also saturates 16-bit pair sums. The shipped scheme, ``int8_weights``,
stores every encoder weight as int8 (per output channel; embedding tables per row) with a DequantizeLinear in
front, and ONNX Runtime folds those into fp32 constants at session start (the classifier sets
``session.disable_quant_qdq`` for the schemes in ``FOLDED_WEIGHT_SCHEMES``): the file is int8-sized, the arithmetic
is fp32, and instruction sets differ only in the last float bits (4.2e-7 in probability).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.artifact import FOLDED_WEIGHT_SCHEMES

WEIGHTS_ONLY = FOLDED_WEIGHT_SCHEMES[0]


@dataclass(frozen=True)
class Scheme:
    """One quantization preset: what ``apply`` does and what the manifest records."""

    name: str
    description: str
    dynamic: bool  # quantize_dynamic (int8 arithmetic) or int8 storage with fp32 arithmetic
    weight_type: str = "QInt8"
    reduce_range: bool = False
    float_nodes: tuple[str, ...] = ()  # substrings of MatMul names kept in float (mixed precision)

    def manifest(self) -> dict[str, Any]:
        record: dict[str, Any] = {"scheme": self.name, "description": self.description}
        if self.dynamic:
            record.update({"method": "onnxruntime.quantization.quantize_dynamic", "weight_type": self.weight_type,
                           "per_channel": True, "reduce_range": self.reduce_range,
                           "float_nodes": list(self.float_nodes)})
        else:
            record.update({"method": "int8 weight storage (per output channel; embedding tables per row), "
                                     "DequantizeLinear folded to fp32 at session start; fp32 arithmetic"})
        return record


SCHEMES = {s.name: s for s in (
    Scheme("u8s8", "dynamic int8: u8 activations x s8 per-channel weights (1.0.0)", dynamic=True),
    Scheme("u8s8_reduce_range", "dynamic int8 with 7-bit weights: no 16-bit saturation on AVX2", dynamic=True,
           reduce_range=True),
    Scheme("u8u8", "dynamic int8: u8 activations x u8 per-channel weights", dynamic=True, weight_type="QUInt8"),
    Scheme("u8s8_ffn_out_float", "dynamic int8 with the FFN output projections kept in float", dynamic=True,
           float_nodes=("/output/dense/MatMul",)),
    Scheme(WEIGHTS_ONLY, "int8 weights, fp32 arithmetic: the same answer on every instruction set",
           dynamic=False),
)}


def _matmul_nodes(model: Any, needles: tuple[str, ...]) -> list[str]:
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and any(k in n.name for k in needles) and "attention/output" not in n.name]


def _dynamic(src: Path, dst: Path, scheme: Scheme) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = _matmul_nodes(onnx.load(str(src)), scheme.float_nodes) if scheme.float_nodes else []
    # Fused contrib ops (BiasGelu, SkipLayerNorm) defeat ONNX shape inference; their outputs are float.
    quantize_dynamic(str(src), str(dst), per_channel=True, reduce_range=scheme.reduce_range,
                     weight_type=getattr(QuantType, scheme.weight_type), nodes_to_exclude=excluded,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _int8_weights(src: Path, dst: Path) -> None:
    """Every constant MatMul weight and Gather table becomes int8 + fp32 scales behind a DequantizeLinear."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    initializers = {i.name: i for i in model.graph.initializer}
    # MatMul B is [K, N]: one scale per output column (axis 1). A Gather table is [rows, H]: one scale per row.
    targets = {node.input[1]: 1 for node in model.graph.node
               if node.op_type == "MatMul" and node.input[1] in initializers}
    targets.update({node.input[0]: 0 for node in model.graph.node
                    if node.op_type == "Gather" and node.input[0] in initializers
                    and len(initializers[node.input[0]].dims) == 2})
    dequantize = []
    for name, axis in targets.items():
        weight = numpy_helper.to_array(initializers[name]).astype(np.float32)
        scale = np.abs(weight).max(axis=1 - axis) / 127.0
        scale[scale == 0] = 1.0
        shape = (1, -1) if axis == 1 else (-1, 1)
        quantized = np.clip(np.round(weight / scale.reshape(shape)), -127, 127).astype(np.int8)
        model.graph.initializer.remove(initializers[name])
        model.graph.initializer.extend([numpy_helper.from_array(quantized, f"{name}_int8"),
                                        numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale")])
        dequantize.append(helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale"], [name],
                                           axis=axis, name=f"{name}_dequantize"))
    nodes = [*dequantize, *model.graph.node]  # constants first keeps the graph topologically sorted
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def apply(src: Path, dst: Path, scheme_name: str) -> dict[str, Any]:
    """Quantize the fp32 ONNX model ``src`` into ``dst`` with a named preset; returns its manifest record."""
    scheme = SCHEMES.get(scheme_name)
    if scheme is None:
        raise ValueError(f"unknown quantization scheme {scheme_name!r}; one of {sorted(SCHEMES)}")
    if scheme.dynamic:
        _dynamic(src, dst, scheme)
    else:
        _int8_weights(src, dst)
    return scheme.manifest()
