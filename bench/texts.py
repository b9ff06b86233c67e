"""The review texts every variant is measured on: a fixed, seeded selection in three length classes.

Why fixed and seeded: ratios between variants only mean something when every
variant reads exactly the same texts, run after run and machine after machine.
Why three classes: cost grows with length (attention is quadratic, long reviews
become several windows), so short (< 30 words), median (~90 words, the corpus
median) and long (> 300 words) reviews are reported apart.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "reviews" / "splits" / "eval.jsonl"
IMDB = ROOT / "build" / "data" / "imdb" / "test.jsonl"
SEED = 20261126
SHORT_MAX_WORDS = 30
MEDIAN_WORDS = (75, 105)
LONG_MIN_WORDS = 300
# The HTTP function refuses reviews over MAX_REVIEW_CHARS (5,000 by default); long texts stay under it
# so that every variant, the HTTP ones included, reads the same texts.
LONG_MAX_CHARS = 4500


@dataclass
class TextSets:
    short: list[str]
    median: list[str]
    long: list[str]
    agreement: list[str]
    long_source: str
    notes: list[str] = field(default_factory=list)

    def typical(self) -> str:
        """The middle one of the median-length reviews: what the one-question probes time a single call on."""
        return self.median[len(self.median) // 2]

    def summary(self) -> dict[str, object]:
        def words(texts: list[str]) -> dict[str, float]:
            counts = sorted(len(t.split()) for t in texts)
            return {"n": len(counts), "min_words": counts[0], "median_words": counts[len(counts) // 2],
                    "max_words": counts[-1]} if counts else {"n": 0}

        return {"short": words(self.short), "median": words(self.median), "long": words(self.long),
                "agreement_texts": len(self.agreement), "long_source": self.long_source, "seed": SEED,
                "notes": self.notes}


def _read(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]


def _words(text: str) -> int:
    return len(text.split())


def _concatenated_long(corpus: list[str], rng: random.Random, count: int) -> list[str]:
    """Long reviews built from corpus reviews when the IMDB test split is not there (``make data``)."""
    pool = list(corpus)
    out: list[str] = []
    while len(out) < count:
        rng.shuffle(pool)
        text = ""
        for piece in pool:
            candidate = f"{text} {piece}".strip()
            if len(candidate) > LONG_MAX_CHARS:
                continue
            text = candidate
            if _words(text) > LONG_MIN_WORDS:
                break
        if _words(text) <= LONG_MIN_WORDS:
            raise ValueError("the corpus cannot make long texts within the character limit")
        out.append(text)
    return out


def select(per_class: int = 32, agreement_extra: bool = True, corpus: Path = CORPUS,
           imdb: Path = IMDB) -> TextSets:
    """The benchmark texts: ``per_class`` of each length (fewer short ones if the corpus has fewer).

    ``agreement_extra`` adds the rest of the evaluation corpus to the label-agreement set.
    """
    rng = random.Random(SEED)
    texts = _read(corpus)
    notes: list[str] = []
    short = [t for t in texts if _words(t) < SHORT_MAX_WORDS]
    median = [t for t in texts if MEDIAN_WORDS[0] <= _words(t) <= MEDIAN_WORDS[1]]
    rng.shuffle(short)
    rng.shuffle(median)
    if len(short) < per_class:
        notes.append(f"only {len(short)} corpus reviews are under {SHORT_MAX_WORDS} words; all are used")
    short, median = short[:per_class], median[:per_class]
    if imdb.is_file():
        pool = [t for t in _read(imdb) if _words(t) > LONG_MIN_WORDS and len(t) <= LONG_MAX_CHARS]
        rng.shuffle(pool)
        long, source = pool[:per_class], f"{imdb.relative_to(ROOT) if imdb.is_relative_to(ROOT) else imdb}"
    else:
        long, source = _concatenated_long(texts, rng, per_class), "corpus reviews concatenated (no IMDB split)"
        notes.append(f"{imdb} is missing (run `make data`); long texts are corpus reviews joined to > 300 words")
    agreement = short + median + long
    if agreement_extra:
        chosen = set(agreement)
        agreement += [t for t in texts if t not in chosen and len(t) <= LONG_MAX_CHARS]
    return TextSets(short, median, long, agreement, source, notes)
