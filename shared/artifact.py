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
    text: str
    probabilities: list[float]


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
    long_text: LongTextPolicy
    class_bias: list[float]
    self_check_tolerance: float
    self_check: list[SelfCheckCase]
    raw: dict[str, Any] = field(repr=False)


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
    check = _need(raw, "self_check", dict, path)
    cases = [SelfCheckCase(str(c["text"]), [float(p) for p in c["probabilities"]])
             for c in _need(check, "cases", list, path)]
    if any(len(c.probabilities) != len(labels) for c in cases):
        raise ArtifactError(f"{path}: every self_check case needs one probability per label")
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
        long_text=_policy(_need(raw, "long_text", dict, path), path),
        class_bias=[float(b) for b in bias],
        self_check_tolerance=float(check.get("tolerance", 0.05)),
        self_check=cases,
        raw=raw,
    )
    for needed in (manifest.model_file, manifest.tokenizer_file):
        if not needed.is_file():
            raise ArtifactError(f"{needed}: named by {path} but missing")
    if verify_hash:
        actual = sha256_of(manifest.model_file)
        if actual != manifest.sha256:
            raise ArtifactError(
                f"{manifest.model_file}: sha256 {actual[:12]}… does not match {path} ({manifest.sha256[:12]}…); "
                "the file was changed or truncated: rebuild or re-copy the artifact")
    return manifest
