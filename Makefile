# Two commands on a fresh machine: `make reproduce` (run every experiment, build the report)
# and `make test` (the project's own tests plus the experiments). Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SCALE ?= quick
PYTEST_ARGS ?=

.PHONY: venv test reproduce report publish clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

# The project's tests: fast checks of report.py and the helpers, then every experiment.
# Their benchmark JSON goes to build/ so that results/ keeps only runs meant for publishing.
test: venv
	$(PY) -m pytest tests experiments --benchmark-storage=build/test-runs $(PYTEST_ARGS)

# Every experiment at the chosen scale, saved under results/, then the report.
reproduce: venv
	$(PY) -m pytest experiments --scale=$(SCALE) $(PYTEST_ARGS); status=$$?; \
	$(PY) report.py && exit $$status

report: venv
	$(PY) report.py

# The report over results/, plus its verdict table in README.md: what a reference run publishes.
publish: venv
	$(PY) report.py --readme README.md

clean:
	rm -rf build .pytest_cache
