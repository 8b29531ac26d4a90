# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ow needs Python >= 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,s3,train]'
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -p no:randomly

demo: setup
	$(BIN)/python examples/demo.py

lint: setup
	$(BIN)/ruff check ow tests bench examples
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python bench/bench_publish.py

clean:
	rm -rf $(VENV) .pytest_cache
