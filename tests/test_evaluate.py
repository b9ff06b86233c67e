"""The evaluation metrics that the manifest and the model card report.

Why: the figures decide what ships; a metric that scores a class the split does
not have would understate every two-class set.
"""

from __future__ import annotations

import numpy as np

from tools.evaluate import apply_bias, metrics, one_hot

NEG, NEU, POS = 0, 1, 2


def test_two_class_macro_f1_averages_the_gold_classes_and_counts_neutral_as_a_miss() -> None:
    gold = [NEG, NEG, POS, POS]
    probs = one_hot([NEG, NEU, POS, POS])
    m = metrics(gold, probs)
    # negative: tp 1, fn 1 -> 2/3; positive: tp 2 -> 1.0; neutral is not a class of this split
    assert m["macro_f1"] == round((2 / 3 + 1.0) / 2, 4)
    assert m["accuracy"] == 0.75


def test_polarity_accuracy_leaves_gold_neutral_out_and_decides_neutral_answers_by_neg_vs_pos() -> None:
    gold = [NEG, NEU, POS]
    probs = np.array([[0.3, 0.6, 0.1], [0.9, 0.05, 0.05], [0.1, 0.2, 0.7]], dtype=np.float32)
    m = metrics(gold, probs)
    assert m["polarity_accuracy"] == 1.0
    assert m["n"] == 3
    assert m["accuracy"] == round(1 / 3, 4)


def test_three_class_macro_f1() -> None:
    gold = [NEG, NEU, POS, POS]
    m = metrics(gold, one_hot([NEG, POS, POS, POS]))
    # neg 1.0, neutral 0 (missed), pos 2*2/(4+1) = 0.8
    assert m["macro_f1"] == round((1.0 + 0.0 + 0.8) / 3, 4)


def test_bias_shifts_the_decision_and_keeps_probabilities_normalised() -> None:
    probs = np.array([[0.4, 0.25, 0.35]], dtype=np.float32)
    biased = apply_bias(probs, [0.0, 1.0, 0.0])
    assert int(biased.argmax()) == NEU
    assert abs(float(biased.sum()) - 1.0) < 1e-6


def test_model_card_tabulates_ablations_side_by_side() -> None:
    from tools.model_card import ablation_table

    def report(pol: float, f1: float) -> dict[str, object]:
        return {"splits": {"imdb": {"model": {"n": 10, "polarity_accuracy": pol, "macro_f1": f1}}}}

    lines = ablation_table({"ablation_main": report(0.83, 0.83), "ablation_no_movies": report(0.68, 0.64)})
    assert "| split | with our corpus | movie sources left out |" in lines
    assert "| IMDB reviews (Maas et al.) | 0.830 / 0.830 | 0.680 / 0.640 |" in lines
    assert ablation_table({}) == []


def test_model_card_leads_with_leave_domains_out_and_says_when_it_is_incomplete() -> None:
    from tools.model_card import lodo_table, render

    fold = {"domains": ["a", "b"], "n": 40, "polarity_accuracy": 0.9, "macro_f1": 0.8}
    lodo = {"recipe": "fast", "scale": 0.25, "folds": {"fold0": fold, "fold1": {**fold, "polarity_accuracy": 0.7}},
            "mean_polarity_accuracy": 0.8, "worst_polarity_accuracy": 0.7, "mean_macro_f1": 0.8,
            "worst_macro_f1": 0.8, "complete": False}
    lines = lodo_table({"leave_domains_out": lodo})
    assert "2 of 4 folds (incomplete)" in lines[0] and "scale 0.25" in lines[0]
    assert any("**0.800** (worst fold 0.700)" in line for line in lines)
    assert "| fold1 | a, b | 40 | 0.700 | 0.800 |" in lines
    report = {"splits": {"imdb": {"model": {"n": 10, "polarity_accuracy": 0.9, "macro_f1": 0.9, "accuracy": 0.9}}}}
    card = render({"evaluation": {"int8": report, "leave_domains_out": lodo}})
    assert card.index("Leave-domains-out") < card.index("every held-out split")
    assert lodo_table({}) == []
