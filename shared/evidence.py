"""Evidence for a follow-up: the one to three sentences of a review that carry its complaint.

Why: the person who follows up should see the complaint at a glance, not read
three paragraphs where the problem sits after the praise. We reuse the shared
classifier rather than keyword rules, so "evidence" means exactly what made
the model call the review negative. All sentences go through the model in ONE
``probabilities`` call: one batched pass is far cheaper than a call per
sentence, and the classifier already pads and sub-batches by length.

Selection: sentences the model itself labels negative, most negative first,
at most three; if none is labeled negative on its own (the complaint is spread
over the review), the single most negative sentence. Kept in reading order so
the quote reads naturally.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_EVIDENCE = 3
# A review is at most MAX_REVIEW_CHARS long, but "a. b. c." could still make
# thousands of "sentences"; the first ones are enough to find the complaint.
MAX_SENTENCES = 200
# Evidence is quoted in chat messages and shown in a UI: one rambling sentence must not flood them.
MAX_SENTENCE_CHARS = 400
NEGATIVE = "negative"

# Words whose trailing period does not end a sentence (lower-cased, without the period).
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "st", "approx", "incl", "no", "nr",
                            "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"})
# A sentence ends at . ! ? … (runs of them), optionally followed by closing quotes or brackets, then whitespace.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
_LETTER = re.compile(r"\w")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` in reading order; line breaks always end a sentence.

    Pieces without a letter or digit (a lone "!!!" or an emoji) are attached to
    the sentence before them rather than standing as evidence of their own.
    """
    sentences: list[str] = []
    for line in text.splitlines():
        start = 0
        for match in _BOUNDARY.finditer(line):
            if match.group() == "." and _abbreviation_before(line[start:match.start()]):
                continue
            _append(sentences, line[start:match.end()])
            start = match.end()
        _append(sentences, line[start:])
    return sentences


def _abbreviation_before(text: str) -> bool:
    words = text.split()
    return bool(words) and words[-1].lower().lstrip("(\"'") in _ABBREVIATIONS


def _append(sentences: list[str], piece: str) -> None:
    piece = " ".join(piece.split())
    if not piece:
        return
    if not _LETTER.search(piece) and sentences:
        sentences[-1] = f"{sentences[-1]} {piece}"
        return
    sentences.append(piece)


def select_evidence(sentences: Sequence[str], negative: Sequence[float], is_negative: Sequence[bool],
                    limit: int = MAX_EVIDENCE) -> list[str]:
    """Pick the evidence from per-sentence scores (pure, so the rule is testable without a model)."""
    if not sentences:
        return []
    ranked = sorted(range(len(sentences)), key=lambda i: (-negative[i], i))
    chosen = [i for i in ranked if is_negative[i]][:limit] or ranked[:1]
    return [_clip(sentences[i]) for i in sorted(chosen)]


def _clip(sentence: str) -> str:
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return sentence
    return sentence[:MAX_SENTENCE_CHARS - 1].rsplit(" ", 1)[0] + "…"


def negative_evidence(text: str) -> list[str]:
    """The 1-3 most negative sentences of a review, via the shared classifier (one batched call)."""
    sentences = split_sentences(text)[:MAX_SENTENCES]
    if len(sentences) <= 1:  # nothing to choose between: spare the model call
        return [_clip(s) for s in sentences] or ([_clip(" ".join(text.split()))] if text.strip() else [])
    from shared.classifier import get_classifier

    classifier = get_classifier()
    probabilities = classifier.probabilities(sentences)
    column = list(classifier.labels).index(NEGATIVE)
    negative = [float(row[column]) for row in probabilities]
    is_negative = [int(row.argmax()) == column for row in probabilities]
    return select_evidence(sentences, negative, is_negative)
