"""The review classifier: an int8 ONNX model run by onnxruntime, tokenized by ``tokenizers``, no torch.

Why this shape:
- One ONNX Runtime session per process, created on first use and kept in a
  module global (``get_classifier``), so a function instance pays the load once
  and every handler shares it. A lock makes concurrent first calls load once.
- Truncation and padding are set here, never inherited from ``tokenizer.json``
  (checkpoints often carry a fixed 128-token setting that silently cuts long
  reviews and pads short ones). Texts are read whole: the manifest's long-text
  policy (measured at build time) splits a long review into windows and
  aggregates their probabilities, so a verdict at the end counts.
- Every window runs in its own session call, unpadded: dynamic int8
  quantization picks one activation scale per input tensor, so a window
  batched with others (and their padding) would get a different answer than
  alone. One window per call makes a review's probabilities a function of its
  text and the artifact only, whatever else arrives in the same request or
  bundle; batching bought little on CPU (100 vs 107 reviews/s), and the
  largest input is one window, which also bounds ONNX Runtime's memory arena.
- At load the manifest is verified and a self-check compares this CPU's
  answers on fixed texts with those the build measured on the same kernel
  family (``shared/cpu.py``), within a tolerance derived from the spread
  between families: a healthy model on another instruction set serves, a
  changed one refuses rather than mislabel. Every cold start logs the family
  and the largest drift.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from shared import logs
from shared.artifact import FOLDED_WEIGHT_SCHEMES, LongTextPolicy, Manifest, load_manifest
from shared.cpu import kernel_family
from shared.errors import ArtifactError, ProviderUnavailableError, SelfCheckError
from shared.process_wide import ProcessWide

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
TOKENIZED_TEXTS_KEPT = 64  # the largest request's reviews (MAX_BATCH); at most ~3 MB of 5,000-character texts


@dataclass(frozen=True)
class SelfCheckResult:
    kernel_family: str
    family_measured: bool  # whether the build recorded expectations for this family
    largest_drift: float
    tolerance: float


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    scores: dict[str, float]
    model: dict[str, str]  # {name, version} of the model that answered (in a cascade, per review)

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score, "scores": dict(self.scores)}


def predictions(probabilities: npt.NDArray[np.float32], labels: Sequence[str],
                models: Sequence[dict[str, str]]) -> list[Prediction]:
    """Rows of class probabilities to predictions; ``models[i]`` answered row ``i``."""
    results = []
    for row, model in zip(probabilities, models, strict=True):
        best = int(np.argmax(row))
        results.append(Prediction(
            label=labels[best],
            score=round(float(row[best]), 6),
            scores={label: round(float(p), 6) for label, p in zip(labels, row, strict=True)},
            model=dict(model),
        ))
    return results


class Labeler(Protocol):
    """What handlers need from a model: a single classifier or a cascade of two (``shared/cascade.py``)."""

    @property
    def labels(self) -> list[str]: ...

    @property
    def model_info(self) -> dict[str, str]: ...

    def windows(self, text: str) -> list[list[int]]: ...

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...

    def classify(self, texts: Sequence[str]) -> list[Prediction]: ...


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    out: npt.NDArray[np.float32] = exp / exp.sum(axis=-1, keepdims=True)
    return out


def split_windows(ids: list[int], policy: LongTextPolicy) -> list[list[int]]:
    """Token ids (no special tokens) to the pieces the model reads, per the manifest's policy."""
    budget = policy.max_length - 2
    if len(ids) <= budget:
        return [ids]
    if policy.strategy == "head":
        return [ids[:budget]]
    if policy.strategy == "head_tail":
        return [ids[:policy.head] + ids[len(ids) - (budget - policy.head):]]
    step = budget - policy.stride
    starts = [*range(0, len(ids) - budget, step), len(ids) - budget]
    return [ids[s:s + budget] for s in starts]


class Classifier:
    """A loaded, verified model. Build with ``Classifier.load``; share via ``get_classifier``."""

    def __init__(self, manifest: Manifest, session: Any, tokenizer: Any, max_chars: int) -> None:
        self.manifest = manifest
        self.labels = manifest.labels
        self._session = session
        self._tokenizer = tokenizer
        self._max_chars = max_chars
        self._open, self._close = self._template_ends()
        self._input_names = {i.name for i in session.get_inputs()}
        self._bias = np.exp(np.asarray(manifest.class_bias, dtype=np.float32))
        self.load_seconds = 0.0
        # A request is tokenized twice, once to bound its compute (classify_http) and once to classify: the second
        # reads from here. Keyed by the text, so an answer cannot depend on what else was asked (0.15 ms a review).
        self._token_ids = functools.lru_cache(maxsize=TOKENIZED_TEXTS_KEPT)(self._encode)

    @property
    def model_info(self) -> dict[str, str]:
        return {"name": self.manifest.name, "version": self.manifest.version}

    @classmethod
    def load(cls, model_dir: Path, *, threads: int | None = None, provider: str = "cpu",
             max_chars: int = 5000, policy: LongTextPolicy | None = None, class_bias: list[float] | None = None,
             self_check: bool = True) -> Classifier:
        """Verify the artifact, open the session, run the self-check. Raises typed errors."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        started = time.perf_counter()
        manifest = load_manifest(model_dir)
        if policy is not None:  # evaluation tools compare strategies and biases on one artifact
            manifest = replace(manifest, long_text=policy)
        if class_bias is not None:
            manifest = replace(manifest, class_bias=list(class_bias))
        wanted = PROVIDERS.get(provider)
        if wanted is None:
            raise ProviderUnavailableError(f"unknown execution provider {provider!r}; use one of {sorted(PROVIDERS)}")
        if wanted not in ort.get_available_providers():
            raise ProviderUnavailableError(
                f"execution provider {provider!r} was asked for but this onnxruntime offers only "
                f"{ort.get_available_providers()}; install onnxruntime-gpu on a CUDA machine "
                "or set EXECUTION_PROVIDER=cpu")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if manifest.quantization in FOLDED_WEIGHT_SCHEMES:
            # fold DequantizeLinear of constant weights into fp32 constants; otherwise ONNX Runtime fuses them into
            # MatMulNBits, whose arithmetic differs per instruction set
            options.add_session_config_entry("session.disable_quant_qdq", "1")
        try:
            session = ort.InferenceSession(str(manifest.model_file), options, providers=[wanted])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ArtifactError(f"{manifest.model_file}: onnxruntime cannot load it ({exc})") from exc
        try:
            tokenizer = Tokenizer.from_file(str(manifest.tokenizer_file))
        except Exception as exc:
            raise ArtifactError(f"{manifest.tokenizer_file}: not a tokenizers file ({exc})") from exc
        tokenizer.no_truncation()
        tokenizer.no_padding()
        width = session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != len(manifest.labels):
            raise ArtifactError(
                f"{manifest.model_file}: outputs {width} classes but {manifest.path} "
                f"lists {len(manifest.labels)} labels")
        missing = {"input_ids", "attention_mask"} - {i.name for i in session.get_inputs()}
        if missing:
            raise ArtifactError(f"{manifest.model_file}: model lacks inputs {sorted(missing)}")
        classifier = cls(manifest, session, tokenizer, max_chars)
        if not self_check:
            classifier.load_seconds = time.perf_counter() - started
            return classifier
        try:
            result = classifier.self_check()
        except SelfCheckError as exc:
            logs.error("model self-check failed", model=classifier.model_info, kernel_family=kernel_family(),
                       error=str(exc))
            raise
        classifier.load_seconds = time.perf_counter() - started
        logs.info("model self-check passed", model=classifier.model_info, kernel_family=result.kernel_family,
                  family_measured=result.family_measured, largest_drift=float(f"{result.largest_drift:.3g}"),
                  tolerance=result.tolerance, load_seconds=round(classifier.load_seconds, 3))
        return classifier

    def _template_ends(self) -> tuple[int, int]:
        """The token the tokenizer's own template puts before a text and the one after it.

        Read from the template, not looked up by name, because encoders disagree: BERT-style models open with
        ``[CLS]`` and close with ``[SEP]``, MPNet and RoBERTa with ``<s>`` and ``</s>``. The long-text policy's
        budget (``max_length - 2``) assumes exactly one of each, so any other template is refused here."""
        probe = "review"
        bare = self._tokenizer.encode(probe, add_special_tokens=False).ids
        full = self._tokenizer.encode(probe, add_special_tokens=True).ids
        if len(full) == len(bare) + 2 and full[1:-1] == bare:
            return int(full[0]), int(full[-1])
        raise ArtifactError(f"{self.manifest.tokenizer_file}: its post-processor does not wrap a text in one "
                            f"opening and one closing special token ({bare} became {full})")

    def self_check(self) -> SelfCheckResult:
        """Compare answers on the manifest's fixed texts with those the build measured on this kernel family.

        A different instruction set moves probabilities by the spread the build measured between families; a
        corrupted, mismatched or wrongly exported model moves them by far more. The tolerance is the build's,
        wider on a family it never measured."""
        check = self.manifest.self_check
        if not check.cases:
            raise ArtifactError(f"{self.manifest.path}: self_check.cases is empty; a servable artifact records "
                                "expected probabilities at build time (tools/build_artifact.py)")
        family = kernel_family()
        measured = family in check.families
        tolerance = check.tolerance if measured else check.unmeasured_tolerance
        got = self.probabilities([c.text for c in check.cases])
        drifts = [float(np.max(np.abs(probs - np.asarray(case.expected_on(family)))))
                  for case, probs in zip(check.cases, got, strict=True)]
        worst = int(np.argmax(drifts))
        result = SelfCheckResult(family, measured, drifts[worst], tolerance)
        if drifts[worst] > tolerance:
            raise SelfCheckError(
                f"{self.manifest.path}: self-check failed on {check.cases[worst].text[:40]!r}: probabilities drift "
                f"by {drifts[worst]:.2g} (> {tolerance:g}) from the build's on kernel family {family} "
                f"({'measured' if measured else 'not measured'} at build time); the model, its tokenizer or its "
                "export is not the one the manifest describes")
        return result

    def _encode(self, text: str) -> tuple[int, ...]:
        return tuple(self._tokenizer.encode(text[:self._max_chars], add_special_tokens=False).ids)

    def windows(self, text: str) -> list[list[int]]:
        """The model inputs (with special tokens) one text becomes."""
        ids = list(self._token_ids(text))
        return [[self._open, *piece, self._close] for piece in split_windows(ids, self.manifest.long_text)]

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Class probabilities per text (rows follow ``texts``), after aggregation and class bias."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        owners: list[int] = []
        pieces: list[list[int]] = []
        for index, text in enumerate(texts):
            for piece in self.windows(text):
                owners.append(index)
                pieces.append(piece)
        window_probs = self._run(pieces)
        weights = np.asarray([len(p) if self.manifest.long_text.aggregate == "token_weighted" else 1.0
                              for p in pieces], dtype=np.float32)
        totals = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        norm = np.zeros(len(texts), dtype=np.float32)
        np.add.at(totals, owners, window_probs * weights[:, None])
        np.add.at(norm, owners, weights)
        probs = totals / norm[:, None] * self._bias
        out: npt.NDArray[np.float32] = probs / probs.sum(axis=1, keepdims=True)
        return out

    def _run(self, pieces: list[list[int]]) -> npt.NDArray[np.float32]:
        """Softmax per window, each window alone in its own call (see the module docstring: batch invariance)."""
        out = np.zeros((len(pieces), len(self.labels)), dtype=np.float32)
        for row, piece in enumerate(pieces):
            ids = np.asarray([piece], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            if "token_type_ids" in self._input_names:
                feed["token_type_ids"] = np.zeros_like(ids)
            logits = self._session.run([self.manifest.output], feed)[0]
            out[row] = softmax(np.asarray(logits, dtype=np.float32))[0]
        return out

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in order; each text's answer is independent of the others."""
        return predictions(self.probabilities(texts), self.labels, [self.model_info] * len(texts))


def _load_configured() -> Labeler:
    from shared.config import get_settings

    settings = get_settings()

    def load(model_dir: Path) -> Classifier:
        return Classifier.load(model_dir, threads=settings.intra_op_threads, provider=settings.execution_provider,
                               max_chars=settings.max_review_chars)

    fast = load(settings.model_dir)
    if settings.cascade_model_dir is None:
        return fast
    from shared.cascade import Cascade, CascadePolicy

    cascade_dir = settings.cascade_model_dir
    return Cascade(fast, lambda: load(cascade_dir), CascadePolicy.configured(settings))


_instance: ProcessWide[Labeler] = ProcessWide(_load_configured)


def get_classifier() -> Labeler:
    """The process-wide model (one classifier, or a cascade when ``CASCADE_MODEL_DIR`` is set), loaded on first
    use (thread-safe, once)."""
    return _instance.get()


def is_loaded() -> bool:
    """Whether this process already paid the load (the next answer is warm)."""
    return _instance.loaded


def reset_for_tests() -> None:
    """Forget the loaded classifier so a test can exercise first-load behaviour again."""
    _instance.reset()
