"""The fp32 ONNX artifact the benchmark compares against: found, checked, or built from the checkpoint.

Why build here: the fp32 model (the ONNX export after the graph optimizer,
before quantization) is not shipped; ``tools/build_artifact.py`` leaves one in
``build/artifacts/<name>-fp32`` but it may be missing or stale. The benchmark
rebuilds it when its manifest does not name the checkpoint being benchmarked,
with the export and optimizer functions of the build tool, so fp32 is exactly
the graph that was quantized, and with the shipped artifact's labels, long-text
policy and decision biases, so it serves texts exactly as int8 does.

Run as a script (``python bench/artifacts.py --checkpoint C --fp32 F --int8 I``)
so torch is imported in a throwaway process, not in the orchestrator.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def checkpoint_provenance(checkpoint: Path) -> dict[str, Any]:
    meta = checkpoint / "training_meta.json"
    if meta.is_file():
        data: dict[str, Any] = json.loads(meta.read_text())
        return data
    return {"checkpoint": str(checkpoint)}


def same_origin(provenance: Any, checkpoint: Path) -> bool:
    """Whether an artifact's provenance records this checkpoint's training (releases may add fields)."""
    meta = checkpoint_provenance(checkpoint)
    return isinstance(provenance, dict) and all(provenance.get(k) == v for k, v in meta.items())


def manifest_of(folder: Path) -> dict[str, Any] | None:
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def arithmetic(model: Path, precision: str) -> str:
    """What the model computes in, which sets its compute bound: an int8_weights artifact stores int8 but folds it to
    fp32 at session start (``tools/quantize.py``), so its bound is the fp32 one."""
    from shared.artifact import FOLDED_WEIGHT_SCHEMES

    scheme = ((manifest_of(model) or {}).get("quantization") or {}).get("scheme")
    return "fp32" if scheme in FOLDED_WEIGHT_SCHEMES else precision


def rebuild_reason(fp32_dir: Path, checkpoint: Path) -> str | None:
    """Why the fp32 artifact must be (re)built, or None if it is the checkpoint's, complete and checkable."""
    manifest = manifest_of(fp32_dir)
    if manifest is None or not (fp32_dir / "model.onnx").is_file():
        return "missing"
    if not same_origin(manifest.get("provenance"), checkpoint):
        return "built from another checkpoint"
    if not manifest.get("self_check", {}).get("cases"):
        return "no self-check cases"
    return None


def consistency_warning(int8_dir: Path, checkpoint: Path) -> str | None:
    """A warning when the shipped int8 artifact was not built from the benchmarked checkpoint."""
    manifest = manifest_of(int8_dir)
    if manifest is None:
        return f"{int8_dir}: no manifest.json"
    if not same_origin(manifest.get("provenance"), checkpoint):
        return (f"{int8_dir} was not built from {checkpoint} (their training provenance differs): int8 and "
                "fp32/reference are different models, so label agreement across them means little")
    return None


def build_fp32(checkpoint: Path, fp32_dir: Path, int8_dir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from shared.artifact import sha256_of
    from shared.classifier import Classifier
    from tools.build_artifact import SELF_CHECK_TEXTS, export_onnx, optimize, recorded_export, write_tokenizer

    shipped = manifest_of(int8_dir) or {}
    config = json.loads((checkpoint / "config.json").read_text())
    id2label = config.get("id2label") or {}
    labels = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))).lower() for i in range(len(id2label))]
    if fp32_dir.exists():
        shutil.rmtree(fp32_dir)
    fp32_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        attention, optimizer = recorded_export(shipped.get("quantization", {}))  # the graph the int8 one quantized
        print(f"==> export {checkpoint} to ONNX ({attention} attention, graph optimizer {optimizer})", flush=True)
        hf_config, _ = export_onnx(checkpoint, raw, attention=attention)
        optimize(raw, fp32_dir / "model.onnx", hf_config, optimizer)
    write_tokenizer(checkpoint, fp32_dir / "tokenizer.json")
    manifest: dict[str, Any] = {
        "name": f"{shipped.get('name', checkpoint.name)}-fp32",
        "version": shipped.get("version", "0.0.0"),
        "labels": labels,
        "max_length": shipped.get("max_length", 256),
        "inputs": shipped.get("inputs", ["input_ids", "attention_mask", "token_type_ids"]),
        "output": shipped.get("output", "logits"),
        "model_file": "model.onnx",
        "tokenizer_file": "tokenizer.json",
        "long_text": shipped.get("long_text", {"strategy": "windows", "max_length": 256, "stride": 64, "head": 64,
                                               "aggregate": "mean"}),
        "decision": shipped.get("decision", {"class_bias": [0.0] * len(labels)}),
        "quantization": {"method": "none (fp32, built by bench/artifacts.py)"},
        "self_check": {"tolerance": shipped.get("self_check", {}).get("tolerance", 0.05), "cases": []},
        "provenance": checkpoint_provenance(checkpoint),
        "sha256": sha256_of(fp32_dir / "model.onnx"),
        "size_bytes": (fp32_dir / "model.onnx").stat().st_size,
    }
    (fp32_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    texts = [c["text"] for c in shipped.get("self_check", {}).get("cases", [])] or list(SELF_CHECK_TEXTS)
    probabilities = Classifier.load(fp32_dir, self_check=False).probabilities(texts)
    manifest["self_check"]["cases"] = [{"text": t, "probabilities": [round(float(p), 6) for p in row]}
                                       for t, row in zip(texts, probabilities, strict=True)]
    (fp32_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    Classifier.load(fp32_dir)  # the runtime's own verification: hash, labels, self-check
    print(f"fp32 artifact ready: {fp32_dir} ({manifest['size_bytes'] / 1e6:.1f} MB)", flush=True)
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--fp32", type=Path, required=True)
    parser.add_argument("--int8", type=Path, required=True)
    args = parser.parse_args(argv)
    build_fp32(args.checkpoint, args.fp32, args.int8)


if __name__ == "__main__":
    main()
