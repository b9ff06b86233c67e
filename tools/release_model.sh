#!/usr/bin/env bash
# Rebuild the shipped model from scratch, every step explicit and checked:
# train (the broad mix from the base encoder) ->
# build (export, optimize, quantize, parity) -> choose long-text strategy and biases on dev splits ->
# rebuild with them (self-check recorded) -> evaluate on held-out splits -> attach figures to the manifest.
# Then the ablations (tools/ablate.sh: the recipe at a quarter of the data with our corpus, without it, and without
# any movie source), unless SKIP_ABLATIONS=1.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
NAME=review-sentiment-minilm
OUT=model_artifacts/$NAME
EVAL=build/eval
mkdir -p "$EVAL"

FINAL=build/train/main/final
$PY tools/train.py --out build/train/main
# a first build to select on (self-check answers on this CPU only: the emulated families are recorded for the last)
$PY tools/build_artifact.py --checkpoint "$FINAL" --out "$OUT" --families \
  --parity-texts build/data/amazon/test.jsonl build/data/imdb/test.jsonl data/reviews/splits/eval.jsonl --parity-limit 1500
$PY tools/evaluate.py select --model "$OUT" --limit 500 --out "$EVAL/selection.json"
read -r STRATEGY HEAD STRIDE AGG BIAS < <($PY -c "
import json; s = json.load(open('$EVAL/selection.json')); p = s['long_text']
print(p['strategy'], p['head'], p['stride'], p['aggregate'], ','.join(map(str, s['class_bias'])))")
PARITY=(--parity-texts build/data/amazon/test.jsonl build/data/imdb/test.jsonl data/reviews/splits/eval.jsonl
        --parity-limit 1500)
if ! $PY tools/build_artifact.py --checkpoint "$FINAL" --out "$OUT" --strategy "$STRATEGY" --head "$HEAD" \
    --stride "$STRIDE" --aggregate "$AGG" --class-bias="$BIAS" "${PARITY[@]}"; then
  # The dev-chosen biases move more decisions next to a class boundary, where int8 and fp32 can disagree; when
  # that breaks the 99% parity gate, ship without them and record why in the selection.
  echo "the dev-chosen class biases ($BIAS) break the int8 parity gate: building without them"
  $PY -c "
import json; p = '$EVAL/selection.json'; s = json.load(open(p))
s['rejected_class_bias'] = s['class_bias']; s['class_bias'] = [0.0, 0.0, 0.0]
s['class_bias_note'] = 'dev-chosen biases broke the int8/fp32 parity gate (99% label agreement); not applied'
json.dump(s, open(p, 'w'), indent=2)"
  BIAS=0,0,0
  $PY tools/build_artifact.py --checkpoint "$FINAL" --out "$OUT" --strategy "$STRATEGY" --head "$HEAD" \
    --stride "$STRIDE" --aggregate "$AGG" --class-bias="$BIAS" "${PARITY[@]}"
fi
$PY tools/evaluate.py report --model "$OUT" --selection "$EVAL/selection.json" --out "$EVAL/int8.json"
$PY tools/evaluate.py report --model "build/artifacts/$NAME-fp32" --selection "$EVAL/selection.json" --out "$EVAL/fp32.json"
REPORTS=("int8=$EVAL/int8.json" "fp32=$EVAL/fp32.json")
if [ "${SKIP_ABLATIONS:-0}" != 1 ]; then
  PY=$PY SELECTION="$EVAL/selection.json" bash tools/ablate.sh
  for run in main no_corpus no_movies; do REPORTS+=("ablation_$run=$EVAL/abl_$run.json"); done
fi
$PY tools/evaluate.py attach --model "$OUT" --selection "$EVAL/selection.json" --reports "${REPORTS[@]}"
$PY tools/portability.py --fp32 "build/artifacts/$NAME-fp32" --build-variants --out build/portability --attach "$OUT"
$PY tools/model_card.py "$OUT/manifest.json" > "$EVAL/tables.md"
mkdir -p checkpoints && rm -rf "checkpoints/$NAME" && cp -r "$FINAL" "checkpoints/$NAME"
echo "model rebuilt: $OUT (figures in $EVAL/tables.md; paste them into $OUT/MODEL_CARD.md)"
