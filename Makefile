# Each target creates its own virtual environment (.venv) on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint format bench clean

LOG := $(VENV)/install.log

# The install's own output goes to $(LOG); it is shown only when a step fails.
$(STAMP): pyproject.toml
	@echo "provwh: installing provwh[dev] into $(VENV) (first run only; log: $(LOG))"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip > $(LOG) 2>&1 || (cat $(LOG); exit 1)
	@$(PY) -m pip install -q -e ".[dev]" >> $(LOG) 2>&1 || (cat $(LOG); exit 1)
	@# torch's CPU build only (PyPI's default build pulls gigabytes of CUDA packages); where no
	@# CPU build can be had, the torch tests are skipped and say so.
	@$(PY) -m pip install -q "torch==2.13.0+cpu" >> $(LOG) 2>&1 || echo "provwh: torch CPU build unavailable; torch tests will be skipped"
	@touch $(STAMP)
	@echo "provwh: installed"

demo: $(STAMP)  ## capture a small workflow and query it on the embedded default (DuckDB)
	@mkdir -p build/demo
	@cd build/demo && ../../$(PY) ../../examples/quickstart.py
	@echo "(that folder is build/demo; the provwh command is $(VENV)/bin/provwh, or run"
	@echo " 'source $(VENV)/bin/activate' first)"

test: $(STAMP)  ## the whole test suite
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check provwh tests benchmarks examples
	$(VENV)/bin/ruff format --check provwh tests benchmarks examples
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format provwh tests benchmarks examples
	$(VENV)/bin/ruff check --fix provwh tests benchmarks examples

bench: $(STAMP)
	$(PY) benchmarks/capture.py
	$(PY) benchmarks/telemetry.py
	$(PY) benchmarks/flows.py
	$(PY) benchmarks/load.py --quick
	$(PY) benchmarks/query.py --quick

clean:
	rm -rf build .pytest_cache .ruff_cache
