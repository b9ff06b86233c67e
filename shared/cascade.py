"""Two tiers in one process: the fast model answers, the accurate one re-scores the reviews it is unsure of.

Why: the accurate model (mpnet) costs about eight times the fast one (MiniLM) per review, but most reviews are
plain and both models agree on them. What the fast model gets wrong lies mostly where it is unsure, and the reviews
whose follow-up decision depends on a few points of negative probability are the ones support acts on. So a review
goes to the accurate model when the fast model's top probability is below ``min_confidence`` or its negative
probability lies inside ``negative_band`` (the follow-up band, from the unsure minimum up to high priority); the
threshold is chosen on our dev split (``tools/cascade.py``). Each review is routed on its own fast answer alone, so
its label does not depend on what else is in its batch.

The accurate model loads on the first review that needs it, not at cold start. If it cannot load (a broken artifact,
a refused self-check) the cascade keeps answering with the fast model, logs each failed attempt (retried after the
process-wide backoff, ``shared/process_wide.py``), and records in each prediction which model answered: degraded,
never down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared import logs
from shared.classifier import Classifier, Prediction, predictions
from shared.config import Settings
from shared.errors import ArtifactError, ConfigError, ProviderUnavailableError
from shared.process_wide import ProcessWide

NEGATIVE = "negative"


@dataclass(frozen=True)
class CascadePolicy:
    min_confidence: float  # re-score when the fast model's top probability is below this
    negative_band: tuple[float, float]  # ... or when its negative probability lies in [low, high)

    @classmethod
    def configured(cls, settings: Settings, min_confidence: float | None = None) -> CascadePolicy:
        """The configured threshold (or ``min_confidence``) and the follow-up band, unsure minimum to high priority."""
        threshold = settings.cascade_min_confidence if min_confidence is None else min_confidence
        return cls(threshold, (settings.followup_unsure_min, settings.followup_high_priority))


class Cascade:
    """Duck-types ``Classifier`` for handlers (``shared.classifier.Labeler``)."""

    def __init__(self, fast: Classifier, load_accurate: Callable[[], Classifier], policy: CascadePolicy) -> None:
        if NEGATIVE not in fast.labels:
            raise ConfigError(f"a cascade needs a {NEGATIVE!r} label; the fast model has {fast.labels}")
        self.fast = fast
        self.policy = policy
        self._load_accurate = load_accurate
        self._accurate: ProcessWide[Classifier] = ProcessWide(self._load_checked)
        self._failures_logged = 0
        self._negative = fast.labels.index(NEGATIVE)

    @property
    def labels(self) -> list[str]:
        return self.fast.labels

    @property
    def model_info(self) -> dict[str, str]:
        second = (self._accurate.get().model_info if self._accurate.loaded
                  else {"name": "accurate tier", "version": "not loaded"})
        return {"name": f"{self.fast.model_info['name']}+{second['name']}",
                "version": f"{self.fast.model_info['version']}+{second['version']}"}

    def windows(self, text: str) -> list[list[int]]:
        """The fast model's windows: every review pays them; the accurate ones only for the routed few."""
        return self.fast.windows(text)

    def unsure(self, probabilities: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """Which rows of fast-model probabilities the accurate model must re-score."""
        low, high = self.policy.negative_band
        negative = probabilities[:, self._negative]
        routed: npt.NDArray[np.bool_] = ((probabilities.max(axis=1) < self.policy.min_confidence)
                                         | ((negative >= low) & (negative < high)))
        return routed

    def _load_checked(self) -> Classifier:
        accurate = self._load_accurate()
        if accurate.labels != self.fast.labels:
            raise ArtifactError(f"the accurate model's labels {accurate.labels} differ from the fast model's "
                                f"{self.fast.labels}")
        return accurate

    def accurate(self) -> Classifier | None:
        """The accurate model, loaded on first need; None (each failed attempt logged) when it cannot load."""
        try:
            return self._accurate.get()
        except (ArtifactError, ProviderUnavailableError) as exc:
            if self._accurate.failures != self._failures_logged:
                self._failures_logged = self._accurate.failures
                logs.error("accurate model unavailable; the cascade answers with the fast model alone",
                           code=exc.code, detail=exc.message, failed_attempts=self._failures_logged)
            return None

    def scored(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.float32], list[dict[str, str]]]:
        """Probabilities per text and the model that answered each."""
        probabilities = self.fast.probabilities(texts)
        models = [self.fast.model_info] * len(texts)
        routed = np.flatnonzero(self.unsure(probabilities))
        accurate = self.accurate() if len(routed) else None
        if accurate is not None:
            probabilities[routed] = accurate.probabilities([texts[int(i)] for i in routed])
            for i in routed:
                models[int(i)] = accurate.model_info
        return probabilities, models

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self.scored(texts)[0]

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        probabilities, models = self.scored(texts)
        return predictions(probabilities, self.labels, models)
