"""Padded batches against one window per call, with and without sorting by length: does batching pay?

Why: ``shared.classifier`` runs every window alone and unpadded, so a review's answer cannot depend on what shares
its request. That was decided under dynamic int8, whose activation scales did depend on the batch. The shipped
preset computes in fp32, so batching is worth measuring again: windows padded to the longest in their batch (with
the attention mask), in request order or sorted by length first (bucketing), against the windows alone; speed in
windows per second (best of 3) and the largest probability difference from running alone.

    .venv/bin/python bench/batching.py [--model model_artifacts/review-sentiment-minilm]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import texts  # noqa: E402
from shared.classifier import Classifier, softmax  # noqa: E402


def padded(model: Classifier, pieces: list[list[int]], size: int, by_length: bool) -> npt.NDArray[np.float32]:
    """Window probabilities, ``size`` windows a session call, padded to the longest of each call."""
    if size == 1:
        return model._run(pieces)  # the classifier's own path: each window alone, unpadded
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i])) if by_length else list(range(len(pieces)))
    out = np.zeros((len(pieces), len(model.labels)), dtype=np.float32)
    session = model._session  # the classifier's own session, as it serves
    names = {i.name for i in session.get_inputs()}
    for start in range(0, len(order), size):
        rows = order[start:start + size]
        ids = np.zeros((len(rows), max(len(pieces[i]) for i in rows)), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, index in enumerate(rows):
            ids[row, :len(pieces[index])] = pieces[index]
            mask[row, :len(pieces[index])] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        out[rows] = softmax(np.asarray(session.run([model.manifest.output], feed)[0], dtype=np.float32))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "model_artifacts" / "review-sentiment-minilm")
    args = parser.parse_args(argv)
    model = Classifier.load(args.model, self_check=False)
    sets = texts.select()
    print(f"{'texts':8s} {'windows':>7s} {'batch':>5s} {'sorted':>6s} {'windows/s':>10s} {'max |dp| vs alone':>18s}")
    for name, pool in (("median", sets.median), ("mixed", sets.short + sets.median + sets.long)):
        pieces = [piece for text in pool for piece in model.windows(text)][:64]
        alone = padded(model, pieces, 1, False)
        for size, by_length in ((1, False), (8, True), (32, False), (32, True)):
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                probs = padded(model, pieces, size, by_length)
                best = min(best, time.perf_counter() - started)
            print(f"{name:8s} {len(pieces):7d} {size:5d} {by_length!s:>6s} {len(pieces) / best:10.1f} "
                  f"{float(np.abs(probs - alone).max()):18.1e}", flush=True)


if __name__ == "__main__":
    main()
