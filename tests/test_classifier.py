"""The shared classifier on the real shipped model: batching, long texts, ordering, loading.

Why on the shipped model: the runtime's job is to serve exactly that artifact;
a fake model would not catch a tokenizer, window or manifest mismatch.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from shared import classifier as model
from shared.artifact import LongTextPolicy, load_manifest, sha256_of
from shared.classifier import Classifier, split_windows
from shared.config import DEFAULT_MODEL_DIR, PROJECT_ROOT, get_settings
from shared.cpu import kernel_family
from shared.errors import ArtifactError, ProviderUnavailableError, SelfCheckError
from tools import emulate

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
    for b, s in zip(batch, single, strict=True):  # a review's answer does not depend on its neighbours
        assert b.scores == pytest.approx(s.scores, abs=1e-6)


def test_many_reviews_in_one_call(clf: Classifier) -> None:
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


def test_a_text_is_tokenized_once_per_request_and_answers_do_not_change(clf: Classifier) -> None:
    """classify_http counts windows before classifying: the second pass reads the kept token ids."""
    class Counting:
        def __init__(self, inner: object) -> None:
            self.inner, self.calls = inner, 0

        def encode(self, *args: object, **kwargs: object) -> object:
            self.calls += 1
            return self.inner.encode(*args, **kwargs)  # type: ignore[attr-defined]

    counting = Counting(clf._tokenizer)
    fresh = Classifier(clf.manifest, clf._session, counting, max_chars=5000)
    counting.calls = 0  # construction encodes a probe for the special tokens
    texts = ["Broke in a week.", LONG_REVIEW, "Broke in a week.", "Support fixed it."]
    windows = [fresh.windows(t) for t in texts]
    probs = fresh.probabilities(texts)
    assert counting.calls == 3  # three distinct texts, each encoded once across both passes
    assert [fresh.windows(t) for t in texts] == windows
    np.testing.assert_array_equal(probs, clf.probabilities(texts))
    fresh.windows(texts[0]).append([0])  # a caller's change to the returned windows does not reach the kept ids
    assert fresh.windows(texts[0]) == windows[0]


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
    seen: list[model.Labeler] = []
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
    cases = [{"text": c["text"], "probabilities": c["probabilities"] + [0.0]}
             for c in manifest["self_check"]["cases"]]
    edit_manifest(folder, labels=["negative", "neutral", "positive", "mixed"],
                  decision={"class_bias": [0, 0, 0, 0]}, self_check={"tolerance": 0.05, "cases": cases})
    with pytest.raises(ArtifactError, match="outputs 3 classes"):
        Classifier.load(folder)


def test_self_check_drift_refuses_to_serve(tmp_path: Path) -> None:
    folder = copy_artifact(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    case = manifest["self_check"]["cases"][0]
    case["expected"] = {family: list(reversed(p)) for family, p in case["expected"].items()}
    case["probabilities"] = list(reversed(case["probabilities"]))  # what an unmeasured family compares with
    edit_manifest(folder, self_check=manifest["self_check"])
    with pytest.raises(SelfCheckError, match=rf"self-check failed .* kernel family {kernel_family()}"):
        Classifier.load(folder)


def test_self_check_uses_this_families_expectations_and_logs_them(capsys: pytest.CaptureFixture[str]) -> None:
    manifest = load_manifest(DEFAULT_MODEL_DIR)
    check = manifest.self_check
    # the build's own family and the ones qemu emulates (tools/emulate.py); a CPU of another family (AVX-512
    # without VNNI, ARM) is checked against the build's answers with the wider tolerance
    assert {manifest.raw["self_check"]["built_on"], "avx2", "sse4"} <= set(check.families)
    measured = kernel_family() in check.families
    kinds = [c["kind"] for c in manifest.raw["self_check"]["cases"]]
    assert "clear" in kinds and "borderline" in kinds  # clear margins, and texts a changed model moves first
    Classifier.load(DEFAULT_MODEL_DIR)
    entry = next(json.loads(line) for line in capsys.readouterr().out.splitlines()
                 if '"model self-check passed"' in line)
    assert entry["kernel_family"] == kernel_family() and entry["family_measured"] is measured
    assert entry["largest_drift"] <= (check.tolerance if measured else check.unmeasured_tolerance)


def test_unmeasured_family_gets_the_wider_tolerance(tmp_path: Path) -> None:
    folder = copy_artifact(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    check = manifest["self_check"]
    # pretend this family was never measured, and the recorded answers are off by more than the measured
    # tolerance but less than the unmeasured one: a healthy model on an unseen CPU serves
    shift = (check["tolerance"] + check["unmeasured_tolerance"]) / 2
    for case in check["cases"]:
        mine = case["expected"].pop(kernel_family(), case["probabilities"])
        case["probabilities"] = [mine[0] + shift, *mine[1:]]
    check["families"] = [f for f in check["families"] if f != kernel_family()]
    edit_manifest(folder, self_check=check)
    assert Classifier.load(folder).self_check().family_measured is False
    check["families"].append(kernel_family())
    for case in check["cases"]:
        case["expected"][kernel_family()] = case["probabilities"]
    edit_manifest(folder, self_check=check)
    with pytest.raises(SelfCheckError):
        Classifier.load(folder)


def rewrite_hashes(folder: Path) -> None:
    """What a careless re-export would do: new files, hashes updated to match, expectations left as they were."""
    edit_manifest(folder, sha256=sha256_of(folder / "model.onnx"),
                  tokenizer_sha256=sha256_of(folder / "tokenizer.json"))


def test_changed_weights_are_refused_even_with_matching_hashes(tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    folder = copy_artifact(tmp_path)
    graph = onnx.load(str(folder / "model.onnx"))
    ffn = next(n for n in graph.graph.node if n.op_type == "MatMul" and "intermediate" in n.name)
    dequantize = next(n for n in graph.graph.node if n.op_type == "DequantizeLinear" and n.output[0] in ffn.input)
    target = next(i for i in graph.graph.initializer if i.name == dequantize.input[1])
    scaled = numpy_helper.to_array(target) * 1.05  # 5% on one feed-forward layer's weights
    target.CopyFrom(numpy_helper.from_array(scaled, target.name))
    onnx.save(graph, str(folder / "model.onnx"))
    rewrite_hashes(folder)
    with pytest.raises(SelfCheckError, match="self-check failed"):
        Classifier.load(folder)


def test_wrong_tokenizer_is_refused(tmp_path: Path) -> None:
    folder = copy_artifact(tmp_path)
    raw = json.loads((folder / "tokenizer.json").read_text())
    raw["normalizer"] = None  # no lower-casing: every capitalised word becomes another token
    (folder / "tokenizer.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match=r"tokenizer\.json: sha256"):
        Classifier.load(folder)
    rewrite_hashes(folder)
    with pytest.raises(SelfCheckError, match="self-check failed"):
        Classifier.load(folder)


@pytest.mark.parametrize("family", sorted(emulate.EMULATED))
def test_self_check_passes_under_another_instruction_set(family: str) -> None:
    """The shipped artifact serves on AVX2-only and SSE4.2 CPUs (qemu-user), logging the family it found."""
    import subprocess

    if emulate.qemu() is None:
        pytest.skip("qemu-user is not installed (apt-get install qemu-user): emulated kernel families not checked")
    code = ("from shared.classifier import Classifier; from shared.config import DEFAULT_MODEL_DIR; "
            "print(Classifier.load(DEFAULT_MODEL_DIR, threads=1).classify(['Absolutely love it'])[0].label)")
    proc = subprocess.run([*emulate.python_under(family), "-c", code], capture_output=True, text=True,
                          timeout=900, cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    entry = next(json.loads(line) for line in proc.stdout.splitlines() if '"model self-check passed"' in line)
    assert entry["kernel_family"] == family and entry["family_measured"] is True
    assert proc.stdout.strip().splitlines()[-1] == "positive"


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
