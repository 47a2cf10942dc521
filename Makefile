# The commands CI and the README use. `make setup` builds .venv from nothing.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test gpu-collect gpu-check gpu-check-plan lint format bench audit clean

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

# The interpreter's kernel tests only compute numbers: they run on every core first; the rest,
# which times things side by side, alone after them.
test: setup
	$(BIN)/python -m pytest -q -n auto -m interpreter
	$(BIN)/python -m pytest -q -m "not interpreter"

# CI: every GPU test must still be collected (imported, marked) where there is no GPU.
gpu-collect: setup
	$(BIN)/python -m pytest -m gpu --collect-only -q tests/gpu

# On a CUDA machine, with the Python that has its CUDA torch (not .venv): the whole GPU
# verification in one command, inside 8 minutes (docs/performance.md "The GPU check").
# WHEELS=DIR installs peer wheels (and missing deps) from a local folder, never the network.
gpu-check:
	$(PY) benchmarks/gpu_check.py $(if $(WHEELS),--wheels $(WHEELS))

gpu-check-plan:
	$(PY) benchmarks/gpu_check.py --dry-run $(if $(WHEELS),--wheels $(WHEELS))

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
