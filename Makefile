# The two commands the README opens with: `make demo` and `make test`. Both set up .venv first.
# Each set of extras is installed once (a stamp file per set); `make test` adds the test extras on top.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DB ?= demo.db

.PHONY: demo test lint setup clean

$(VENV)/.installed-%: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, so the project's torch range installs nothing more.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[$*]"
	touch $@

setup: $(VENV)/.installed-dev

demo: $(VENV)/.installed-finetune
	$(BIN)/harness models make-tiny .tiny/model
	$(BIN)/harness run rag-extraction --model .tiny/model --db $(DB) --run-name demo-tiny-base --tag demo
	# Fine-tune the tiny model on the bundled product data; the base model (step 0) and every checkpoint are scored.
	$(BIN)/harness finetune harness/finetune/examples/demo.yaml --db $(DB)
	$(BIN)/harness runs list --db $(DB)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check harness suites monitors dashboards tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .tiny $(DB) checkpoints
