"""The backfill pipeline (Apache Beam, DirectRunner) end to end on the real Firestore emulator.

Why through a subprocess: Beam pins protobuf < 7 and the functions run 7, so the pipeline has its
own environment (``.venv-beam``, from ``backfill/requirements.txt``; ``make pytest`` builds it).
What is checked is what a team relies on when it labels its history: 2,000 reviews with bad rows
and edits racing the batch are each written once or left alone, bad rows are kept with their
reason, a second run writes nothing, a relabel with a new model version rewrites exactly the
labels of the other version (after a dry run that writes nothing), and the pipeline's labels are
the functions' labels, digit for digit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backfill.rows import Rejected, Row, from_csv_line, from_json_line, id_shards, parse_columns
from backfill.writes import LABEL, RELABEL, Labelled, Outcome, decide
from local.emulators import FirestoreEmulator
from shared.classifier import Classifier
from shared.config import DEFAULT_MODEL_DIR, PROJECT_ROOT

BEAM_PYTHON = PROJECT_ROOT / ".venv-beam" / "bin" / "python"
CORPUS = PROJECT_ROOT / "data" / "reviews" / "splits"
MODEL = {key: json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())[key] for key in ("name", "version")}


# --- the rules, without Beam ---------------------------------------------------------------------

def test_rows_from_csv_with_a_column_mapping_and_every_bad_row_rejected_with_its_reason() -> None:
    columns = parse_columns("id=ticket,text=body")
    header = ["ticket", "body", "created_at"]
    row = from_csv_line('t-1,"Broke in a week, no refund",2025-01-02T10:00:00Z', header, columns, 5000, "f:2")
    assert row == Row("t-1", "Broke in a week, no refund", "2025-01-02T10:00:00Z")
    bad = {
        "bad_review_id": from_csv_line("a/b,text,", header, columns, 5000, "f:3"),
        "missing_text": from_csv_line("t-2,  ,", header, columns, 5000, "f:4"),
        "text_too_long": from_csv_line(f"t-3,{'x' * 5001},", header, columns, 5000, "f:5"),
        "bad_created_at": from_csv_line("t-4,fine,last tuesday", header, columns, 5000, "f:6"),
        "bad_csv": from_csv_line("t-5,too,many,fields", header, columns, 5000, "f:7"),
        "not_json": from_json_line("{oops", parse_columns(None), 5000, "g:1"),
        "invalid_text": from_json_line('{"review_id": "x", "text": "\\ud800"}', parse_columns(None), 5000, "g:2"),
    }
    for code, result in bad.items():
        assert isinstance(result, Rejected) and result.reason_code == code, (code, result)
    with pytest.raises(ValueError, match="--columns"):
        parse_columns("identifier=x")


def test_id_shards_cover_every_id_once() -> None:
    shards = id_shards(8)
    assert len(shards) == 8 and shards[0][0] is None and shards[-1][1] is None
    for review_id in ("-a", "0", "Zed", "_x", "abc", "zzz", "review-123"):
        owners = [s for s in shards if (s[0] is None or review_id >= s[0]) and (s[1] is None or review_id < s[1])]
        assert len(owners) == 1, review_id


@pytest.mark.parametrize(("stored", "mode", "outcome"), [
    (None, LABEL, Outcome.CREATED),
    ({"text_sha256": "other"}, LABEL, Outcome.SKIPPED_EDITED),  # edited after the export: newer than the batch
    ({"status": "received"}, LABEL, Outcome.LABELLED),
    ({"status": "labeled", "sentiment": {"label": "negative"}, "model": MODEL}, LABEL, Outcome.UNCHANGED),
    ({"status": "labeled", "sentiment": {"label": "negative"}, "model": MODEL}, RELABEL, Outcome.UNCHANGED),
    ({"status": "labeled", "sentiment": {"label": "negative"}, "model": {**MODEL, "version": "1.0.0"}}, RELABEL,
     Outcome.RELABELLED),
    ({"status": "labeled", "sentiment": {"label": "negative"}, "model": {**MODEL, "version": "1.0.0"}}, LABEL,
     Outcome.UNCHANGED),
])
def test_what_a_labelled_row_does_to_the_stored_review(stored: dict[str, Any] | None, mode: str,
                                                       outcome: Outcome) -> None:
    row = Row("r1", "It broke.")
    if stored is not None and "text_sha256" not in stored:
        stored = {**stored, "text_sha256": row.text_sha256}
    item = Labelled(row, {"label": "negative", "score": 0.9, "scores": {}}, MODEL)
    assert decide(stored, item, mode) is outcome


# --- the pipeline, end to end --------------------------------------------------------------------

@pytest.fixture(scope="module")
def beam_python() -> Path:
    if not BEAM_PYTHON.exists():
        subprocess.run(["make", ".venv-beam/.installed"], cwd=PROJECT_ROOT, check=True, capture_output=True,
                       timeout=900)
    return BEAM_PYTHON


def run_pipeline(python: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    result = subprocess.run([str(python), "-m", "backfill.pipeline", *args, "--runner", "DirectRunner",
                             "--direct_running_mode", "multi_processing", "--direct_num_workers", "2"],
                            cwd=PROJECT_ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    summary["stdout"] = result.stdout
    return summary


def corpus_texts() -> list[str]:
    return [json.loads(line)["text"] for split in ("train", "dev", "eval")
            for line in (CORPUS / f"{split}.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def firestore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    with FirestoreEmulator(project="reviewsense-backfill", log_dir=tmp_path_factory.mktemp("backfill")) as emulator:
        yield emulator



@pytest.mark.emulator
def test_a_backfill_of_2000_reviews_with_bad_rows_and_racing_edits_then_a_relabel(
        beam_python: Path, firestore: FirestoreEmulator, tmp_path: Path) -> None:
    env = {**firestore.env(), "GOOGLE_CLOUD_PROJECT": firestore.project}
    db = firestore.client()
    reviews = db.collection("reviews")
    texts = corpus_texts()
    rows = [{"review_id": f"bf-{i:04d}", "text": f"{texts[i % len(texts)]} (order {i})",
             "created_at": "2025-03-01T10:00:00Z", "source": "app-store-export"} for i in range(2000)]
    bad = [{"review_id": "no/slash", "text": "fine"}, {"review_id": "bf-empty", "text": " "},
           {"review_id": "bf-long", "text": "x" * 6000}, {"text": "no id"}] * 5
    source = tmp_path / "history.jsonl"
    source.write_text("\n".join([*map(json.dumps, rows), *map(json.dumps, bad), "not json"] * 1) + "\n")
    # 40 reviews were edited by customers after the export: newer than the batch, never overwritten
    edited = {f"bf-{i:04d}": f"Edited later: all sorted now, thanks ({i})" for i in range(0, 400, 10)}
    for review_id, text in edited.items():
        reviews.document(review_id).set({"review_id": review_id, "text": text, "status": "labeled",
                                          "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                                          "sentiment": {"label": "positive", "score": 0.9}, "model": MODEL})
    # and 30 more are edited while the batch runs
    racing = {f"bf-{i:04d}": f"Edited during the batch ({i})" for i in range(1000, 1300, 10)}
    stop = threading.Event()

    def race() -> None:
        pending = dict(racing)
        while pending and not stop.is_set():
            for review_id, text in list(pending.items()):
                if reviews.document(review_id).get().exists:
                    reviews.document(review_id).update({"text": text, "edited": True,
                                                        "text_sha256": hashlib.sha256(text.encode()).hexdigest()})
                    del pending[review_id]
            time.sleep(0.05)

    racer = threading.Thread(target=race, daemon=True)
    racer.start()
    first = run_pipeline(beam_python, env, "--source", str(source), "--mode", "label")
    racer.join(60)  # every raced review exists by now: the racer finishes its edits, then stops by itself
    stop.set()

    assert first["read"] == 2000 and first["rejected"] == len(bad) + 1
    assert first["skipped_edited"] >= len(edited)
    assert first["created"] + first["skipped_edited"] + first["unchanged"] == 2000
    stored = {doc.id: doc.to_dict() for doc in reviews.stream()}
    for review_id, text in {**edited, **racing}.items():
        assert stored[review_id]["text"] == text, review_id  # the customer's edit won
    backfilled = [doc for rid, doc in stored.items() if rid not in edited and rid not in racing]
    assert len(backfilled) == 2000 - len(edited) - len(racing)
    assert all(doc["labeled_by"] == "backfill" and doc["status"] == "labeled" and doc["model"] == MODEL
               and doc["created_at"] == "2025-03-01T10:00:00Z" for doc in backfilled)
    kept = [doc.to_dict() for doc in db.collection("rejected_events").stream()]
    assert len(kept) == len(bad) + 1 and all(d["origin"] == "backfill" and d["reason_code"] for d in kept)

    again = run_pipeline(beam_python, env, "--source", str(source), "--mode", "label")
    assert again["created"] == again["labelled"] == again["relabelled"] == 0  # a rerun writes nothing

    # a new model version: the same weights under another version, so every label is the same and only its
    # provenance changes; a dry run first
    bumped = tmp_path / "model-1.2.0"
    shutil.copytree(DEFAULT_MODEL_DIR, bumped)
    manifest = json.loads((bumped / "manifest.json").read_text())
    manifest["version"] = "1.2.0"
    (bumped / "manifest.json").write_text(json.dumps(manifest))
    dry = run_pipeline(beam_python, env, "--source", "firestore", "--mode", "relabel", "--model-dir", str(bumped),
                       "--dry-run")
    # every review labelled by the shipped version: the backfilled ones, the customers' edits, and the raced ones
    # (whose stale label the relabel corrects: it labels the text stored now)
    assert dry["relabelled"] == 2000 and "would change" in dry["stdout"]
    assert all(doc.to_dict()["model"] == MODEL for doc in reviews.stream())  # wrote nothing
    relabel = run_pipeline(beam_python, env, "--source", "firestore", "--mode", "relabel", "--model-dir", str(bumped))
    assert relabel["relabelled"] == dry["relabelled"]
    assert run_pipeline(beam_python, env, "--source", "firestore", "--mode", "relabel", "--model-dir",
                        str(bumped))["relabelled"] == 0


def test_the_pipeline_labels_exactly_as_the_functions_do(beam_python: Path, tmp_path: Path) -> None:
    texts = [*corpus_texts()[:300], "Short.", "🙂 great " * 300]
    source = tmp_path / "texts.jsonl"
    source.write_text("".join(json.dumps({"review_id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "labels.jsonl"
    run_pipeline(beam_python, {}, "--source", str(source), "--sink", str(out), "--rejected", str(tmp_path / "r.jsonl"))
    batch = {row["review_id"]: row["sentiment"] for row in map(json.loads, out.read_text().splitlines())}
    classifier = Classifier.load(DEFAULT_MODEL_DIR, threads=1)
    for i, text in enumerate(texts):  # the functions label one review per call
        assert batch[f"t{i}"] == classifier.classify([text])[0].as_dict(), i
