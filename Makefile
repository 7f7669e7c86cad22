# askue — the commands a user needs. Each target bootstraps what it uses.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.askue-installed

.PHONY: demo test bench lint deps venv assets clean help

help:
	@echo "make demo   - start PostgreSQL, mosquitto, a simulated fleet, gateways and the head-end (http://127.0.0.1:8000)"
	@echo "make test   - run every test (real PostgreSQL, mosquitto and meter simulators)"
	@echo "make bench  - run the benchmarks and write BENCHMARKS.md and bench-results/results.json"
	@echo "make lint   - ruff"
	@echo "TimescaleDB: used wherever it is installed; TIMESCALEDB_SOURCE=<timescaledb-X.Y.Z.tar.gz> builds it"

# TIMESCALEDB_SOURCE (a TimescaleDB source release) builds and installs the extension when missing.
deps:
	@TIMESCALEDB_SOURCE="$(TIMESCALEDB_SOURCE)" bash scripts/bootstrap-system.sh $(SYSTEM_EXTRAS)

$(STAMP): pyproject.toml setup.py requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip setuptools wheel
	@$(PY) -m pip install -q -r requirements.lock
	@$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

ASSETS := headend/web/static/vendor/leaflet/leaflet.js

# Map scripts (Leaflet) fetched with npm at build time and served by the head-end itself.
$(ASSETS): scripts/fetch-web-assets.sh
	@bash scripts/fetch-web-assets.sh >/dev/null

assets: $(ASSETS)

demo: SYSTEM_EXTRAS = node
demo: deps venv assets
	$(VENV)/bin/askue demo

# Browser tests drive Debian's chromium (never a downloaded browser).
test: SYSTEM_EXTRAS = node chromium
test: deps venv assets
	bash scripts/run-tests.sh

bench: deps venv
	$(PY) -m bench.run $(BENCH)

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .askue build *.egg-info
