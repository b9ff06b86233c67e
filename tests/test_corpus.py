"""Our customer-review corpus: the committed splits pass the checker, and the checker can fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tools import corpus


def test_committed_corpus_passes_the_checker() -> None:
    assert corpus.check(corpus.ROOT) == []


def test_splits_are_reproducible(tmp_path: Path) -> None:
    rows = [r for p in sorted((corpus.ROOT / "source").glob("*.jsonl")) for r in corpus.read_jsonl(p)]
    again = corpus.assign_splits(rows)
    for name in corpus.SPLITS:
        committed = corpus.read_jsonl(corpus.ROOT / "splits" / f"{name}.jsonl")
        assert [r["id"] for r in again[name]] == [r["id"] for r in committed]


def test_checker_fails_on_a_near_duplicate_and_a_wrong_label(tmp_path: Path) -> None:
    root = tmp_path / "reviews"
    shutil.copytree(corpus.ROOT, root)
    train = root / "splits" / "train.jsonl"
    rows = corpus.read_jsonl(train)
    copy = dict(rows[0], id="copy-001", text=rows[0]["text"].replace(".", "!", 1) + " Thanks.")
    rows[1]["label"] = "positive" if rows[1]["stars"] <= 2 else "negative"
    corpus.write_jsonl(train, [*rows, copy])
    with (root / "source" / "extra.jsonl").open("w") as fh:
        fh.write(json.dumps(copy) + "\n")
    problems = corpus.check(root)
    assert any("near-duplicates" in p and "copy-001" in p for p in problems)
    assert any(rows[1]["id"] in p and "stars" in p for p in problems)


def test_label_rule() -> None:
    assert [corpus.label_for(s) for s in range(1, 6)] == ["negative", "negative", "neutral", "positive", "positive"]
