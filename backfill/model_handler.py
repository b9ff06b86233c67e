"""RunInference's ModelHandler around the shared classifier: the batch path labels exactly as the functions do.

Why the shared classifier and not a new wrapper: one review must get one answer whatever path
labels it. ``shared.classifier.Classifier`` runs each window of each review alone (the
batch-invariance rule), verifies the artifact's hashes and runs its self-check at load, so the
same text and artifact give the same label here, in ``ingest_review`` and in ``classify_http``.
Each window running alone also means there is no padding to save: RunInference's batches only
amortise per-call overhead, and its length buckets (``batch_length_fn``) keep a batch's cost even.
The model is loaded once per worker process (RunInference shares it across the process's threads).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from apache_beam.ml.inference.base import ModelHandler

from backfill.rows import Row
from backfill.writes import Labelled
from shared.classifier import Classifier

LENGTH_BUCKETS = [200, 800, 2000]  # characters: short, paragraph, long (several windows)


class ReviewModelHandler(ModelHandler[Row, Labelled, Classifier]):  # type: ignore[misc]
    def __init__(self, model_dir: Path, *, threads: int = 1, provider: str = "cpu", max_chars: int = 5000,
                 min_batch_size: int = 8, max_batch_size: int = 64) -> None:
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size,
                         batch_length_fn=lambda row: len(row.text), batch_bucket_boundaries=LENGTH_BUCKETS)
        self.model_dir = model_dir
        self.threads = threads
        self.provider = provider
        self.max_chars = max_chars

    def load_model(self) -> Classifier:
        return Classifier.load(self.model_dir, threads=self.threads, provider=self.provider, max_chars=self.max_chars)

    def run_inference(self, batch: Sequence[Row], model: Classifier,
                      inference_args: dict[str, Any] | None = None) -> Iterable[Labelled]:
        predictions = model.classify([row.text for row in batch])
        return [Labelled(row, prediction.as_dict(), dict(prediction.model))
                for row, prediction in zip(batch, predictions, strict=True)]

    def get_metrics_namespace(self) -> str:
        return "reviewsense_backfill"
