# Two commands on a fresh machine: `make reproduce` (run every experiment, build the report)
# and `make test` (ruff, the project's own tests, then the experiments). Both create .venv first.
# More: `make free-threaded` (a free-threaded CPython and its GIL twin), `make matrix` (the quick
# suite on every interpreter, one report), `make scaling` (full-scale scaling curves on every interpreter),
# `make stability RUNS=n LOAD=k`, `make lint`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SCALE ?= quick
PYTEST_ARGS ?=
RUNS ?= 8
LOAD ?= 0
# Measuring and compiling wait for each other through one lock file (flock), so that a benchmark
# run never shares the 2 cores with a compiler or with another run.
export BENCH_LOCK ?= /tmp/bench.lock
LOCKED := $(if $(shell command -v flock),flock $(BENCH_LOCK))
REQUIREMENTS := requirements.txt requirements-optional.txt requirements-dev.txt $(wildcard requirements-report.txt)

.PHONY: venv test lint reproduce report publish free-threaded matrix scaling stability clean

venv: $(VENV)/.installed

# Experiments, report and development requirements in one venv on the default interpreter;
# the optional pieces one by one (a failed one is reported and its experiments skip).
$(VENV)/.installed: $(REQUIREMENTS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt $(addprefix -r ,$(filter-out requirements.txt requirements-optional.txt,$(REQUIREMENTS)))
	$(PY) tools/install_optional.py -c requirements.txt
	@touch $@

# ruff, then the project's tests (fast checks of report.py and the helpers), then every experiment.
# Their benchmark JSON goes to build/ so that results/ keeps only runs meant for publishing.
test: venv lint
	$(LOCKED) $(PY) -m pytest tests experiments --benchmark-storage=build/test-runs $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

# Every experiment at the chosen scale, saved under results/<environment>/, then the report.
reproduce: venv
	$(LOCKED) $(PY) -m pytest experiments --scale=$(SCALE) $(PYTEST_ARGS); status=$$?; \
	$(PY) report.py && exit $$status

report: venv
	$(PY) report.py

# The report over results/, plus its verdict table in README.md: what a reference run publishes.
publish: venv
	$(PY) report.py --readme README.md

# A free-threaded CPython (PYTHON_FT=..., python3.13t/3.14t on PATH, or built with its GIL twin
# into .interpreters/, which `make clean` keeps), then the matrix venvs of the built ones. Each
# compile step takes BENCH_LOCK (tools/free_threaded.py locks per step, so not around it here).
free-threaded: venv
	$(PY) tools/free_threaded.py
	$(LOCKED) $(PY) -m nox --install-only $(if $(PYTHONS),,--tags free-threaded)

# The quick suite once per interpreter (PYTHONS="python3.12 /path/python3.13t" or all found),
# each into results/<environment>/, then one report over all of them.
matrix: venv
	$(LOCKED) $(PY) -m nox -- $(PYTEST_ARGS); status=$$?; \
	$(PY) report.py && exit $$status

# The scaling curves: the experiments marked `scaling` at full scale (k = 2, 4, ... up to the CPUs and one
# oversubscribed point) once per interpreter, each into results/full-scale/<environment>/, then the report
# (results/scaling.md). Full-scale columns never replace the quick verdicts.
scaling: venv
	$(LOCKED) $(PY) -m nox -- --scale=full -m scaling $(PYTEST_ARGS); status=$$?; \
	$(PY) report.py && exit $$status

# The quick suite RUNS times with LOAD busy processes beside it, into build/stability/; then
# results/stability.md and results/stability.csv: each claim's verdict per run, flips, undecided.
stability: venv
	$(LOCKED) $(PY) tools/stability.py --runs $(RUNS) --load $(LOAD) -- $(PYTEST_ARGS)

clean:
	rm -rf build .pytest_cache
