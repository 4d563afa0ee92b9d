# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_HOME ?= /tmp/distill-demo
RECORDED_AT ?= 2026-01-01T00:00:00Z

.PHONY: demo test install install-dev lint typecheck bench clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

## demo: run the pipeline on the bundled sample corpus and print the summary
demo: install
	rm -rf $(DEMO_HOME) && mkdir -p $(DEMO_HOME)/data
	cp -r fixtures/sample/data/_kb $(DEMO_HOME)/data/_kb
	$(BIN)/distill collect --home $(DEMO_HOME) --recorded-at $(RECORDED_AT)
	$(BIN)/distill score --home $(DEMO_HOME) --recorded-at $(RECORDED_AT)
	$(BIN)/distill export all --home $(DEMO_HOME) --recorded-at $(RECORDED_AT) --repo-root fixtures/sample/repo
	$(BIN)/distill recon --home $(DEMO_HOME)

## test: install dev extras, lint, type-check, run the whole suite
test: install-dev
	$(BIN)/ruff check distill tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/pipeline.py
