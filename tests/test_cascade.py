"""The cascade: routing by the fast model's own answer, lazy second tier, degraded (never down) when it cannot load.

The second tier here is a copy of the shipped fast artifact under another name (the routing, not mpnet's accuracy,
is under test; the real accurate artifact is exercised in test_accurate_model.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from shared.cascade import Cascade, CascadePolicy
from shared.classifier import Classifier, Labeler
from shared.config import DEFAULT_MODEL_DIR, load_settings
from shared.errors import SelfCheckError

TEXTS = [
    "Absolutely love it, works perfectly.",
    "Broke after two days and support never answered.",
    "It's okay. Does the job, nothing special.",
    "Delivery was late but the product itself is fine I guess.",
    "Terrible. Refund please.",
]


@pytest.fixture(scope="module")
def fast() -> Classifier:
    return Classifier.load(DEFAULT_MODEL_DIR, threads=1, self_check=False)


@pytest.fixture(scope="module")
def second_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("second") / "second-tier"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["name"], manifest["version"] = "second-tier", "9.9.9"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def cascade(fast: Classifier, second_dir: Path, policy: CascadePolicy, loads: list[int] | None = None) -> Cascade:
    def load() -> Classifier:
        if loads is not None:
            loads.append(1)
        return Classifier.load(second_dir, threads=1, self_check=False)

    return Cascade(fast, load, policy)


def test_routes_exactly_the_unsure_reviews_and_says_who_answered(fast: Classifier, second_dir: Path) -> None:
    policy = CascadePolicy(min_confidence=0.9, negative_band=(0.55, 0.95))
    c = cascade(fast, second_dir, policy)
    probs = fast.probabilities(TEXTS)
    top, negative = probs.max(axis=1), probs[:, fast.labels.index("negative")]
    expected = (top < 0.9) | ((negative >= 0.55) & (negative < 0.95))
    assert list(c.unsure(probs)) == list(expected)
    assert 0 < expected.sum() < len(TEXTS), "the texts must exercise both routes"
    answered = [p.model["name"] for p in c.classify(TEXTS)]
    assert answered == ["second-tier" if e else "review-sentiment-minilm" for e in expected]
    assert c.model_info == {"name": "review-sentiment-minilm+second-tier",
                            "version": f"{fast.model_info['version']}+9.9.9"}


def test_each_review_gets_the_same_answer_alone_or_in_any_batch(fast: Classifier, second_dir: Path) -> None:
    c = cascade(fast, second_dir, CascadePolicy(0.9, (0.55, 0.95)))
    together = c.probabilities(TEXTS)
    alone = np.concatenate([c.probabilities([t]) for t in TEXTS])
    shuffled = c.probabilities(TEXTS[::-1])[::-1]
    assert np.array_equal(together, alone) and np.array_equal(together, shuffled)


def test_the_second_tier_loads_on_first_need_and_once(fast: Classifier, second_dir: Path) -> None:
    loads: list[int] = []
    c = cascade(fast, second_dir, CascadePolicy(0.0, (2.0, 3.0)), loads)  # nothing is unsure
    c.classify(TEXTS)
    assert loads == [] and c.model_info["version"].endswith("not loaded")
    c = cascade(fast, second_dir, CascadePolicy(1.01, (2.0, 3.0)), loads)  # everything is unsure
    c.classify(TEXTS)
    c.classify(TEXTS)
    assert loads == [1]


def test_a_second_tier_that_cannot_load_degrades_to_the_fast_answer(fast: Classifier,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    attempts: list[int] = []

    def broken() -> Classifier:
        attempts.append(1)
        raise SelfCheckError("self-check failed on this CPU")

    c = Cascade(fast, broken, CascadePolicy(1.01, (2.0, 3.0)))
    got = c.classify(TEXTS)
    again = c.classify(TEXTS)
    assert [p.label for p in got] == [p.label for p in fast.classify(TEXTS)] == [p.label for p in again]
    assert {p.model["name"] for p in got} == {"review-sentiment-minilm"}
    assert attempts == [1], "a failed load is remembered, not retried on every review"
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [e["code"] for e in logged if "accurate model unavailable" in e["message"]] == ["self_check_failed"]


def test_cascade_model_dir_makes_the_process_model_a_cascade(second_dir: Path,
                                                             configured_model: Callable[..., Labeler]) -> None:
    labeler = configured_model(CASCADE_MODEL_DIR=str(second_dir), CASCADE_MIN_CONFIDENCE="0.75")
    assert isinstance(labeler, Cascade)
    assert labeler.policy == CascadePolicy(0.75, (0.55, 0.95))
    assert load_settings({}).cascade_model_dir is None


def test_the_threshold_tool_chooses_on_dev_and_reports_every_tier(tmp_path: Path) -> None:
    """tools/cascade.py end to end on two shipped-shape artifacts (the fast one twice, under two names)."""
    pytest.importorskip("torch")
    from tools import cascade as tool

    second = tmp_path / "second"
    shutil.copytree(DEFAULT_MODEL_DIR, second)
    manifest = json.loads((second / "manifest.json").read_text())
    manifest["name"] = "second-tier"
    (second / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "cascade"
    tool.main(["--fast", str(DEFAULT_MODEL_DIR), "--accurate", str(second), "--data", str(tmp_path / "no-data"),
               "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    assert [g["min_confidence"] for g in report["grid"]] == tool.GRID
    assert report["min_confidence"] in tool.GRID
    # identical tiers: every threshold is within a point of the accurate model, so the lowest one is chosen
    assert report["min_confidence"] == tool.GRID[0]
    for where in ("dev", "held_out"):
        assert set(report[where]["mean_ms_per_review"]) == {"fast", "cascade", "accurate"}
        assert 0 <= report[where]["routed_fraction"] <= 1
        assert "customer_reviews" in report[where]["splits"]
    assert all(report["peak_rss_mib"][t] > 50 for t in ("fast", "cascade", "accurate"))
    assert "| cascade |" in out.with_suffix(".md").read_text()
