# The two commands of the README. Each creates .venv when it is missing, installs cnnlab into it, then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cnnlab-installed

.PHONY: demo test lint clean bench

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cnnlab needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cnnlab train

test: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadgroup  # a group (the Ray tests) stays in one process

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

# cnnlab against torchvision/timm (about 20 minutes on 2 cores: three parity runs); the text also goes to benchmarks/latest.txt
bench: $(STAMP)
	@mkdir -p benchmarks
	$(BIN)/cnnlab bench --out benchmarks/latest.json | tee benchmarks/latest.txt

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
