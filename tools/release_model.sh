#!/usr/bin/env bash
# Rebuild the shipped model from scratch, every step explicit and checked:
# train (the broad mix from the base encoder) ->
# build (export, optimize, quantize, parity) -> choose long-text strategy and biases on dev splits ->
# rebuild with them (self-check recorded) -> evaluate on held-out splits -> attach figures to the manifest.
# For the fast tier, then the ablations (tools/ablate.sh: the recipe at a quarter of the data with our corpus, without
# it, and without any movie source), unless SKIP_ABLATIONS=1, and the portability of every quantization preset.
# RECIPE=accurate releases the mpnet tier instead: the same steps on fewer texts (an mpnet window costs about 8 MiniLM
# ones), its training resumable in RUNS (a folder outside the work tree, which can outlive a session's build/).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RECIPE=${RECIPE:-fast}
RUNS=${RUNS:-$HOME/.cache/reviewsense}
case $RECIPE in
  fast) NAME=review-sentiment-minilm; VERSION=${VERSION:-1.1.1}; TRAIN=build/train/main; LIMIT=500; REPORT_LIMIT=2000
        PARITY_LIMIT=1500; FINAL_FAMILIES=() ;;
  # the accurate tier's self-check is recorded on this CPU's family only: mpnet under qemu-x86_64 ran for over 27
  # minutes on one family without finishing; other families get the wider unmeasured tolerance (int8_weights computes
  # in fp32, and the fast model with the same scheme measured its families 4.2e-7 apart)
  accurate) NAME=review-sentiment-mpnet; VERSION=${VERSION:-1.0.0}; TRAIN=$RUNS/train/accurate; LIMIT=200
            REPORT_LIMIT=500; PARITY_LIMIT=600; SKIP_ABLATIONS=1; FINAL_FAMILIES=(--families) ;;
  *) echo "RECIPE must be fast or accurate" >&2; exit 2 ;;
esac
OUT=model_artifacts/$NAME
EVAL=build/eval/$RECIPE
mkdir -p "$EVAL"

FINAL=$TRAIN/final
$PY tools/train.py --recipe "$RECIPE" --out "$TRAIN"
PARITY=(--parity-texts build/data/amazon/test.jsonl build/data/imdb/test.jsonl data/reviews/splits/eval.jsonl
        --parity-limit "$PARITY_LIMIT")
BUILD=(--checkpoint "$FINAL" --out "$OUT" --name "$NAME" --version "$VERSION" "${PARITY[@]}")
# a first build to select on (self-check answers on this CPU only: the emulated families are recorded for the last)
$PY tools/build_artifact.py "${BUILD[@]}" --families
$PY tools/evaluate.py select --model "$OUT" --limit "$LIMIT" --out "$EVAL/selection.json"
read -r STRATEGY HEAD STRIDE AGG BIAS < <($PY -c "
import json; s = json.load(open('$EVAL/selection.json')); p = s['long_text']
print(p['strategy'], p['head'], p['stride'], p['aggregate'], ','.join(map(str, s['class_bias'])))")
status=0
$PY tools/build_artifact.py "${BUILD[@]}" "${FINAL_FAMILIES[@]}" --strategy "$STRATEGY" --head "$HEAD" \
  --stride "$STRIDE" --aggregate "$AGG" --class-bias="$BIAS" || status=$?
if [ "$status" = 3 ]; then  # tools/build_artifact.py PARITY_FAILED; any other failure stops the release
  # The dev-chosen biases move more decisions next to a class boundary, where int8 and fp32 can disagree; when
  # that breaks the 99% parity gate, ship without them and record why in the selection.
  echo "the dev-chosen class biases ($BIAS) break the int8 parity gate: building without them"
  $PY -c "
import json; p = '$EVAL/selection.json'; s = json.load(open(p))
s['rejected_class_bias'] = s['class_bias']; s['class_bias'] = [0.0, 0.0, 0.0]
s['class_bias_note'] = 'dev-chosen biases broke the int8/fp32 parity gate (99% label agreement); not applied'
json.dump(s, open(p, 'w'), indent=2)"
  BIAS=0,0,0
  $PY tools/build_artifact.py "${BUILD[@]}" "${FINAL_FAMILIES[@]}" --strategy "$STRATEGY" --head "$HEAD" \
    --stride "$STRIDE" --aggregate "$AGG" --class-bias="$BIAS"
elif [ "$status" != 0 ]; then
  exit "$status"
fi
$PY tools/evaluate.py report --model "$OUT" --selection "$EVAL/selection.json" --limit "$REPORT_LIMIT" \
  --out "$EVAL/int8.json"
REPORTS=("int8=$EVAL/int8.json")
if [ "$RECIPE" = fast ]; then
  $PY tools/evaluate.py report --model "build/artifacts/$NAME-fp32" --selection "$EVAL/selection.json" \
    --limit "$REPORT_LIMIT" --out "$EVAL/fp32.json"
  REPORTS+=("fp32=$EVAL/fp32.json")
fi
if [ "${SKIP_ABLATIONS:-0}" != 1 ]; then
  PY=$PY SELECTION="$EVAL/selection.json" bash tools/ablate.sh
  for run in main no_corpus no_movies; do REPORTS+=("ablation_$run=build/eval/abl_$run.json"); done
fi
$PY tools/evaluate.py attach --model "$OUT" --selection "$EVAL/selection.json" --reports "${REPORTS[@]}"
if [ "$RECIPE" = fast ]; then
  $PY tools/portability.py --fp32 "build/artifacts/$NAME-fp32" --build-variants --out build/portability --attach "$OUT"
  # the one fp32 checkpoint the repository keeps (the accurate tier's 438 MB never enters git)
  mkdir -p checkpoints && rm -rf "checkpoints/$NAME" && cp -r "$FINAL" "checkpoints/$NAME"
fi
$PY tools/model_card.py "$OUT/manifest.json" > "$EVAL/tables.md"
echo "model rebuilt: $OUT (figures in $EVAL/tables.md; paste them into $OUT/MODEL_CARD.md)"
