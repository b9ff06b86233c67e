"""Our customer-review corpus: split it deterministically and check it.

Why: the model is judged on review-shaped text it never saw, so the
evaluation split must be fixed (the same 200 reviews every time), share no
text with training, and the corpus must not contain near-copies a model could
learn by heart. ``split`` assigns train/dev/eval stratified by domain and
stars; ``check`` reports counts and lengths and exits non-zero on any
violation (CI runs it).

Usage::

    python tools/corpus.py split   # data/reviews/source/*.jsonl -> data/reviews/splits/{train,dev,eval}.jsonl
    python tools/corpus.py check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1] / "data" / "reviews"
SPLITS = ("train", "dev", "eval")
EVAL_SIZE = 200
DEV_PER_DOMAIN = 5
MIN_TRAIN = 800
MIN_DOMAINS = 20
SHAPES = {"problem_then_solved", "praise_then_dealbreaker", "mixed_neutral", "sarcasm",
          "competitor_comparison", "quotes_support", "short_angry", "long_calm_complaint", None}
FIELDS = {"id", "domain", "stars", "label", "shape", "text"}
SHINGLE = 5
MAX_JACCARD = 0.35
MAX_SHARED_RUN = 12


def label_for(stars: int) -> str:
    """The label rule: 1-2 stars negative, 3 neutral, 4-5 positive."""
    return "negative" if stars <= 2 else "neutral" if stars == 3 else "positive"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def stable_fraction(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / float(1 << 48)


def assign_splits(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per domain, order reviews so every prefix is stratified by stars, then cut eval, dev, train."""
    by_domain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_domain[row["domain"]].append(row)
    domains = sorted(by_domain)
    base, extra = divmod(EVAL_SIZE, len(domains))
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for n, domain in enumerate(domains):
        groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in by_domain[domain]:
            groups[row["stars"]].append(row)
        ranked = []
        for group in groups.values():
            group.sort(key=lambda r: stable_fraction(r["id"]))
            ranked += [((i + stable_fraction("o" + r["id"])) / len(group), r) for i, r in enumerate(group)]
        ranked.sort(key=lambda pair: pair[0])
        ordered = [r for _, r in ranked]
        n_eval = base + (1 if n < extra else 0)
        out["eval"] += ordered[:n_eval]
        out["dev"] += ordered[n_eval:n_eval + DEV_PER_DOMAIN]
        out["train"] += ordered[n_eval + DEV_PER_DOMAIN:]
    for name in SPLITS:
        out[name].sort(key=lambda r: r["id"])
    return out


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def near_duplicates(rows: list[dict[str, Any]]) -> list[tuple[str, str, float, int]]:
    """Pairs sharing many word 5-grams or one long run of words (id, id, jaccard, longest run)."""
    shingles = []
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        toks = words(row["text"])
        grams = {tuple(toks[j:j + SHINGLE]) for j in range(max(0, len(toks) - SHINGLE + 1))}
        shingles.append((toks, grams))
        for g in grams:
            index[g].append(i)
    shared: Counter[tuple[int, int]] = Counter()
    for members in index.values():
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                shared[(members[a], members[b])] += 1
    found = []
    for (a, b), count in shared.items():
        ga, gb = shingles[a][1], shingles[b][1]
        jaccard = count / len(ga | gb)
        run = longest_common_run(shingles[a][0], shingles[b][0])
        if jaccard > MAX_JACCARD or run >= MAX_SHARED_RUN:
            found.append((rows[a]["id"], rows[b]["id"], round(jaccard, 3), run))
    return found


def longest_common_run(a: list[str], b: list[str]) -> int:
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def check(root: Path) -> list[str]:
    """Print the corpus report; return the list of violations (empty when it passes)."""
    problems: list[str] = []
    splits = {name: read_jsonl(root / "splits" / f"{name}.jsonl") for name in SPLITS}
    source = [row for path in sorted((root / "source").glob("*.jsonl")) for row in read_jsonl(path)]
    everything = [row for name in SPLITS for row in splits[name]]
    for row in everything:
        if set(row) != FIELDS:
            problems.append(f"{row.get('id')}: fields {sorted(row)} != {sorted(FIELDS)}")
        elif row["stars"] not in range(1, 6) or row["label"] != label_for(row["stars"]):
            problems.append(f"{row['id']}: stars {row['stars']} with label {row['label']!r}")
        elif row["shape"] not in SHAPES:
            problems.append(f"{row['id']}: unknown shape {row['shape']!r}")
        elif not row["text"].strip():
            problems.append(f"{row['id']}: empty text")
    ids = Counter(row["id"] for row in everything)
    problems += [f"{i}: appears {n} times across splits" for i, n in ids.items() if n > 1]
    if sorted(r["id"] for r in source) != sorted(ids):
        problems.append("splits do not hold exactly the reviews in source/ (run: python tools/corpus.py split)")
    texts = {name: {" ".join(words(r["text"])) for r in rows} for name, rows in splits.items()}
    for a in SPLITS:
        for b in SPLITS:
            if a < b and texts[a] & texts[b]:
                problems.append(f"splits {a} and {b} share {len(texts[a] & texts[b])} texts")
    if len(splits["train"]) < MIN_TRAIN:
        problems.append(f"train has {len(splits['train'])} reviews, need at least {MIN_TRAIN}")
    if len(splits["eval"]) != EVAL_SIZE:
        problems.append(f"eval has {len(splits['eval'])} reviews, need {EVAL_SIZE}")
    domains = Counter(r["domain"] for r in everything)
    if len(domains) < MIN_DOMAINS:
        problems.append(f"{len(domains)} domains, need at least {MIN_DOMAINS}")
    dupes = near_duplicates(everything)
    problems += [f"near-duplicates {a} ~ {b} (5-gram jaccard {j}, shared run of {r} words)" for a, b, j, r in dupes]

    lengths = [len(r["text"].split()) for r in everything]
    print(f"reviews: {len(everything)}  " + "  ".join(f"{n}: {len(rows)}" for n, rows in splits.items()))
    print(f"domains ({len(domains)}): " + ", ".join(f"{d} {n}" for d, n in sorted(domains.items())))
    for name, rows in splits.items():
        stars = Counter(r["stars"] for r in rows)
        labels = Counter(r["label"] for r in rows)
        print(f"{name:>5} stars " + " ".join(f"{s}*:{stars[s]}" for s in range(1, 6))
              + "  labels " + " ".join(f"{k}:{v}" for k, v in sorted(labels.items())))
    shapes = Counter(str(r["shape"]) for r in everything)
    print("shapes: " + ", ".join(f"{s} {n}" for s, n in shapes.most_common()))
    qs = statistics.quantiles(lengths, n=10)
    print(f"words: min {min(lengths)}  p10 {qs[0]:.0f}  median {statistics.median(lengths):.0f}  "
          f"p90 {qs[-1]:.0f}  max {max(lengths)}")
    print(f"near-duplicate pairs: {len(dupes)} (5-gram jaccard > {MAX_JACCARD} or a shared run of "
          f">= {MAX_SHARED_RUN} words)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["split", "check"])
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    if args.command == "split":
        rows = [row for path in sorted((args.root / "source").glob("*.jsonl")) for row in read_jsonl(path)]
        for name, part in assign_splits(rows).items():
            write_jsonl(args.root / "splits" / f"{name}.jsonl", part)
            print(f"{name}: {len(part)}")
        return 0
    problems = check(args.root)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    print("corpus check: " + ("passed" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
