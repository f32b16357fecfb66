PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test docs bench-calql clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,mazes,metaworld]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/rewire demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples docs
	$(BIN)/pytest -q -n 2 --dist loadfile

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

bench-calql: $(STAMP)
	$(BIN)/rewire bench calql --quick --seeds 3 --json runs/bench-calql.json

clean:
	rm -rf $(VENV) runs .pytest_cache site
