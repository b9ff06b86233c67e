"""Run our Python under another CPU model with qemu-user, to measure kernel families this machine lacks.

Why: ONNX Runtime dispatches to different kernels per instruction set, and CI and each developer land on whatever
CPU they get. ``qemu-x86_64 -cpu Haswell`` (AVX2, no AVX-512) and ``-cpu Nehalem`` (SSE4.2) run the same venv
and the same onnxruntime under an emulated CPUID, so one machine measures three families. Emulation is slow
(roughly 100-500x for model arithmetic): keep the texts few and short.

    python tools/emulate.py MODEL_DIR TEXTS.jsonl OUT.json   # probabilities of each text, alone, on this CPU
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# kernel family (shared/cpu.py) -> the qemu CPU model that has exactly its instruction set
EMULATED = {"avx2": "Haswell", "sse4": "Nehalem"}


def qemu() -> str | None:
    """The qemu-user binary, or None where it is not installed (``apt-get install qemu-user``)."""
    return shutil.which("qemu-x86_64")


def python_under(family: str) -> list[str]:
    """The command prefix that runs this interpreter under ``family``; the native one runs it directly."""
    from shared.cpu import kernel_family

    if family == kernel_family():
        return [sys.executable]
    binary = qemu()
    if binary is None or family not in EMULATED:
        raise RuntimeError(f"cannot run kernel family {family!r} here: qemu-x86_64 is "
                           f"{'missing (apt-get install qemu-user)' if binary is None else 'present'}; "
                           f"emulated families: {sorted(EMULATED)}")
    return [binary, "-cpu", EMULATED[family], sys.executable]


def families() -> list[str]:
    """The native family first, then every emulated one qemu can run here."""
    from shared.cpu import kernel_family

    native = kernel_family()
    return [native, *([f for f in EMULATED if f != native] if qemu() else [])]


def probabilities_on(family: str, model_dir: Path, texts: list[str], timeout: float = 4 * 3600) -> dict[str, Any]:
    """Each text classified alone by the serving runtime under ``family``: {family, probabilities}."""
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "texts.jsonl", Path(tmp) / "out.json"
        source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "ORT_INTRA_OP_THREADS": "1"}
        proc = subprocess.run([*python_under(family), str(Path(__file__).resolve()), str(model_dir), str(source),
                               str(out)], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"{family}: classification failed ({proc.returncode}): {proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
    if result["family"] != family:
        raise RuntimeError(f"asked for kernel family {family} but the process saw {result['family']}")
    return result


def classify_alone(model_dir: Path, texts: list[str], threads: int | None = 1) -> Any:
    """Probabilities of each text classified alone by the serving runtime (no self-check), rows follow texts."""
    import numpy as np

    from shared.classifier import Classifier

    classifier = Classifier.load(model_dir, threads=threads, self_check=False)
    rows = [classifier.probabilities([t]) for t in texts]
    return np.concatenate(rows) if rows else np.zeros((0, len(classifier.labels)), dtype=np.float32)


def main(argv: list[str]) -> None:
    from shared.cpu import kernel_family

    model_dir, source, out = (Path(a) for a in argv)
    texts = [json.loads(line)["text"] for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    probs = classify_alone(model_dir, texts)
    out.write_text(json.dumps({"family": kernel_family(), "probabilities": probs.tolist()}))


if __name__ == "__main__":
    main(sys.argv[1:])
