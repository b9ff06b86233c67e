"""Which quantization keeps one review's answer the same on every CPU: measured, per scheme and kernel family.

Why: a scheme that serves on one instruction set and drifts on another is an outage (the self-check refuses)
or, worse, a label that depends on where the function landed. For each artifact (one per preset of
``tools/quantize.py``, all from the same fp32 model) and each kernel family this machine can run (native, and
AVX2 / SSE4.2 under ``qemu-x86_64``), it classifies held-out text one review per call and compares with fp32:
label agreement, largest and mean probability difference, macro-F1 per held-out split, follow-up decisions
(open at a negative score >= 0.80, needs_review >= 0.55) that differ from fp32 and between families, latency
and size. Emulation costs 100-500x, so emulated families classify a stratified sample (``--emulated``); the
report also bounds what the sample cannot show: texts whose top-two margin, or distance to a follow-up
threshold, lies within the largest difference measured between families.

Probabilities are cached per (artifact, family) under ``--out``, so an interrupted run resumes where it stopped.

    python tools/portability.py --fp32 build/artifacts/review-sentiment-minilm-fp32 \
        --variants build/portability/u8s8 build/portability/int8_weights --out build/portability
    python tools/portability.py --build-variants --fp32 ... --out build/portability   # make the variants first
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.artifact import sha256_of
from shared.cpu import kernel_family
from tools import emulate, quantize
from tools.evaluate import LABEL_ID, TEST_SOURCES, dataset, macro_f1

Probs = npt.NDArray[np.float64]
OPEN, UNSURE = 0.80, 0.55  # shared/config.py defaults: FOLLOWUP_THRESHOLD, FOLLOWUP_UNSURE_MIN


def held_out(data: Path, corpus: Path, per_split: int) -> list[dict[str, Any]]:
    """Our eval and dev reviews whole, then the first ``per_split`` rows of every public test split."""
    rows = [dict(r, split=f"customer_reviews_{s}") for s in ("eval", "dev")
            for r in dataset("customer_reviews", data, corpus, s, None)]
    for name in TEST_SOURCES:
        rows += [dict(r, split=name) for r in dataset(name, data, corpus, "test", per_split)]
    return rows


def emulated_sample(rows: list[dict[str, Any]], count: int, max_chars: int = 400) -> list[int]:
    """Indices of a sample across all splits, of texts up to ``max_chars`` (one window each).

    Emulated time grows with length: fp32 arithmetic under ``-cpu Haswell`` runs FMA in software, a minute or more
    per 100 tokens; a long review is the same arithmetic over more windows."""
    by_split: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if len(r["text"]) <= max_chars:
            by_split[r["split"]].append(i)
    picked: list[int] = []
    lanes = [sorted(ids, key=lambda i: len(rows[i]["text"])) for ids in by_split.values()]
    lanes = [lane[len(lane) // 2:] for lane in lanes]  # the longer half: one-word texts test little
    while len(picked) < count and any(lanes):
        for lane in lanes:
            if lane and len(picked) < count:
                picked.append(lane.pop(0))
    return sorted(picked)


def decisions(probs: Probs) -> npt.NDArray[np.int64]:
    """0 none, 1 needs_review, 2 open: the follow-up rule of shared/followup_rule.py on the label and its score."""
    negative = probs.argmax(1) == LABEL_ID["negative"]
    return np.where(negative & (probs[:, 0] >= OPEN), 2, np.where(negative & (probs[:, 0] >= UNSURE), 1, 0))


def probabilities(model: Path, family: str, texts: list[str], cache: Path) -> tuple[Probs, float]:
    """Cached per (artifact, family): each text alone; returns probabilities and seconds per text."""
    if cache.is_file():
        saved = json.loads(cache.read_text())
        return np.asarray(saved["probabilities"]), float(saved["seconds_per_text"])
    started = time.perf_counter()
    if family == kernel_family():
        probs = emulate.classify_alone(model, texts).astype(np.float64)
    else:
        probs = np.asarray(emulate.probabilities_on(family, model, texts)["probabilities"], dtype=np.float64)
    seconds = (time.perf_counter() - started) / max(1, len(texts))
    cache.write_text(json.dumps({"probabilities": probs.tolist(), "seconds_per_text": seconds}))
    return probs, seconds


def compare(probs: Probs, ref: Probs, gold: list[int], splits: list[str]) -> dict[str, Any]:
    diff = np.abs(probs - ref)
    per_split = {}
    for name in dict.fromkeys(splits):
        idx = [i for i, s in enumerate(splits) if s == name]
        g = [gold[i] for i in idx]
        classes = sorted(set(g))
        per_split[name] = {"n": len(idx),
                           "macro_f1": round(macro_f1(g, list(probs[idx].argmax(1)), classes), 4),
                           "fp32_macro_f1": round(macro_f1(g, list(ref[idx].argmax(1)), classes), 4)}
    return {
        "n": len(gold),
        "label_agreement": round(float((probs.argmax(1) == ref.argmax(1)).mean()), 4),
        "max_probability_difference": round(float(diff.max()), 6),
        "mean_probability_difference": round(float(diff.mean()), 6),
        "followup_decisions_differing_from_fp32": int((decisions(probs) != decisions(ref)).sum()),
        "largest_macro_f1_drop": round(max(v["fp32_macro_f1"] - v["macro_f1"] for v in per_split.values()), 4),
        "splits": per_split,
    }


def fragile(probs: Probs, spread: float) -> dict[str, int]:
    """Texts whose label or follow-up decision a cross-family difference of ``spread`` could change."""
    top2 = np.sort(probs, axis=1)
    negative = probs[:, 0]
    near = (np.abs(negative - OPEN) <= spread) | (np.abs(negative - UNSURE) <= spread)
    return {"label": int(((top2[:, -1] - top2[:, -2]) <= 2 * spread).sum()), "decision": int(near.sum())}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    rows = held_out(args.data, args.corpus, args.per_split)
    texts, gold = [r["text"] for r in rows], [LABEL_ID[r["label"]] for r in rows]
    splits = [r["split"] for r in rows]
    sample = emulated_sample(rows, args.emulated)
    cache = args.out / "probabilities"
    cache.mkdir(parents=True, exist_ok=True)
    native = kernel_family()
    fams = [native, *(f for f in (args.families or emulate.families()) if f != native)]
    ref, fp32_seconds = probabilities(args.fp32, native, texts, cache / f"fp32.{native}.json")
    result: dict[str, Any] = {"texts": len(texts), "emulated_texts": len(sample), "native_family": native,
                              "families": fams, "fp32_ms_per_text": round(1000 * fp32_seconds, 2), "variants": {}}
    for model in args.variants:
        manifest = json.loads((model / "manifest.json").read_text())
        entry: dict[str, Any] = {"scheme": manifest.get("quantization", {}).get("scheme", model.name),
                                 "size_bytes": (model / "model.onnx").stat().st_size, "families": {}}
        by_family: dict[str, Probs] = {}
        native_probs = np.zeros((0, 3))
        for family in fams:
            subset = list(range(len(texts))) if family == native else sample
            cached = cache / f"{model.name}.{family}.json"
            if family != native and args.cached_only and not cached.is_file():
                print(f"{model.name} on {family}: not measured (no cached run; --cached-only)", flush=True)
                continue
            probs, seconds = probabilities(model, family, [texts[i] for i in subset], cached)
            print(f"{model.name} on {family}: {len(subset)} texts, {seconds:.3f} s each", flush=True)
            stats = compare(probs, ref[subset], [gold[i] for i in subset], [splits[i] for i in subset])
            if family == native:
                stats["ms_per_text"] = round(1000 * seconds, 2)
                by_family[family] = probs[sample]
                native_probs = probs
            else:
                by_family[family] = probs
            entry["families"][family] = stats
        # between families, on the sample every family classified
        spread = max(float(np.abs(p - by_family[native]).max()) for p in by_family.values())
        entry["between_families"] = {
            "max_probability_difference": round(spread, 8),
            "labels_differing": max(int((p.argmax(1) != by_family[native].argmax(1)).sum())
                                    for p in by_family.values()),
            "followup_decisions_differing": max(int((decisions(p) != decisions(by_family[native])).sum())
                                                for p in by_family.values()),
            "held_out_texts_within_spread": fragile(native_probs, spread),
        }
        result["variants"][model.name] = entry
    return result


def table(result: dict[str, Any]) -> str:
    """The model card's portability table."""
    lines = ["| scheme | size | family | texts | labels = fp32 | max / mean prob. diff. vs fp32 | "
             "largest macro-F1 drop vs fp32 (per split) | follow-up decisions ≠ fp32 |",
             "|---|---|---|---|---|---|---|---|"]
    for entry in result["variants"].values():
        for family, s in entry["families"].items():
            # per-split macro-F1 means something on the full held-out set only, not on a 16-text sample
            drop = f"{s['largest_macro_f1_drop']:+.3f}" if family == result["native_family"] else "–"
            lines.append(f"| {entry['scheme']} | {entry['size_bytes'] / 1e6:.1f} MB | {family} | {s['n']} | "
                         f"{s['label_agreement']:.2%} | {s['max_probability_difference']:.3g} / "
                         f"{s['mean_probability_difference']:.2g} | {drop} | "
                         f"{s['followup_decisions_differing_from_fp32']} |")
    lines += ["", "| scheme | largest difference between families | labels differing | follow-up decisions "
              "differing | held-out texts within that difference of a label / decision boundary |",
              "|---|---|---|---|---|"]
    for entry in result["variants"].values():
        b = entry["between_families"]
        lines.append(f"| {entry['scheme']} | {b['max_probability_difference']:.2g} | {b['labels_differing']} | "
                     f"{b['followup_decisions_differing']} | {b['held_out_texts_within_spread']['label']} / "
                     f"{b['held_out_texts_within_spread']['decision']} of {result['texts']} |")
    return "\n".join(lines) + "\n"


def attach(model_dir: Path, result: dict[str, Any]) -> None:
    """The comparison, without per-split detail, under ``portability`` in the manifest (model.onnx untouched)."""
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    compact = json.loads(json.dumps(result))
    for entry in compact["variants"].values():
        for stats in entry["families"].values():
            stats.pop("splits", None)
    compact["chosen"] = manifest.get("quantization", {}).get("scheme")
    compact["command"] = "make portability (tools/portability.py)"
    manifest["portability"] = compact
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def build_variants(fp32: Path, out: Path, schemes: list[str]) -> list[Path]:
    """One artifact per preset from the same fp32 model, its tokenizer and manifest copied alongside."""
    folders = []
    for name in schemes:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        record = quantize.apply(fp32 / "model.onnx", folder / "model.onnx", name)
        shutil.copy(fp32 / "tokenizer.json", folder / "tokenizer.json")
        manifest = json.loads((fp32 / "manifest.json").read_text())
        manifest.update({"quantization": record, "sha256": sha256_of(folder / "model.onnx"),
                         "tokenizer_sha256": sha256_of(folder / "tokenizer.json")})
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fp32", type=Path, required=True, help="the fp32 artifact all variants come from")
    parser.add_argument("--variants", type=Path, nargs="*", default=[])
    parser.add_argument("--build-variants", nargs="*", default=None, metavar="SCHEME",
                        help="first build these presets (all when none is named) under --out")
    parser.add_argument("--families", nargs="*", default=None, help="default: native + what qemu can emulate")
    parser.add_argument("--data", type=Path, default=Path("build/data"))
    parser.add_argument("--corpus", type=Path, default=Path("data/reviews/splits"))
    parser.add_argument("--per-split", type=int, default=200, help="rows of each public test split")
    parser.add_argument("--emulated", type=int, default=26, help="texts classified under each emulated family")
    parser.add_argument("--cached-only", action="store_true",
                        help="report emulated families only where a cached run exists (combine partial runs)")
    parser.add_argument("--out", type=Path, default=Path("build/portability"))
    parser.add_argument("--attach", type=Path, default=None, metavar="MODEL_DIR",
                        help="record the comparison in this artifact's manifest (``portability``)")
    args = parser.parse_args(argv)
    if args.build_variants is not None:
        args.variants += build_variants(args.fp32, args.out, args.build_variants or sorted(quantize.SCHEMES))
    result = measure(args)
    (args.out / "portability.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "portability.md").write_text(table(result))
    print(table(result))
    if args.attach:
        attach(args.attach, result)


if __name__ == "__main__":
    main()
