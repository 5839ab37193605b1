# Two commands matter: `make run` and `make test`. Both create the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test test-all lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	@$(BIN)/jukisim verify --out var/verify/all; status=$$?; \
	 echo "report: var/verify/all/report.html (also report.json, junit.xml)"; exit $$status

demo: $(STAMP)
	$(BIN)/jukisim demo

lint: $(STAMP)
	$(BIN)/ruff check $(wildcard simulator scenarios synthetic_data tests benchmarks load tools)

typecheck: $(STAMP)
	$(BIN)/mypy simulator

test: lint typecheck
	$(BIN)/pytest

# Everything, slow suites included (CI runs this).
test-all: lint typecheck
	$(BIN)/pytest -m ''

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
