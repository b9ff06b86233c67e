"""Distillation: the loss, the soft-label file (the recipe's own texts plus unlabelled reviews, resumable) and a
few training steps on a tiny model that learn from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.tiny_bert import WORDS, make_tiny_checkpoint  # noqa: E402
from tools import build_artifact, soft_labels, train  # noqa: E402
from tools.train import Example, distillation_loss, with_soft_labels  # noqa: E402


def test_the_loss_is_gold_cross_entropy_teacher_kl_or_a_mix() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0]])
    target = torch.tensor([0, 1, -1])  # the third review is unlabelled
    teacher = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.05, 0.05, 0.9]])
    has = torch.tensor([True, True, True])
    ce = torch.nn.functional.cross_entropy(logits[:2], target[:2])
    log_p = torch.log_softmax(logits, -1)
    kl = (teacher * (teacher.log() - log_p)).sum(-1).mean()
    assert torch.allclose(distillation_loss(logits, target, teacher, has, 0.0), ce)
    assert torch.allclose(distillation_loss(logits, target, teacher, has, 1.0), kl)
    assert torch.allclose(distillation_loss(logits, target, teacher, has, 0.25), 0.75 * ce + 0.25 * kl)
    # a student that already answers like its teacher owes the teacher nothing
    assert float(distillation_loss(teacher.log(), target, teacher, has, 1.0)) == pytest.approx(0.0, abs=1e-6)
    # rows without a soft label learn from gold only
    none = torch.tensor([False, False, False])
    assert torch.allclose(distillation_loss(logits, target, teacher, none, 0.5), 0.5 * ce)


def test_soft_labels_attach_to_the_sample_and_bring_the_unlabelled(tmp_path: Path) -> None:
    path = tmp_path / "soft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"text": "good", "label": "positive", "source": "amazon", "teacher": [0.1, 0.1, 0.8]},
        {"text": "meh film", "label": None, "source": "imdb_unlabelled", "teacher": [0.3, 0.4, 0.3]},
    ]))
    out, info = with_soft_labels([Example("good", 2, "amazon"), Example("bad", 0, "amazon")], path)
    assert out == [Example("good", 2, "amazon", (0.1, 0.1, 0.8)), Example("bad", 0, "amazon"),
                   Example("meh film", -1, "imdb_unlabelled", (0.3, 0.4, 0.3))]
    assert info == {"file": str(path), "labelled_covered": 1, "labelled_total": 2, "unlabelled": 1}


def tiny_data(root: Path) -> Path:
    """An IMDB-shaped source with more training reviews than the recipe draws (the rest is the unlabelled pool)."""
    (root / "imdb").mkdir(parents=True)
    rows = [{"text": " ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(4 + i % 9)) + f" {i}",
             "label": ("negative", "positive")[i % 2]} for i in range(60)]
    (root / "imdb" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_soft_labels_then_distilled_training_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tiny_data(tmp_path / "data")
    checkpoint = tmp_path / "ckpt"
    make_tiny_checkpoint(checkpoint)
    teacher = tmp_path / "teacher"
    build_artifact.main(["--checkpoint", str(checkpoint), "--out", str(teacher), "--fp32-out", str(tmp_path / "f"),
                         "--name", "tiny-teacher", "--max-length", "32", "--stride", "8", "--head", "8",
                         "--families"])
    monkeypatch.setattr(train, "DEFAULT_MIX", {"imdb": 20})
    monkeypatch.setattr(soft_labels, "DEFAULT_MIX", {"imdb": 20})
    out = tmp_path / "soft.jsonl"
    args = ["--teacher", str(teacher), "--out", str(out), "--data", str(data), "--no-corpus", "--unlabelled", "15",
            "--threads", "1"]
    rows = soft_labels.rows_to_label(data, None, 13, 1.0, frozenset(), 15)
    assert len(rows) == 35 and sum(r["label"] is None for r in rows) == 15
    assert len({r["text"] for r in rows}) == 35, "an unlabelled review is never one the recipe trains on"
    # a run stopped after its first rows resumes where it stopped, without duplicates
    out.write_text("".join(json.dumps({**r, "teacher": [0.2, 0.2, 0.6]}) + "\n" for r in rows[:10]))
    soft_labels.main(args)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in got] == [r["text"] for r in rows]
    assert all(abs(sum(r["teacher"]) - 1) < 1e-4 for r in got)

    train.main(["--base", str(checkpoint), "--data", str(data), "--no-corpus", "--soft-labels", str(out),
                "--out", str(tmp_path / "student"), "--max-len", "32", "--head", "8", "--batch-size", "8",
                "--threads", "1", "--seed", "13"])
    meta = json.loads((tmp_path / "student" / "final" / "training_meta.json").read_text())
    assert meta["distillation"]["labelled_covered"] == meta["distillation"]["labelled_total"] == 20
    assert meta["distillation"]["unlabelled"] == 15 and meta["examples"] == 35
