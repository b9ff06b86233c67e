"""Leave-domains-out folds: every domain held out exactly once, and the held-out domains never trained on."""

from __future__ import annotations

from pathlib import Path

from tools.leave_domains_out import FOLDS, domains, fold_reviews, folds
from tools.train import CORPUS_SOURCE, load_mix

CORPUS = Path(__file__).resolve().parents[1] / "data" / "reviews" / "splits"


def test_folds_partition_the_24_domains_into_4_of_6() -> None:
    names = domains(CORPUS)
    parts = folds(names)
    assert len(names) == 24 and len(parts) == FOLDS and all(len(p) == 6 for p in parts)
    assert sorted(d for p in parts for d in p) == names


def test_a_folds_domains_are_left_out_of_training_and_all_their_reviews_judged(tmp_path: Path) -> None:
    held_out = folds(domains(CORPUS))[1]
    examples, counts = load_mix(tmp_path, CORPUS, set(), 13, {}, corpus_repeats=1,
                                exclude_domains=frozenset(held_out))
    trained = {e.text for e in examples if e.source == CORPUS_SOURCE}
    judged = fold_reviews(CORPUS, held_out)
    assert trained and judged and not trained & {r["text"] for r in judged}
    assert {r["domain"] for r in judged} == set(held_out)
    assert counts[CORPUS_SOURCE] == len(trained) < 832
