# Two commands are all the set-up a fresh machine needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= all
DEMO_DIR ?= demo_study

.PHONY: demo test lint venv bytecode clean-demo bench bench-ceinms ceinms-deps

venv: $(STAMP)

# The stamp depends on pyproject.toml only, so a second run does not reinstall.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Byte-compile the package (only what changed). pip does this for an ordinary install, not for
# an editable one; where Python may not write bytecode as it imports (PYTHONDONTWRITEBYTECODE,
# a read-only clone), every workflow job would otherwise compile each module it imports again
# (about 3 ms each; 9 s of CPU over the demo study's 100 jobs).
bytecode: $(STAMP)
	@$(PY) -m compileall -q pipeline

demo: bytecode
	@test -d $(DEMO_DIR) || $(VENV)/bin/nms-pipeline demo-study $(DEMO_DIR)
	$(VENV)/bin/nms-pipeline validate-study $(DEMO_DIR)
	$(VENV)/bin/nms-pipeline run $(DEMO_DIR) --cores $(CORES)
	@echo "Report: $(DEMO_DIR)/results/report.html"

test: bytecode
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m pytest -q tests

# ruff, mypy on the package and `snakemake --lint` on a template study: all must be clean.
lint: $(STAMP)
	$(VENV)/bin/ruff check pipeline tests
	$(VENV)/bin/mypy pipeline
	$(PY) -m pytest -q tests/workflow/test_lint.py -k lint

bench: bytecode
	$(PY) -m pipeline bench model --json bench_model.json
	$(PY) -m pipeline bench calibration --json bench_calibration.json

# Debian packages CEINMS 0.9 needs to build (bench ceinms builds it once, cached).
ceinms-deps:
	@command -v xsdcxx >/dev/null && test -f /usr/include/xercesc/util/XercesVersion.hpp && \
	  test -f /usr/include/boost/filesystem.hpp || \
	  (apt-get update && apt-get install -y cmake g++ libxerces-c-dev xsdcxx \
	   libboost-filesystem-dev libboost-system-dev)

bench-ceinms: bytecode ceinms-deps
	$(PY) -m pipeline bench ceinms --json bench_ceinms.json

clean-demo:
	rm -rf $(DEMO_DIR)
