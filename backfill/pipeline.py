"""The backfill pipeline: read reviews, label them with the shared classifier, write them once.

    python -m backfill.pipeline --source FILE.jsonl|FILE.csv|gs://...|firestore --mode label|relabel
        [--dry-run] [--sink firestore|FILE.jsonl] [--columns id=review_id,text=body] [--model-dir DIR]
        [--rejected FILE.jsonl] [beam options: --runner DataflowRunner --project ... --region ...]

Why Beam: the same job from a few thousand reviews on one machine (DirectRunner, several
processes) to tens of millions on Dataflow (autoscaled workers, the model loaded once per worker
process). What is written follows ``backfill.writes`` (the guarantees of ``ingest_review``); bad
rows and failed inferences go to the dead-letter output (``rejected_events`` or a JSONL file)
with their reason; Beam counters count what happened and the run ends with one JSON line of them.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import logging
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from backfill.model_handler import ReviewModelHandler
from backfill.rows import Rejected, Row, from_csv_line, from_document, from_json_line, id_shards, parse_columns
from backfill.writes import LABEL, RELABEL, Labelled, Outcome, decide, label_fields, new_document

NAMESPACE = "reviewsense_backfill"
PROGRESS_EVERY = 500
def _settings() -> Any:
    from shared.config import get_settings

    return get_settings()


# --- reading -----------------------------------------------------------------------------------

class ReadFile(beam.DoFn):  # type: ignore[misc]
    """One JSONL or CSV file (local or gs://) to rows; CSV columns come from its header line."""

    def __init__(self, columns: dict[str, str], max_chars: int) -> None:
        self.columns = columns
        self.max_chars = max_chars

    def process(self, path: str) -> Iterator[Row | Rejected]:
        with FileSystems.open(path) as handle:
            lines = (raw.decode("utf-8", errors="replace").rstrip("\r\n") for raw in handle)
            if path.endswith(".csv"):
                header = next(csv.reader([next(lines, "")]), [])
                for number, line in enumerate(lines, start=2):
                    if line.strip():
                        yield from_csv_line(line, header, self.columns, self.max_chars, f"{path}:{number}")
            else:
                for number, line in enumerate(lines, start=1):
                    if line.strip():
                        yield from_json_line(line, self.columns, self.max_chars, f"{path}:{number}")


class ReadFirestoreShard(beam.DoFn):  # type: ignore[misc]
    """The reviews of one id range that this mode has work for (unlabelled, or labelled by another model)."""

    def __init__(self, mode: str, model: dict[str, str]) -> None:
        self.mode = mode
        self.model = model

    def process(self, shard: tuple[str | None, str | None]) -> Iterator[Row | Rejected]:
        from google.cloud.firestore_v1.field_path import FieldPath

        from shared import firestore

        settings = _settings()
        reviews = firestore.get_client().collection(settings.reviews_collection)
        query = reviews.order_by(FieldPath.document_id())
        start, end = shard
        if start is not None:
            query = query.where(filter=_id_filter(">=", reviews.document(start)))
        if end is not None:
            query = query.where(filter=_id_filter("<", reviews.document(end)))
        for snapshot in query.stream(**firestore.call_options()):
            fields = snapshot.to_dict() or {}
            labelled = fields.get("status") == "labeled" and isinstance(fields.get("sentiment"), dict)
            if self.mode == LABEL and labelled:
                continue
            if self.mode == RELABEL and labelled and fields.get("model") == self.model:
                continue
            yield from_document(snapshot.id, fields, settings.max_review_chars)


def _id_filter(op: str, ref: Any) -> Any:
    from google.cloud.firestore_v1.base_query import FieldFilter
    from google.cloud.firestore_v1.field_path import FieldPath

    return FieldFilter(FieldPath.document_id(), op, ref)


# --- writing -----------------------------------------------------------------------------------

class WriteFirestore(beam.DoFn):  # type: ignore[misc]
    """Apply ``backfill.writes.decide`` with a conditional write; dry-run: only say what would change."""

    def __init__(self, mode: str, run_id: str, dry_run: bool) -> None:
        self.mode = mode
        self.run_id = run_id
        self.dry_run = dry_run
        self.counters = {outcome: Metrics.counter(NAMESPACE, outcome.value) for outcome in Outcome}

    def process(self, item: Labelled) -> Iterator[tuple[str, str]]:
        from shared import firestore
        from shared.firestore import Create, Done, Step, Update, read_decide_write

        settings = _settings()
        ref = firestore.document(settings.reviews_collection, item.row.review_id)
        before: dict[str, Any] = {}

        def step(snapshot: Any) -> Step[Outcome]:
            stored = snapshot.to_dict() if snapshot.exists else None
            before["label"] = ((stored or {}).get("sentiment") or {}).get("label") or "none"
            outcome = decide(stored, item, self.mode)
            if self.dry_run or outcome in (Outcome.UNCHANGED, Outcome.SKIPPED_EDITED):
                return Done(outcome)
            if outcome is Outcome.CREATED:
                return Create(new_document(item, self.run_id), outcome)
            assert stored is not None
            return Update(label_fields(item, stored, self.run_id), outcome)

        outcome = read_decide_write(ref, step).value
        self.counters[outcome].inc()
        if outcome not in (Outcome.UNCHANGED, Outcome.SKIPPED_EDITED):
            yield f"{before['label']} -> {item.sentiment['label']}", item.row.review_id


class Count(beam.DoFn):  # type: ignore[misc]
    def __init__(self, name: str) -> None:
        self.counter = Metrics.counter(NAMESPACE, name)

    def process(self, element: Any) -> Iterator[Any]:
        self.counter.inc()
        yield element


class Progress(beam.DoFn):  # type: ignore[misc]
    """A line every PROGRESS_EVERY rows per worker process, so a long local run shows it is alive."""

    def setup(self) -> None:
        self.seen = 0
        self.started = time.monotonic()

    def process(self, element: Any) -> Iterator[Any]:
        self.seen += 1
        if self.seen % PROGRESS_EVERY == 0:
            rate = self.seen / max(1e-9, time.monotonic() - self.started)
            print(f"backfill: {self.seen} rows labelled in this worker ({rate:.0f}/s)", file=sys.stderr, flush=True)
        yield element


def to_jsonl(item: Labelled) -> str:
    row = item.row
    return json.dumps({"review_id": row.review_id, "text_sha256": row.text_sha256, "created_at": row.created_at,
                       "source": row.source, "sentiment": item.sentiment, "model": item.model}, ensure_ascii=False)


class SaveRejected(beam.DoFn):  # type: ignore[misc]
    """Keep a bad row in ``rejected_events`` (id: backfill-<hash of where and what>), never silently drop it."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def process(self, rejected: Rejected) -> Iterator[None]:
        from google.api_core.exceptions import AlreadyExists
        from google.cloud.firestore import SERVER_TIMESTAMP

        from shared import firestore

        # the same bad row keeps the same id, so a rerun finds it kept and writes nothing
        digest = hashlib.sha256(f"{rejected.key}\n{rejected.raw}".encode()).hexdigest()[:32]
        ref = firestore.document(_settings().rejected_collection, f"backfill-{digest}")
        with contextlib.suppress(AlreadyExists):
            ref.create({**rejected.as_dict(), "origin": "backfill", "backfill_run": self.run_id,
                        "rejected_at": SERVER_TIMESTAMP}, **firestore.call_options())
        yield from ()


def failed_batch_to_rejected(failure: tuple[Any, Exception]) -> Iterable[Rejected]:
    batch, error = failure
    for row in batch if isinstance(batch, list | tuple) else [batch]:
        key = getattr(row, "review_id", "unknown")
        yield Rejected(key, "inference_failed", f"{type(error).__name__}: {str(error)[:300]}",
                       getattr(row, "text", "")[:2000])


# --- the pipeline ------------------------------------------------------------------------------

def build(pipeline: beam.Pipeline, args: argparse.Namespace, run_id: str) -> None:
    from shared.artifact import load_manifest

    settings = _settings()
    manifest = load_manifest(args.model_dir)
    model = {"name": manifest.name, "version": manifest.version}
    if args.source == "firestore":
        rows = (pipeline | "Shards" >> beam.Create(id_shards(args.shards))
                | "ReadFirestore" >> beam.ParDo(ReadFirestoreShard(args.mode, model)))
    else:
        paths = sorted(m.path for m in FileSystems.match([args.source])[0].metadata_list)
        rows = (pipeline | "Files" >> beam.Create(paths)
                | "ReadFiles" >> beam.ParDo(ReadFile(parse_columns(args.columns), settings.max_review_chars)))
    rows = rows | "Reshuffle" >> beam.Reshuffle()  # spread one big file over every worker
    valid = rows | "Valid" >> beam.Filter(lambda r: isinstance(r, Row))
    bad = rows | "Bad" >> beam.Filter(lambda r: isinstance(r, Rejected))
    valid = valid | "CountRead" >> beam.ParDo(Count("read"))
    handler = ReviewModelHandler(args.model_dir, threads=args.threads, provider=args.provider,
                                 max_chars=settings.max_review_chars)
    labelled, dead = valid | "Label" >> RunInference(handler).with_exception_handling()
    failed = dead.failed_inferences
    labelled = labelled | "Progress" >> beam.ParDo(Progress())
    rejected = ((bad, failed | "FailedRows" >> beam.FlatMap(failed_batch_to_rejected))
                | "AllRejected" >> beam.Flatten()
                | "CountRejected" >> beam.ParDo(Count("rejected")))
    if args.rejected:
        rejected | "RejectedJSONL" >> beam.Map(lambda r: json.dumps(r.as_dict(), ensure_ascii=False)) \
            | "WriteRejected" >> beam.io.WriteToText(args.rejected, shard_name_template="")
    else:
        rejected | "SaveRejected" >> beam.ParDo(SaveRejected(run_id))
    if args.sink == "firestore":
        changes = labelled | "Write" >> beam.ParDo(WriteFirestore(args.mode, run_id, args.dry_run))
        if args.dry_run:
            (changes | "Transitions" >> beam.combiners.Count.PerKey()
             | "PrintCounts" >> beam.Map(lambda kv: print(f"would change {kv[0]}: {kv[1]}", flush=True)))
            (changes | "Samples" >> beam.combiners.Sample.FixedSizePerKey(3)
             | "PrintSamples" >> beam.Map(lambda kv: print(f"  e.g. {kv[0]}: {', '.join(kv[1])}", flush=True)))
    else:
        labelled | "ToJSONL" >> beam.Map(to_jsonl) | "WriteJSONL" >> beam.io.WriteToText(
            args.sink, shard_name_template="")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    from shared.config import DEFAULT_MODEL_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="a JSONL/CSV file or glob (local or gs://), or firestore")
    parser.add_argument("--mode", choices=(LABEL, RELABEL), default=LABEL)
    parser.add_argument("--dry-run", action="store_true", help="count and sample what would change; write nothing")
    parser.add_argument("--sink", default="firestore", help="firestore (reviews/{id}) or a JSONL file path")
    parser.add_argument("--columns", default=None, help="our field=their column, e.g. id=review_id,text=body")
    parser.add_argument("--rejected", default=None, help="a JSONL file for bad rows (default: rejected_events)")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--threads", type=int, default=1, help="ORT threads per worker process")
    parser.add_argument("--provider", default="cpu", help="cpu, or cuda on GPU workers (onnxruntime-gpu)")
    parser.add_argument("--shards", type=int, default=16, help="id ranges read in parallel from Firestore")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, beam_args = parse_args(argv)
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    options = PipelineOptions(beam_args, save_main_session=False)
    started = time.monotonic()
    pipeline = beam.Pipeline(options=options)
    build(pipeline, args, run_id)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]
                if c.key.metric.namespace == NAMESPACE}
    print(json.dumps({"run": run_id, "mode": args.mode, "dry_run": args.dry_run,
                      "seconds": round(time.monotonic() - started, 1),
                      **{name: counters.get(name, 0) for name in
                         ("read", "rejected", *(o.value for o in Outcome))}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
