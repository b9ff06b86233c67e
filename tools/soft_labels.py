"""Soft labels: the accurate model's probabilities on every text the fast recipe trains on, plus unlabelled reviews.

Why: the fast model's encoder is the ceiling on domains it never saw, but it can learn the accurate model's whole
probability picture (how negative, how unsure) rather than one gold class, and from reviews nobody labelled: IMDB's
training reviews that the recipe's sample does not draw (the test split stays held out). ``tools/train.py
--soft-labels FILE`` mixes these with the gold labels.

The teacher is an artifact run through the serving runtime (windows, long-text policy), so the student learns what
the accurate tier actually answers. The sample is the fast recipe's own (``tools.train.load_mix`` with the same
seed, scale and left-out domains), so a leave-domains-out fold's soft labels come from that fold's teacher on that
fold's texts and never from a model that saw the held-out domains. Resumable: rows are appended in a fixed order and a
rerun continues after the last one written.

    python tools/soft_labels.py --teacher model_artifacts/review-sentiment-mpnet \\
        --out ~/.cache/reviewsense/distill/soft.jsonl [--unlabelled 5000] [--scale 1.0] [--exclude-domains a,b]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.classifier import Classifier
from tools.train import DEFAULT_MIX, LABELS, load_mix, read_jsonl

UNLABELLED_SOURCE = "imdb"
CHUNK = 32


def rows_to_label(data: Path, corpus: Path | None, seed: int, scale: float, exclude_domains: frozenset[str],
                  unlabelled: int) -> list[dict[str, Any]]:
    """The recipe's training texts (each once, with its gold label), then unlabelled reviews it does not draw."""
    mix = {k: max(1, int(v * scale)) for k, v in DEFAULT_MIX.items()}
    examples, _ = load_mix(data, corpus, set(), seed, mix, 1, exclude_domains)
    rows: dict[str, dict[str, Any]] = {}
    for e in examples:
        rows.setdefault(e.text, {"text": e.text, "label": LABELS[e.label], "source": e.source})
    pool = [r["text"] for r in read_jsonl(data / UNLABELLED_SOURCE / "train.jsonl") if r["text"] not in rows]
    random.Random(seed).shuffle(pool)
    for text in pool[:unlabelled]:
        rows[text] = {"text": text, "label": None, "source": f"{UNLABELLED_SOURCE}_unlabelled"}
    return list(rows.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, required=True, help="the accurate artifact (int8 or fp32 folder)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("build/data"))
    parser.add_argument("--corpus", type=Path, default=Path("data/reviews/splits"))
    parser.add_argument("--no-corpus", action="store_true", help="the recipe was trained without our corpus")
    parser.add_argument("--seed", type=int, default=13, help="the fast recipe's seed (tools/train.py)")
    parser.add_argument("--scale", type=float, default=1.0, help="the fast recipe's scale")
    parser.add_argument("--exclude-domains", default="", help="a leave-domains-out fold's held-out domains")
    parser.add_argument("--unlabelled", type=int, default=5000, help="unlabelled IMDB training reviews to add")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    from tqdm import tqdm

    domains = frozenset(d for d in args.exclude_domains.split(",") if d)
    corpus = None if args.no_corpus else args.corpus
    rows = rows_to_label(args.data, corpus, args.seed, args.scale, domains, args.unlabelled)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = sum(1 for line in args.out.open(encoding="utf-8") if line.strip()) if args.out.exists() else 0
    teacher = Classifier.load(args.teacher, threads=args.threads)
    if teacher.labels != LABELS:
        sys.exit(f"the teacher's labels {teacher.labels} are not the recipe's {LABELS}")
    print(f"{len(rows)} texts ({sum(r['label'] is None for r in rows)} unlabelled), {done} already labelled by "
          f"{teacher.model_info}", flush=True)
    with args.out.open("a", encoding="utf-8") as fh:
        for start in tqdm(range(done, len(rows), CHUNK), desc="soft labels", mininterval=10):
            chunk = rows[start:start + CHUNK]
            for row, probs in zip(chunk, teacher.probabilities([r["text"] for r in chunk]), strict=True):
                fh.write(json.dumps({**row, "teacher": [round(float(p), 6) for p in probs]}) + "\n")
            fh.flush()
    (args.out.with_suffix(".meta.json")).write_text(json.dumps({
        "teacher": teacher.model_info, "teacher_dir": str(args.teacher), "seed": args.seed, "scale": args.scale,
        "exclude_domains": sorted(domains), "unlabelled": args.unlabelled, "rows": len(rows)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
