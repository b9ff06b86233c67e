"""The quantization-aware training simulation matches what ONNX Runtime's dynamic int8 computes.

Why: training through a simulation that rounds differently from the serving
kernels would teach margins for the wrong noise. The reference here is the real
thing: ``quantize_dynamic`` applied to a one-layer ONNX graph, run by
onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

torch = pytest.importorskip("torch")

from tests.tiny_bert import make_tiny_checkpoint  # noqa: E402
from tools.qat import consistency_loss, fake_quant_activation, float_path, simulate_dynamic_int8  # noqa: E402


def linear_onnx(path: Path, weight: np.ndarray, bias: np.ndarray) -> None:
    """y = x @ W + b, the shape the transformer optimizer leaves for every encoder Linear."""
    k, m = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", m])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_simulated_linear_equals_onnxruntime_dynamic_int8(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    layer = torch.nn.Linear(64, 48)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(rng.normal(0, 0.2, (48, 64)).astype(np.float32)))
    x = rng.normal(0.3, 1.5, (40, 64)).astype(np.float32)
    x[3, 5] = 9.0  # an outlier that widens the activation range, as GELU outputs do

    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    linear_onnx(fp32, layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy())
    quantize_dynamic(str(fp32), str(int8), per_channel=True, weight_type=QuantType.QInt8)
    served = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    exact = x @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()

    model = torch.nn.Sequential(layer)
    assert simulate_dynamic_int8(model) == 1
    with torch.no_grad():
        simulated = model(torch.from_numpy(x)).numpy()

    quant_error = np.abs(served - exact).max()
    assert quant_error > 1e-3  # int8 really perturbs the output...
    assert np.abs(simulated - served).max() < quant_error / 50  # ...and the simulation reproduces it


def test_activation_rounding_equals_dynamic_quantize_linear() -> None:
    x = np.array([[-0.7, 0.0, 0.31, 2.5, 1.234567, -0.05]], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        "dql", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    served = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    simulated = fake_quant_activation(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(simulated, served, atol=1e-6)


def test_patch_keeps_the_checkpoint_format_and_trains(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    make_tiny_checkpoint(tmp_path / "ckpt")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ckpt")
    keys = set(model.state_dict())
    layers = model.config.num_hidden_layers
    # per layer q, k, v, attention output, intermediate, output; then pooler, head and three embedding tables
    assert simulate_dynamic_int8(model) == 6 * layers + 2 + 3
    assert set(model.state_dict()) == keys
    ids = torch.randint(5, model.config.vocab_size, (4, 12))
    loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 2, 0])).loss
    loss.backward()
    grad = model.base_model.encoder.layer[0].intermediate.dense.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


def test_float_path_turns_the_simulation_off_and_back_on() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 8)
    model = torch.nn.Sequential(layer)
    x = torch.randn(5, 16)
    with torch.no_grad():
        exact = torch.nn.functional.linear(x, layer.weight, layer.bias)
        simulate_dynamic_int8(model)
        simulated = layer(x)
        with float_path(model):
            plain = layer(x)
        again = layer(x)
    assert torch.equal(plain, exact)
    assert not torch.equal(simulated, exact)
    assert torch.equal(again, simulated)


def test_consistency_loss_is_zero_only_when_predictions_agree() -> None:
    a = torch.tensor([[2.0, 0.1, -1.0], [0.0, 0.0, 3.0]])
    assert float(consistency_loss(a, a.clone())) == pytest.approx(0.0, abs=1e-7)
    b = a + torch.tensor([[0.0, 1.5, 0.0], [0.5, 0.0, 0.0]])
    assert float(consistency_loss(a, b)) > 0.01
    assert float(consistency_loss(a, b)) == pytest.approx(float(consistency_loss(b, a)), rel=1e-5)


def test_simulated_model_tracks_the_int8_artifact(tmp_path: Path) -> None:
    """The whole classifier: the simulation lands far closer to the real int8 graph than fp32 does."""
    from transformers import AutoModelForSequenceClassification

    from tools import quantize
    from tools.build_artifact import export_onnx, optimize

    make_tiny_checkpoint(tmp_path / "ckpt")
    config, _ = export_onnx(tmp_path / "ckpt", tmp_path / "raw.onnx")
    optimize(tmp_path / "raw.onnx", tmp_path / "fp32.onnx", config)
    quantize.apply(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", "u8s8")  # the dynamic scheme QAT simulates
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ckpt").eval()
    ids = torch.randint(5, model.config.vocab_size, (16, 24))
    feed = {"input_ids": ids.numpy(), "attention_mask": np.ones_like(ids.numpy()),
            "token_type_ids": np.zeros_like(ids.numpy())}

    def served(path: Path) -> np.ndarray:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, feed)[0])

    int8, fp32 = served(tmp_path / "int8.onnx"), served(tmp_path / "fp32.onnx")
    simulate_dynamic_int8(model)
    with torch.no_grad():
        simulated = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
    assert np.abs(simulated - int8).mean() < np.abs(fp32 - int8).mean() / 3
