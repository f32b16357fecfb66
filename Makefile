PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench-calql clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rewire demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/pytest -q

bench-calql: $(STAMP)
	$(BIN)/rewire bench calql --quick --seeds 3 --json runs/bench-calql.json

clean:
	rm -rf $(VENV) runs .pytest_cache
