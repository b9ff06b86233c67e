"""Leave-domains-out: how a training recipe does on customer-review domains it never saw.

Why: our eval split is written in the same voice and domains as our train split, so it flatters every model;
real traffic comes from businesses whose domain none of our data covers. The 24 domains of our corpus are dealt
into 4 folds of 6 (sorted, round robin: fixed for everyone). For each fold the recipe is trained with that fold's
domains removed from our corpus (the public sets stay), exported to fp32 ONNX, and judged through the serving
runtime on every corpus review of those 6 domains (train, dev and eval splits: none was seen). The report gives each
fold, the mean and the worst fold (polarity accuracy and 3-class macro-F1): the model card's headline figure.

Each fold is a full training run (about 33 minutes for the MiniLM recipe on 2 cores, about 40 for the mpnet one),
so every step is resumable: a fold whose checkpoint, export or report exists is not redone. The recipes are
train.py's (``--recipe``), so a fold differs from the shipped model only by the domains it never saw.

    python tools/leave_domains_out.py --recipe fast --out build/lodo/fast [--scale 1.0] [--folds 0 1 2 3]
    python tools/leave_domains_out.py --recipe accurate --out ~/.cache/reviewsense/lodo/accurate
    python tools/leave_domains_out.py --recipe distilled --teachers ~/.cache/reviewsense/lodo/accurate \
        --out ~/.cache/reviewsense/lodo/distilled
    python tools/leave_domains_out.py --recipe fast --out build/lodo/fast \
        --attach model_artifacts/review-sentiment-minilm
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.emulate import classify_alone
from tools.evaluate import LABEL_ID, metrics, read_jsonl
from tools.train import RECIPES

FOLDS = 4
SPLITS = ("train", "dev", "eval")
DISTILLED = "distilled"  # the fast recipe taught by the accurate recipe's model of the same fold


def domains(corpus: Path) -> list[str]:
    return sorted({r["domain"] for split in SPLITS for r in read_jsonl(corpus / f"{split}.jsonl")})


def folds(names: list[str], count: int = FOLDS) -> list[list[str]]:
    """Round robin over the sorted domain names: 24 domains give 4 disjoint folds of 6."""
    return [names[k::count] for k in range(count)]


def fold_reviews(corpus: Path, held_out: list[str]) -> list[dict[str, Any]]:
    return [r for split in SPLITS for r in read_jsonl(corpus / f"{split}.jsonl") if r["domain"] in held_out]


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def evaluate(model_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    probs = classify_alone(model_dir, [r["text"] for r in rows], threads=None)
    return metrics([LABEL_ID[r["label"]] for r in rows], probs)


def distillation(args: argparse.Namespace, k: int, held_out: list[str], scale: float, work: Path) -> list[str]:
    """Soft labels for fold ``k`` from the accurate recipe's fold-``k`` model, which never saw these domains either
    (a teacher trained on every domain would leak the held-out ones into the student)."""
    if args.teachers is None:
        sys.exit("--recipe distilled needs --teachers: the accurate recipe's leave-domains-out folder")
    teacher = args.teachers / f"fold{k}" / "artifact"
    if not (teacher / "manifest.json").is_file():
        sys.exit(f"{teacher}: no teacher for fold {k}; run the accurate recipe's leave-domains-out first")
    soft = work / "soft.jsonl"
    run([sys.executable, "tools/soft_labels.py", "--teacher", str(teacher), "--out", str(soft), "--scale", str(scale),
         "--exclude-domains", ",".join(held_out), "--unlabelled", str(args.unlabelled)])
    return ["--soft-labels", str(soft)]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    py = sys.executable
    all_folds = folds(domains(args.corpus))
    recipe = "fast" if args.recipe == DISTILLED else args.recipe
    scale = args.scale if args.scale is not None else RECIPES[recipe].get("scale", 1.0)
    result: dict[str, Any] = {"recipe": args.recipe, "scale": scale, "folds": {}}
    for k in args.folds:
        held_out = all_folds[k]
        work = args.out / f"fold{k}"
        report = work / "report.json"
        if not report.is_file():
            checkpoint = work / "train" / "final"
            if not checkpoint.is_dir():
                extra = distillation(args, k, held_out, scale, work) if args.recipe == DISTILLED else []
                run([py, "tools/train.py", "--recipe", recipe, "--out", str(work / "train"),
                     "--scale", str(scale), "--exclude-domains", ",".join(held_out), *extra])
            fp32 = work / "artifact-fp32"
            if not (fp32 / "manifest.json").is_file():
                run([py, "tools/build_artifact.py", "--checkpoint", str(checkpoint), "--out", str(work / "artifact"),
                     "--fp32-out", str(fp32), "--families", "--min-agreement", "0", "--parity-texts",
                     str(args.corpus / "eval.jsonl")])  # judged in fp32: a fold's int8 parity gates nothing
            rows = fold_reviews(args.corpus, held_out)
            report.write_text(json.dumps({"domains": held_out, **evaluate(fp32, rows)}, indent=2))
        result["folds"][f"fold{k}"] = json.loads(report.read_text())
        print(f"fold {k} {held_out}: {result['folds'][f'fold{k}']}", flush=True)
    scores = list(result["folds"].values())
    for key in ("polarity_accuracy", "macro_f1"):
        values = [s[key] for s in scores]
        result[f"mean_{key}"] = round(float(np.mean(values)), 4)
        result[f"worst_{key}"] = round(float(np.min(values)), 4)
    result["complete"] = len(scores) == FOLDS
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="fast", choices=sorted([*RECIPES, DISTILLED]))
    parser.add_argument("--teachers", type=Path, default=None,
                        help="distilled: the accurate recipe's leave-domains-out folder (its fold models teach)")
    parser.add_argument("--unlabelled", type=int, default=5000,
                        help="distilled: unlabelled IMDB training reviews the teacher labels per fold")
    parser.add_argument("--corpus", type=Path, default=Path("data/reviews/splits"))
    parser.add_argument("--scale", type=float, default=None,
                        help="train.py --scale (default: the recipe's own, what `make model` ships)")
    parser.add_argument("--folds", type=int, nargs="*", default=list(range(FOLDS)))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--attach", type=Path, default=None, metavar="MODEL_DIR",
                        help="record the result in this artifact's manifest (evaluation.leave_domains_out)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = measure(args)
    (args.out / "leave_domains_out.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "folds"}))
    if args.attach:
        path = args.attach / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest.setdefault("evaluation", {})["leave_domains_out"] = result
        path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
