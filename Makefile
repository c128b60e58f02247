# ClusterCockpit in Python: `make demo` and `make test` are all a new user needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
PKGS := libs/cccommon services/metricstore services/collector services/backend
PYPROJECTS := pyproject.toml $(addsuffix /pyproject.toml,$(PKGS)) $(wildcard libs/cccommon/setup.py libs/cccommon/src/cccommon/*.c)

.PHONY: setup test demo bench lint clean

setup: $(STAMP)

$(STAMP): $(PYPROJECTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing the project into $(VENV) (editable, with dev extras)"
	@$(PIP) install -q --disable-pip-version-check -e ".[dev]" $(addprefix -e ,$(PKGS))
	@touch $(STAMP)

test: setup
	@bash scripts/test.sh

demo: setup
	@bash scripts/demo.sh

bench: setup
	@bash scripts/bench.sh

lint: setup
	@$(VENV)/bin/ruff check libs services tests $(wildcard bench scripts)

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
