# Each target bootstraps a local virtual environment on first use: torch first (pinned), then
# this package with its extras. On Linux, PyPI's torch is the CUDA build (several GB); for the
# CPU build, point TORCH_INDEX at PyTorch's CPU index:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: test test-all venv clean demo docs mutation lint

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

## Run the default test suite (fast tests; slow and network tests excluded).
test: venv
	$(PY) -m pytest

## Lint with ruff (the rules in pyproject.toml's [tool.ruff.lint]).
lint: venv
	$(PY) -m pip install --quiet -e ".[lint]"
	$(VENV)/bin/ruff check brainjepa_sk tests benchmarks examples docs tools

## Run every test that needs no network, slow ones included.
test-all: venv
	$(PY) -m pytest -m "not network"

## Run the end-to-end demo: pretraining on synthetic data vs random encoders and tangent FC (~5 min, 2 cores).
demo: venv
	$(PY) examples/demo.py

## Build the HTML documentation (runs the gallery examples; warnings are errors) into docs/_build/html.
docs: venv $(VENV)/.docs-installed
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

$(VENV)/.docs-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

## Mutation testing of brainjepa_sk/nn/, brainjepa_sk/train/ and the estimators ([tool.mutmut] in
## pyproject.toml); not part of CI: about 3,100 mutants, many hours on 2 cores (tools/mutmut_sample.py
## draws a seeded sample). One torch thread per worker. Survivors: .venv/bin/mutmut results
mutation: venv
	$(PY) -m pip install --quiet -e ".[mutation]"
	rm -rf mutants
	OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children $(shell nproc)
	$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache mutants
