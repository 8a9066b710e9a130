# Two commands on a fresh machine: `make run` and `make test` (both create .venv if missing).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint lint-imports bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first: 2.13.0 is the CPU wheel on these machines; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/coordbench run

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP) lint-imports
	$(BIN)/ruff check coordbench tests bench scripts
	$(BIN)/ruff format --check coordbench tests bench scripts

# the package layers and the torch-only-in-backends rule ([tool.importlinter] in pyproject.toml);
# --no-cache: no .import_linter_cache folder left in the checkout (the check takes a second)
lint-imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/python bench/scoring_speed.py
	$(BIN)/python bench/eval_e2e_speed.py

clean:
	rm -rf $(VENV) output .pytest_cache
