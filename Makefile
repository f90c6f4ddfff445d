# `make demo` and `make test` do all set-up on a fresh machine: a virtual environment with pinned dependencies.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The shared CIFAKE copy beside the checkout is the default data root when it exists.
SYNTHGAP_DATA_ROOT ?= $(wildcard $(abspath ../shared/data))
export SYNTHGAP_DATA_ROOT

.PHONY: install test demo bench gpu-check lint clean

install: $(BIN)/.installed

# One pip command for everything (torch, torchvision and the rest), so no later install downgrades a shared dependency.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

test: install
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/synthgap demo --out synthgap-demo

bench: install
	$(BIN)/python benchmarks/run.py

# The GPU paths on a CUDA machine, on fake images it writes itself (no CIFAKE, no network); a Markdown table.
gpu-check: install
	$(BIN)/python benchmarks/gpu_check.py

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) synthgap-demo .pytest_cache
