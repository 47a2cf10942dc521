# The commands CI and the README use. `make setup` builds .venv from nothing.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test lint format bench audit clean

$(BIN)/normbench: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# On a machine without an NVIDIA GPU take the CPU build of torch (torch==2.13.0 resolves to it
	# here) before anything can pull a multi-GB CUDA wheel. A GPU user keeps their own torch.
	if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(BIN)/python -c "import torch" 2>/dev/null; then \
		$(BIN)/pip install -q torch==2.13.0 || exit 1; \
	fi
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/normbench

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check normbench tests benchmarks examples
	$(BIN)/ruff format --check normbench tests benchmarks examples

format: setup
	$(BIN)/ruff format normbench tests benchmarks examples
	$(BIN)/ruff check --fix normbench tests benchmarks examples

bench: setup
	$(BIN)/normbench speed

audit: setup
	$(BIN)/normbench audit --arch sm_80,sm_90

clean:
	rm -rf $(VENV) build *.egg-info
