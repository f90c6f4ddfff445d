# `make demo` and `make test` do all set-up on a fresh machine: a virtual environment with pinned dependencies.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The shared CIFAKE copy beside the checkout is the default data root when it exists.
SYNTHGAP_DATA_ROOT ?= $(wildcard $(abspath ../shared/data))
export SYNTHGAP_DATA_ROOT

.PHONY: install test demo bench gpu-check gpu-kit lint clean

install: $(BIN)/.installed

# One pip command for everything (torch, torchvision and the rest), so no later install downgrades a shared dependency.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# One worker per core: each test computes on one thread (tests/conftest.py), and worksteal moves queued tests off a
# worker held by a long one (the kill-and-resume tests take minutes on two cores).
test: install
	$(BIN)/python -m pytest -q -n auto --dist worksteal

demo: install
	$(BIN)/synthgap demo --out synthgap-demo

bench: install
	$(BIN)/python benchmarks/run.py

# The GPU paths on a CUDA machine, on fake images it writes itself (no CIFAKE, no network); a Markdown table.
gpu-check: install
	$(BIN)/python benchmarks/gpu_check.py

# The wheels the GPU machine's image lacks for the check (it has torch, torchvision, transformers, timm, peft, pandas,
# pyarrow, ...; not pydantic, diffusers, datasets or submitit), for its Python, one version each, without dependencies:
# `make gpu-kit` here, then on the GPU machine `scripts/gpu-check` with .gpu-kit/ carried along (docs/gpu.md).
GPU_KIT_PYTHON ?= 3.12
GPU_KIT_PACKAGES = pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5 \
	diffusers==0.42.1 importlib-metadata==10.2.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 submitit==1.5.4
gpu-kit:
	rm -rf .gpu-kit.tmp && mkdir -p .gpu-kit.tmp
	$(PYTHON) -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		--python-version $(GPU_KIT_PYTHON) --implementation cp --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 --platform any -d .gpu-kit.tmp $(GPU_KIT_PACKAGES)
	echo $(GPU_KIT_PYTHON) > .gpu-kit.tmp/python-version
	rm -rf .gpu-kit && mv .gpu-kit.tmp .gpu-kit
	du -sh .gpu-kit

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) synthgap-demo .pytest_cache .gpu-kit
