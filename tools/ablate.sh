#!/usr/bin/env bash
# Ablations of the training recipe, at a quarter of the data to fit a 2-core budget (5-10 minutes each):
#   main       the reduced recipe with our customer-review corpus (the reference for the two others)
#   no_corpus  the same without our corpus: what the corpus adds
#   no_movies  the same without any movie source (leave-one-domain-out): tested on the movie splits it never saw
# Each run is exported and evaluated in fp32 with the shipped artifact's long-text policy and biases (the settings
# come from SELECTION, a selection.json as written by `tools/evaluate.py select`, by default the one recorded in the
# shipped manifest); ablations never ship, so the int8 parity gate is not part of them. Reports go to
# build/eval/abl_<run>.json; `tools/evaluate.py attach` records them and `tools/model_card.py` tabulates them.
# Usage: [SELECTION=build/eval/selection.json] tools/ablate.sh [RUN ...]   (default runs: main no_corpus no_movies)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUNS=("$@")
[ ${#RUNS[@]} -gt 0 ] || RUNS=(main no_corpus no_movies)
MOVIES=imdb,pang_lee,rt_snippets,movie_snippets
SCALE=${ABLATION_SCALE:-0.25}
LIMIT=${ABLATION_LIMIT:-1000}
mkdir -p build/eval
if [ -z "${SELECTION:-}" ]; then
  SELECTION=build/eval/selection-shipped.json
  $PY -c "
import json, sys
manifest = json.load(open('model_artifacts/review-sentiment-minilm/manifest.json'))
json.dump(manifest['evaluation']['selection'], open(sys.argv[1], 'w'), indent=2)" "$SELECTION"
fi
for run in "${RUNS[@]}"; do
  case $run in
    main) flags=(--corpus-repeats 2) ;;
    no_corpus) flags=(--no-corpus) ;;
    no_movies) flags=(--corpus-repeats 2 --exclude "$MOVIES") ;;
    *) echo "unknown ablation: $run (main, no_corpus, no_movies)" >&2; exit 2 ;;
  esac
  $PY tools/train.py --out "build/train/abl_$run" --scale "$SCALE" "${flags[@]}"
  $PY tools/build_artifact.py --checkpoint "build/train/abl_$run/final" --out "build/artifacts/abl_$run" \
    --fp32-out "build/artifacts/abl_$run-fp32" --parity-texts data/reviews/splits/eval.jsonl --families \
    || echo "ablation $run: int8 parity gate failed (the fp32 export it compares is complete)"
  $PY tools/evaluate.py report --model "build/artifacts/abl_$run-fp32" --selection "$SELECTION" \
    --limit "$LIMIT" --out "build/eval/abl_$run.json"
done
