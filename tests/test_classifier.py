"""The shared classifier on the real shipped model: batching, long texts, ordering, loading.

Why on the shipped model: the runtime's job is to serve exactly that artifact;
a fake model would not catch a tokenizer, window or manifest mismatch.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from shared import classifier as model
from shared.artifact import LongTextPolicy
from shared.classifier import Classifier, split_windows
from shared.config import DEFAULT_MODEL_DIR, get_settings
from shared.errors import ArtifactError, ProviderUnavailableError, SelfCheckError

LONG_REVIEW = " ".join(
    ["The parcel arrived on a Tuesday and the box was a little dented, which I noted with the driver."] * 30
    + ["In the end it stopped charging after a week, support ignored me and I want my money back."])


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier.load(DEFAULT_MODEL_DIR, threads=1)


def test_results_follow_input_order_with_mixed_lengths(clf: Classifier) -> None:
    texts = ["Terrible, broke in a day.", LONG_REVIEW, "Love it!", "ok", "Fantastic support, fixed in minutes."]
    batch = clf.classify(texts)
    single = [clf.classify([t])[0] for t in texts]
    assert [p.label for p in batch] == [p.label for p in single]
    for b, s in zip(batch, single, strict=True):
        # dynamic int8 quantizes activations with one scale per session call, so a review's probabilities in a
        # batch differ from its single-call ones by a few points (measured up to 0.055 here); labels must not
        assert max(abs(b.scores[k] - s.scores[k]) for k in b.scores) < 0.1


def test_batch_larger_than_one_session_call(clf: Classifier) -> None:
    texts = [f"Review number {i}: {'great value' if i % 2 else 'awful quality'}" for i in range(75)]
    probs = clf.probabilities(texts)
    assert probs.shape == (75, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_long_review_is_read_whole(clf: Classifier) -> None:
    windows = clf.windows(LONG_REVIEW)
    policy = clf.manifest.long_text
    assert all(len(w) <= policy.max_length for w in windows)
    if policy.strategy == "windows":
        assert len(windows) > 1
        # the text's probabilities are the aggregate of its windows' probabilities
        owners = clf._run(windows)
        weights = np.array([len(w) if policy.aggregate == "token_weighted" else 1 for w in windows], dtype=float)
        expected = (owners * weights[:, None]).sum(0) / weights.sum() * np.exp(clf.manifest.class_bias)
        np.testing.assert_allclose(clf.probabilities([LONG_REVIEW])[0], expected / expected.sum(), atol=1e-5)


def test_characters_beyond_the_bound_are_not_read(clf: Classifier) -> None:
    capped = Classifier(clf.manifest, clf._session, clf._tokenizer, max_chars=200)
    assert len(capped.windows(LONG_REVIEW)) == 1
    assert len(capped.windows(LONG_REVIEW[:200] + " extra words" * 500)) == 1


def test_empty_input_list(clf: Classifier) -> None:
    assert clf.classify([]) == []


@pytest.mark.parametrize("policy", [
    LongTextPolicy("windows", 16, stride=4), LongTextPolicy("windows", 16, stride=0),
    LongTextPolicy("head", 16), LongTextPolicy("head_tail", 16, head=5)])
def test_split_windows_covers_what_the_policy_promises(policy: LongTextPolicy) -> None:
    ids = list(range(100))
    pieces = split_windows(ids, policy)
    budget = policy.max_length - 2
    assert all(len(p) == budget for p in pieces)
    if policy.strategy == "windows":
        assert sorted({i for p in pieces for i in p}) == ids
        assert pieces[-1][-1] == 99
    elif policy.strategy == "head":
        assert pieces == [ids[:budget]]
    else:
        assert pieces == [ids[:5] + ids[100 - (budget - 5):]]
    assert split_windows(ids[:budget], policy) == [ids[:budget]]


def test_lazy_global_loads_once_under_concurrent_first_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    model.reset_for_tests()
    get_settings.cache_clear()
    calls = []
    real_load = Classifier.load

    def counting_load(*args: object, **kwargs: object) -> Classifier:
        calls.append(1)
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Classifier, "load", staticmethod(counting_load))
    assert not model.is_loaded()
    seen: list[Classifier] = []
    barrier = threading.Barrier(8)

    def first_call() -> None:
        barrier.wait()
        seen.append(model.get_classifier())

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len({id(c) for c in seen}) == 1 and len(seen) == 8
    model.reset_for_tests()


def copy_artifact(tmp_path: Path) -> Path:
    target = tmp_path / "artifact"
    shutil.copytree(DEFAULT_MODEL_DIR, target)
    return target


def edit_manifest(folder: Path, **changes: object) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_tampered_model_fails_loudly_naming_the_file(tmp_path: Path) -> None:
    folder = copy_artifact(tmp_path)
    with (folder / "model.onnx").open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(ArtifactError, match=r"model\.onnx: sha256"):
        Classifier.load(folder)


def test_missing_manifest_fails_loudly(tmp_path: Path) -> None:
    folder = copy_artifact(tmp_path)
    (folder / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="manifest not found"):
        Classifier.load(folder)


def test_malformed_manifest_fails_loudly(tmp_path: Path) -> None:
    folder = copy_artifact(tmp_path)
    (folder / "manifest.json").write_text("{ nope")
    with pytest.raises(ArtifactError, match="not readable JSON"):
        Classifier.load(folder)


def test_labels_must_match_output_width(tmp_path: Path) -> None:
    folder = copy_artifact(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    cases = [{**c, "probabilities": c["probabilities"] + [0.0]} for c in manifest["self_check"]["cases"]]
    edit_manifest(folder, labels=["negative", "neutral", "positive", "mixed"],
                  decision={"class_bias": [0, 0, 0, 0]}, self_check={"tolerance": 0.05, "cases": cases})
    with pytest.raises(ArtifactError, match="outputs 3 classes"):
        Classifier.load(folder)


def test_self_check_drift_refuses_to_serve(tmp_path: Path) -> None:
    folder = copy_artifact(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    case = manifest["self_check"]["cases"][0]
    case["probabilities"] = list(reversed(case["probabilities"]))
    edit_manifest(folder, self_check=manifest["self_check"])
    with pytest.raises(SelfCheckError, match="self-check failed"):
        Classifier.load(folder)


def test_artifact_without_self_check_cases_is_not_served(tmp_path: Path) -> None:
    folder = copy_artifact(tmp_path)
    edit_manifest(folder, self_check={"tolerance": 0.05, "cases": []})
    with pytest.raises(ArtifactError, match=r"self_check\.cases is empty"):
        Classifier.load(folder)


def test_cuda_asked_but_absent_is_a_clear_error() -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ProviderUnavailableError, match="onnxruntime-gpu"):
        Classifier.load(DEFAULT_MODEL_DIR, provider="cuda")
