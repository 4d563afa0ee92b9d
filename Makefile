# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RECORDED_AT ?= 2026-01-01T00:00:00Z

.PHONY: demo test install install-dev lint typecheck bench clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

## demo: copy the sample corpus into ./data/_kb, run the pipeline and the index, search it
demo: install
	mkdir -p data/_kb
	cp fixtures/sample/data/_kb/*.jsonl data/_kb/
	$(BIN)/distill run-all --recorded-at $(RECORDED_AT) --repo-root fixtures/sample/repo
	$(BIN)/distill index search "make the payments webhook idempotent" --top-k 5

## test: install dev extras, lint, type-check, run the whole suite
test: install-dev
	$(BIN)/ruff check distill tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/pipeline.py
