"""Build a serving artifact from any local Hugging Face sequence-classification checkpoint.

Explicit, verifiable steps (after Hugging Face Optimum's export and quantization):

1. export to ONNX (opset 17) with dynamic batch and sequence axes;
2. the graph as exported (``--graph-optimizer none``, the default: ONNX Runtime fuses it at session start)
   or rewritten by ONNX Runtime's transformer optimizer (``bert``: attention, layer-norm, GELU fusions);
3. quantization with a named preset (``tools/quantize.py``; the default,
   ``int8_weights``, stores int8 weights and computes in fp32, so every
   instruction set gives the same answer);
4. parity: int8 against fp32 on held-out text through the real serving runtime;
   the build fails if they agree on fewer than 99% of labels;
5. ``tokenizer.json`` without any truncation or padding baked in (the runtime
   sets both), and ``manifest.json`` with the sha256 of model and tokenizer,
   label order, long-text policy, decision biases, self-check texts (clear and
   borderline) with their expected probabilities measured on every kernel
   family this machine can run (natively and under ``qemu-x86_64``), tolerances
   derived from the spread between families, and provenance.

The fp32 artifact of step 2 is kept beside the output (``<out>-fp32`` under
``build/``) for the benchmark and for parity.

Usage::

    python tools/build_artifact.py --checkpoint build/train/main/final \
        --out model_artifacts/review-sentiment-minilm --parity-texts build/data/amazon/test.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.artifact import LongTextPolicy, policy_problem, sha256_of
from shared.classifier import Classifier
from shared.cpu import kernel_family
from tools import emulate, quantize

INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]  # the ones an encoder's forward() accepts are kept
PARITY_MIN_AGREEMENT = 0.99
PARITY_FAILED = 3  # the exit status of a build refused by the parity gate (tools/release_model.sh tells it apart)
CARD = "MODEL_CARD.md"
SELF_CHECK_TEXTS = [
    "Absolutely love it, works perfectly.",
    "Broke after two days and support never answered.",
    "It's okay. Does the job, nothing special, a bit pricey for what it is.",
    "The first two units arrived dead and I was ready to give up, but the replacement has run flawlessly "
    "for three months and support was brilliant. Very happy now.",
]


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


ATTENTION = ("eager", "sdpa")  # how attention is written into the graph (Hugging Face attn_implementation)
GRAPH_OPTIMIZERS = ("none", "bert")


def export_onnx(checkpoint: Path, path: Path, opset: int = 17,
                attention: str = ATTENTION[0]) -> tuple[dict[str, Any], list[str]]:
    """Export with dynamic axes; returns the model config (for the optimizer and manifest) and the input names.

    BERT-style encoders (MiniLM) take token_type_ids; MPNet and RoBERTa-style ones do not, and the graph gets only
    the inputs the model's forward() accepts. Eager attention by default: with int8 weights and fp32 arithmetic
    (``int8_weights``) it measured 15% less time per review and 19% more reviews/s than the SDPA export on the
    fast model (``docs/PERFORMANCE.md``). SDPA was chosen while the shipped scheme quantized activations, because int8
    QAttention then broke the parity gate; no shipped scheme quantizes activations any more."""
    import inspect

    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, attn_implementation=attention).eval()
    accepted = inspect.signature(model.forward).parameters
    names = [name for name in INPUT_NAMES if name in accepted]
    ids = torch.randint(5, int(model.config.vocab_size), (2, 16))
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids))[:len(names)]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["logits"] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(model, args, str(path), input_names=names, output_names=["logits"],
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    config: dict[str, Any] = model.config.to_dict()
    return config, names


def optimize(src: Path, dst: Path, config: dict[str, Any], optimizer: str = GRAPH_OPTIMIZERS[0]) -> str:
    """The fp32 graph the artifact quantizes; returns how it was optimized, for the manifest.

    ``none`` keeps the export and leaves fusion to ONNX Runtime at session start: measured, it is as fast with two
    threads as the ``bert`` rewrite and faster with one, and the rewrite's fused Attention packs Q, K and V into one
    weight that the int8_weights preset leaves in fp32 (67 MB, and 0.047 in probability from the unfused graph)."""
    if optimizer == "none":
        shutil.copyfile(src, dst)
        return "none (ONNX Runtime's own fusions at session start)"
    if optimizer != "bert":
        raise ValueError(f"unknown graph optimizer {optimizer!r}; one of {GRAPH_OPTIMIZERS}")
    from onnxruntime.transformers import optimizer as transformer_optimizer

    model = transformer_optimizer.optimize_model(str(src), model_type="bert",
                                                 num_heads=int(config["num_attention_heads"]),
                                                 hidden_size=int(config["hidden_size"]), opt_level=1)
    model.save_model_to_file(str(dst))
    return "onnxruntime.transformers bert, opt_level 1"


def recorded_export(quantization: dict[str, Any]) -> tuple[str, str]:
    """The attention and graph optimizer a manifest's ``quantization`` record says the graph was built with, so a
    rebuild of its fp32 graph (the benchmark's) matches it. Manifests before 1.1.1 recorded neither: SDPA + bert."""
    optimizer = "bert" if str(quantization.get("graph_optimizer", "onnxruntime")).startswith("onnxruntime") else "none"
    return str(quantization.get("attention", "sdpa")), optimizer


def write_tokenizer(checkpoint: Path, dst: Path) -> None:
    """Save the fast tokenizer with truncation and padding removed: the runtime decides both."""
    from transformers import AutoTokenizer

    backend = AutoTokenizer.from_pretrained(checkpoint).backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    backend.save(str(dst))


def read_texts(paths: list[Path], limit: int) -> list[str]:
    texts: list[str] = []
    for path in paths:
        with path.open(encoding="utf-8") as fh:
            rows = [json.loads(line)["text"] for line in fh if line.strip()]
        texts += rows[: max(1, limit // max(1, len(paths)))]
    return texts


def write_manifest(folder: Path, base: dict[str, Any]) -> dict[str, Any]:
    manifest = dict(base)
    manifest["sha256"] = sha256_of(folder / manifest["model_file"])
    manifest["tokenizer_sha256"] = sha256_of(folder / manifest["tokenizer_file"])
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def cpu_description() -> str:
    """The CPU the parity was measured on: int8 kernels (AVX2, AVX-512 VNNI, AMX) round differently, and the same
    artifact agreed with fp32 on 99.02% of labels on one 2-core machine and 98.24% on another."""
    import platform

    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    model, flags = info.get("model name") or platform.machine(), set(info.get("flags", "").split())
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{model} ({', '.join(isa) or 'no x86 SIMD flags read'})"


def rounded(row: Any) -> list[float]:
    return [round(float(p), 6) for p in row]


def borderline_texts(texts: list[str], probs: Any, count: int = 2) -> list[str]:
    """Short held-out texts whose top two classes lie 0.1-0.3 apart (fp32): a changed model moves them first."""
    margins = {t: float(sorted(row)[-1] - sorted(row)[-2]) for t, row in zip(texts, probs, strict=True)}
    picked = sorted((abs(m - 0.2), t) for t, m in margins.items() if 20 <= len(t) <= 240 and 0.1 <= m <= 0.3)
    return [t for _, t in picked[:count]]


def self_check_record(model: Classifier, folder: Path, texts: list[str], families: list[str]) -> dict[str, Any]:
    """Expected probabilities per kernel family, and tolerances derived from the spread between them.

    The tolerance is five times the largest difference measured between families (at least 0.002): a healthy
    model on a measured family passes with room, while a changed weight, tokenizer or export moves borderline
    texts by far more. A family the build could not run gets ten times that room (at least 0.01)."""
    import numpy as np

    native = kernel_family()
    expected = {native: model.probabilities(texts)}
    for family in families:
        if family != native:
            step(f"   self-check texts under kernel family {family} (qemu-x86_64 -cpu {emulate.EMULATED[family]})")
            expected[family] = np.asarray(emulate.probabilities_on(family, folder, texts)["probabilities"])
    spread = max(float(np.abs(p - expected[native]).max()) for p in expected.values())
    return {
        "families": list(expected),
        "built_on": native,
        "spread": round(spread, 8),
        "tolerance": round(max(0.002, 5 * spread), 6),
        "unmeasured_tolerance": round(max(0.01, 10 * spread), 6),
        "cases": [{"text": t, "kind": "clear" if i < len(SELF_CHECK_TEXTS) else "borderline",
                   "probabilities": rounded(expected[native][i]),
                   "expected": {f: rounded(p[i]) for f, p in expected.items()}}
                  for i, t in enumerate(texts)],
    }


def parity(fp32: Classifier, int8: Classifier, texts: list[str]) -> tuple[dict[str, Any], Any]:
    """Label agreement and probability differences; also returns the fp32 probabilities (rows follow texts)."""
    import numpy as np
    from tqdm import tqdm

    p32, p8 = [], []
    for start in tqdm(range(0, len(texts), 32), desc="parity", mininterval=5):
        chunk = texts[start:start + 32]
        p32.append(fp32.probabilities(chunk))
        p8.append(int8.probabilities(chunk))
    a, b = np.concatenate(p32), np.concatenate(p8)
    return {
        "texts": len(texts),
        "argmax_agreement": round(float((a.argmax(1) == b.argmax(1)).mean()), 4),
        "max_probability_difference": round(float(np.abs(a - b).max()), 4),
        "mean_probability_difference": round(float(np.abs(a - b).mean()), 5),
        "cpu": cpu_description(),
        "kernel_family": kernel_family(),
    }, a


def build(args: argparse.Namespace) -> dict[str, Any]:
    checkpoint: Path = args.checkpoint
    out: Path = args.out
    fp32_dir: Path = args.fp32_out or Path("build/artifacts") / f"{out.name}-fp32"
    config_path = checkpoint / "config.json"
    if not config_path.is_file():
        sys.exit(f"{checkpoint}: not a Hugging Face checkpoint folder (no config.json)")
    hf_config = json.loads(config_path.read_text())
    id2label = hf_config.get("id2label") or {}
    labels = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))).lower() for i in range(len(id2label))]
    if len(labels) < 2:
        sys.exit(f"{config_path}: needs id2label with at least two labels")
    policy = LongTextPolicy(args.strategy, args.max_length, args.stride, args.head, args.aggregate)
    if policy_problem(policy):
        sys.exit(f"bad long-text options: {policy_problem(policy)}")
    meta_path = checkpoint / "training_meta.json"
    provenance = json.loads(meta_path.read_text()) if meta_path.is_file() else {"checkpoint": str(checkpoint)}
    card = (out / CARD).read_text(encoding="utf-8") if (out / CARD).is_file() else None  # written by people
    final_out, final_fp32 = out, fp32_dir
    # build beside the targets and swap only after every check passed: a failed build leaves the served artifact
    out, fp32_dir = (staging(folder) for folder in (final_out, final_fp32))
    if card is not None:
        (out / CARD).write_text(card, encoding="utf-8")
    try:
        manifest = build_into(args, checkpoint, out, fp32_dir, labels, policy, provenance)
    except BaseException:
        for folder in (out, fp32_dir):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    for folder, target in ((out, final_out), (fp32_dir, final_fp32)):
        swap_in(folder, target)
    print(f"artifact ready: {final_out} ({manifest['size_bytes'] / 1e6:.1f} MB int8), fp32 kept in {final_fp32}")
    return manifest


def staging(target: Path) -> Path:
    """An empty folder beside ``target`` (same file system, so the swap is a rename)."""
    folder = target.with_name(f".{target.name}.building")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def swap_in(built: Path, target: Path) -> None:
    """Replace ``target`` with ``built``: two renames, the old folder removed only once the new one is in place."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    built.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def build_into(args: argparse.Namespace, checkpoint: Path, out: Path, fp32_dir: Path, labels: list[str],
               policy: LongTextPolicy, provenance: dict[str, Any]) -> dict[str, Any]:
    """Steps 1-5 into fresh folders; raises (or exits) on the first failed check."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        step(f"1/5 export {checkpoint} to ONNX ({args.attention} attention)")
        config, input_names = export_onnx(checkpoint, raw, attention=args.attention)
        step(f"2/5 graph optimizer: {args.graph_optimizer}")
        graph_optimizer = optimize(raw, fp32_dir / "model.onnx", config, args.graph_optimizer)
    step(f"3/5 quantization: {args.scheme}")
    quantization = quantize.apply(fp32_dir / "model.onnx", out / "model.onnx", args.scheme)
    for folder in (out, fp32_dir):
        write_tokenizer(checkpoint, folder / "tokenizer.json")

    base: dict[str, Any] = {
        "name": args.name,
        "version": args.version,
        "labels": labels,
        "max_length": args.max_length,
        "inputs": input_names,
        "output": "logits",
        "model_file": "model.onnx",
        "tokenizer_file": "tokenizer.json",
        "long_text": {"strategy": policy.strategy, "max_length": policy.max_length, "stride": policy.stride,
                      "head": policy.head, "aggregate": policy.aggregate},
        "decision": {"class_bias": [float(x) for x in args.class_bias.split(",")] if args.class_bias
                     else [0.0] * len(labels)},
        "quantization": {**quantization, "graph_optimizer": graph_optimizer, "attention": args.attention,
                         "opset": 17},
        "self_check": {"tolerance": 0.05, "cases": []},
        "provenance": provenance,
    }
    if args.extra_manifest:
        base.update(json.loads(Path(args.extra_manifest).read_text()))
    write_manifest(fp32_dir, {**base, "quantization": {"method": "none (fp32 reference)"}})
    write_manifest(out, base)

    step("4/5 parity of int8 against fp32 on held-out text")
    fp32 = Classifier.load(fp32_dir, self_check=False)
    int8 = Classifier.load(out, self_check=False)
    texts = read_texts(args.parity_texts, args.parity_limit) if args.parity_texts else list(SELF_CHECK_TEXTS)
    report, fp32_probs = parity(fp32, int8, texts)
    print(json.dumps(report), flush=True)
    if float(report["argmax_agreement"]) < args.min_agreement:
        print(f"parity failed: int8 agrees with fp32 on {report['argmax_agreement']:.2%} of labels "
              f"(< {args.min_agreement:.0%}); this build must not ship", file=sys.stderr)
        sys.exit(PARITY_FAILED)

    step("5/5 self-check cases on every kernel family, and the manifest")
    texts = [*SELF_CHECK_TEXTS, *borderline_texts(texts, fp32_probs)]
    base["self_check"] = self_check_record(int8, out, texts, args.families)
    base["parity"] = report
    base["size_bytes"] = (out / "model.onnx").stat().st_size
    manifest = write_manifest(out, base)
    fp32_cases = [{"text": t, "probabilities": rounded(row)}
                  for t, row in zip(texts, fp32.probabilities(texts), strict=True)]
    write_manifest(fp32_dir, {**base, "self_check": {"tolerance": base["self_check"]["tolerance"],
                                                     "cases": fp32_cases},
                              "quantization": {"method": "none (fp32 reference)"},
                              "size_bytes": (fp32_dir / "model.onnx").stat().st_size})
    Classifier.load(out)  # the runtime's own verification: hash, labels, self-check
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="local HF sequence-classification folder")
    parser.add_argument("--out", type=Path, required=True, help="artifact folder to (re)create")
    parser.add_argument("--fp32-out", type=Path, default=None, help="where the fp32 artifact goes")
    parser.add_argument("--name", default="review-sentiment-minilm")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--strategy", default="windows", choices=["head", "head_tail", "windows"])
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--stride", type=int, default=64)
    parser.add_argument("--head", type=int, default=64)
    parser.add_argument("--aggregate", default="mean", choices=["mean", "token_weighted"])
    parser.add_argument("--class-bias", default="", help="comma-separated log-probability offsets per label")
    parser.add_argument("--parity-texts", type=Path, nargs="*", default=[])
    parser.add_argument("--parity-limit", type=int, default=2000)
    parser.add_argument("--min-agreement", type=float, default=None,
                        help=f"the parity gate (default {PARITY_MIN_AGREEMENT}); 0 records parity without gating, "
                             "for builds that never ship (leave-domains-out judges their fp32 export)")
    parser.add_argument("--scheme", default=quantize.WEIGHTS_ONLY, choices=sorted(quantize.SCHEMES),
                        help="quantization preset (tools/quantize.py)")
    parser.add_argument("--attention", default=ATTENTION[0], choices=ATTENTION,
                        help="attention as exported (eager: measured fastest with fp32 arithmetic)")
    parser.add_argument("--graph-optimizer", default=GRAPH_OPTIMIZERS[0], choices=GRAPH_OPTIMIZERS,
                        help="none: ONNX Runtime fuses at session start (measured fastest); bert: its offline "
                             "transformer optimizer")
    parser.add_argument("--families", nargs="*", default=None,
                        help="kernel families to record self-check answers for (default: native + every one "
                             "qemu-x86_64 can emulate here)")
    parser.add_argument("--extra-manifest", default=None, help="JSON file merged into the manifest (evaluation)")
    args = parser.parse_args(argv)
    if args.families is None:
        args.families = emulate.families()
    if args.min_agreement is None:
        args.min_agreement = PARITY_MIN_AGREEMENT
    build(args)


if __name__ == "__main__":
    main()
