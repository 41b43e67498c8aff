# make demo: set up, then run the whole report against the bundled sample service.
# make test: set up (with test extras), lint (import contracts, ruff, mypy), then run the test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES_DEMO := chromium
APT_PACKAGES_TEST := chromium poppler-utils

.PHONY: setup setup-test system-deps system-deps-test demo lint test test-all bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,speed]'
	touch $@

# Installs Debian packages when missing; when not root, stops with the exact command to run.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing. Run as root: apt-get install -y --no-install-recommends$$missing"; exit 1; \
	  fi; \
	fi
endef

system-deps:
	$(call apt_install,$(APT_PACKAGES_DEMO))

system-deps-test:
	$(call apt_install,$(APT_PACKAGES_TEST))

setup: system-deps $(VENV)/.installed

setup-test: system-deps-test $(VENV)/.installed

demo: setup
	$(VENV)/bin/stability demo

# The design's checks, each failing the build: import contracts (layers, library never imports the demo,
# pure core does no I/O; see [tool.importlinter]), ruff lint + format check, mypy (strict on the pure core).
lint: setup-test
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Two phases: everything in parallel on 2 workers, then the latency-measuring tests alone
# (a performance comparison run next to other tests would measure the tests).
# pytest exit 5 means "no tests collected": that is a failure here, never a green run.
# make test leaves out the extended tests (under 10 minutes on 2 cores); make test-all runs everything.
TEST_SELECT ?= and not extended

test: setup-test lint
	@$(VENV)/bin/pytest -n 2 -q -p no:cacheprovider -m "not perf $(TEST_SELECT)"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; \
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "perf $(TEST_SELECT)"; rc2=$$?; \
	if [ $$rc2 -eq 5 ]; then echo "pytest collected no perf tests: failing"; exit 1; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$rc2

test-all:
	$(MAKE) test TEST_SELECT=

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
