"""Reading and verifying a model artifact folder before anything is served from it.

Why: a wrong or half-copied model answers confidently and wrongly. So the
runtime checks, before the first answer, that the manifest is well-formed,
that ``model.onnx`` is byte-for-byte the file the build measured (sha256), and
that the labels match the model's output width; every failure names the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import ArtifactError

STRATEGIES = ("head", "head_tail", "windows")
# Schemes whose int8 weights sit behind DequantizeLinear nodes that ONNX Runtime must fold into fp32 constants at
# session start (tools/quantize.py): fp32 arithmetic, so every instruction set gives the same answer.
FOLDED_WEIGHT_SCHEMES = ("int8_weights",)
AGGREGATES = ("mean", "token_weighted")


@dataclass(frozen=True)
class LongTextPolicy:
    """How a text longer than one model input is read; chosen by measurement at build time."""

    strategy: str
    max_length: int
    stride: int = 0
    head: int = 0
    aggregate: str = "mean"


@dataclass(frozen=True)
class SelfCheckCase:
    """A fixed text and the probabilities the build measured for it, per kernel family it measured."""

    text: str
    probabilities: list[float]
    expected: dict[str, list[float]] = field(default_factory=dict)

    def expected_on(self, family: str) -> list[float]:
        return self.expected.get(family, self.probabilities)


@dataclass(frozen=True)
class SelfCheck:
    """Tolerances derived at build time from the spread measured between kernel families."""

    cases: list[SelfCheckCase]
    tolerance: float  # on a family the build measured
    unmeasured_tolerance: float  # on a family it did not (an unseen CPU): wider, still far below a broken model
    families: list[str]


@dataclass(frozen=True)
class Manifest:
    path: Path
    name: str
    version: str
    labels: list[str]
    inputs: list[str]
    output: str
    model_file: Path
    tokenizer_file: Path
    sha256: str
    tokenizer_sha256: str
    long_text: LongTextPolicy
    class_bias: list[float]
    self_check: SelfCheck
    raw: dict[str, Any] = field(repr=False)
    quantization: str = ""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _need(raw: dict[str, Any], key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    if key not in raw:
        raise ArtifactError(f"{where}: missing field {key!r}")
    value = raw[key]
    if not isinstance(value, kind):
        raise ArtifactError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def policy_problem(policy: LongTextPolicy) -> str | None:
    """What is wrong with a long-text policy, or None; shared by the build and the runtime."""
    if policy.strategy not in STRATEGIES:
        return f"long_text.strategy {policy.strategy!r} is not one of {STRATEGIES}"
    if policy.max_length < 8:
        return f"long_text.max_length {policy.max_length} is too small"
    if policy.aggregate not in AGGREGATES:
        return f"long_text.aggregate {policy.aggregate!r} is not one of {AGGREGATES}"
    if not 0 <= policy.stride < policy.max_length - 2:
        return "long_text.stride must lie in [0, max_length - 2)"
    if not 0 <= policy.head <= policy.max_length - 2:
        return "long_text.head must lie in [0, max_length - 2]"
    return None


def _policy(raw: dict[str, Any], where: Path) -> LongTextPolicy:
    strategy = _need(raw, "strategy", str, where)
    policy = LongTextPolicy(
        strategy=strategy,
        max_length=int(_need(raw, "max_length", int, where)),
        stride=int(raw.get("stride", 0)),
        head=int(raw.get("head", 0)),
        aggregate=str(raw.get("aggregate", "mean")),
    )
    problem = policy_problem(policy)
    if problem:
        raise ArtifactError(f"{where}: {problem}")
    return policy


def _self_check(raw: dict[str, Any], width: int, where: Path) -> SelfCheck:
    cases = []
    for c in _need(raw, "cases", list, where):
        expected = {str(k): [float(p) for p in v] for k, v in dict(c.get("expected", {})).items()}
        case = SelfCheckCase(str(c["text"]), [float(p) for p in c["probabilities"]], expected)
        if any(len(p) != width for p in (case.probabilities, *expected.values())):
            raise ArtifactError(f"{where}: every self_check case needs one probability per label")
        cases.append(case)
    tolerance = float(raw.get("tolerance", 0.05))
    return SelfCheck(cases=cases, tolerance=tolerance,
                     unmeasured_tolerance=float(raw.get("unmeasured_tolerance", tolerance)),
                     families=[str(f) for f in raw.get("families", [])])


def load_manifest(model_dir: Path, verify_hash: bool = True) -> Manifest:
    """Parse and verify ``manifest.json`` in ``model_dir``; raise ArtifactError naming the culprit."""
    path = model_dir / "manifest.json"
    if not path.is_file():
        raise ArtifactError(f"{path}: manifest not found (is MODEL_DIR right?)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ArtifactError(f"{path}: must hold a JSON object")
    labels = _need(raw, "labels", list, path)
    if len(labels) < 2 or not all(isinstance(x, str) and x for x in labels) or len(set(labels)) != len(labels):
        raise ArtifactError(f"{path}: labels must be at least two distinct non-empty strings")
    bias = raw.get("decision", {}).get("class_bias", [0.0] * len(labels))
    if not isinstance(bias, list) or len(bias) != len(labels):
        raise ArtifactError(f"{path}: decision.class_bias must have one number per label")
    self_check = _self_check(_need(raw, "self_check", dict, path), len(labels), path)
    manifest = Manifest(
        path=path,
        name=_need(raw, "name", str, path),
        version=_need(raw, "version", str, path),
        labels=list(labels),
        inputs=list(_need(raw, "inputs", list, path)),
        output=_need(raw, "output", str, path),
        model_file=model_dir / _need(raw, "model_file", str, path),
        tokenizer_file=model_dir / _need(raw, "tokenizer_file", str, path),
        sha256=_need(raw, "sha256", str, path),
        tokenizer_sha256=str(raw.get("tokenizer_sha256", "")),
        long_text=_policy(_need(raw, "long_text", dict, path), path),
        class_bias=[float(b) for b in bias],
        self_check=self_check,
        raw=raw,
        quantization=str(raw.get("quantization", {}).get("scheme", "")),
    )
    for needed in (manifest.model_file, manifest.tokenizer_file):
        if not needed.is_file():
            raise ArtifactError(f"{needed}: named by {path} but missing")
    if verify_hash:
        for needed, expected in ((manifest.model_file, manifest.sha256),
                                 (manifest.tokenizer_file, manifest.tokenizer_sha256)):
            actual = sha256_of(needed)
            if expected and actual != expected:
                raise ArtifactError(
                    f"{needed}: sha256 {actual[:12]}… does not match {path} ({expected[:12]}…); "
                    "the file was changed or truncated: rebuild or re-copy the artifact")
    return manifest
