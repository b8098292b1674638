# The two commands of the README: `make run` starts the whole stack, `make test` runs the tests.
# Both create the virtual environment in .venv on first use (Python 3.11+ as $(PYTHON)).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint bench chaos install clean

run: $(STAMP)
	$(BIN)/python -m webapp.runstack

test: $(STAMP)
	scripts/test.sh

# Everything except training on the real data set and the browser tests.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not browser"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# Real validation slices when the data sets are beside the checkout, synthetic scans if not.
BENCH_DATA := $(wildcard ../shared/datasets/brain-tumor-mri/Training ../shared/datasets/brain-tumor-mri-extra/Training)
bench: $(STAMP)
	$(BIN)/python scripts/bench_pipeline.py $(if $(BENCH_DATA),--data $(BENCH_DATA))

# The fault and load suite with the full 1,000-submission run (CI runs it with 200);
# its table goes to artifacts/chaos.md.
chaos: $(STAMP)
	CHAOS_LOAD=1000 $(BIN)/python -m pytest tests/chaos -m chaos -p no:cacheprovider

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11+ is needed; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[ml,dev]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) var artifacts
