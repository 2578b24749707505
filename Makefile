# make test: create .venv if missing, install galtools + test extra + every plugin, ruff, pytest.
# make demo: the whole pipeline on built-in data (see README).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := $(wildcard plugins/*/setup.py)
STAMP := $(VENV)/.galtools-installed

.PHONY: install test lint pytest man demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python setup.py $(PLUGINS)
	$(BIN)/python -m pip install -q -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

pytest: install
	$(BIN)/python -m pytest -q -ra tests

test: lint pytest

man: install
	$(BIN)/python -m galtools.manpage man

demo: install
	bash examples/demo.sh

bench: install
	for f in tests/benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
