# Speakup developer commands. `make run` and `make test` are the only two a newcomer needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test test-pg install assets chromium lint bench clean

$(VENV)/.stamp-install: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $@

install: $(VENV)/.stamp-install

node_modules/.stamp-install: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

assets: node_modules/.stamp-install
	node scripts/build-assets.mjs

## run: install everything, prepare the SQLite database and demo data, serve on 127.0.0.1
run: install assets
	$(PY) -m speakup.dev_secrets
	$(FLASK) --app speakup db upgrade
	$(FLASK) --app speakup demo load
	$(FLASK) --app speakup demo stats
	SPEAKUP_ENV=development $(FLASK) --app speakup run --host $(HOST) --port $(PORT)

## chromium: Debian chromium for the browser tests (installed when missing and we are root)
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: install Debian's chromium package (sudo apt-get install chromium)" >&2; exit 1; \
	  fi; \
	fi

## test: install what the tests need and run the whole suite (SQLite unless SPEAKUP_TEST_DATABASE_URL is set)
test: install assets chromium
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check speakup tests $(wildcard bench scripts/*.py)
	$(VENV)/bin/ruff format --check speakup tests $(wildcard bench)
	$(VENV)/bin/mypy speakup
	$(VENV)/bin/bandit -q -r speakup

## bench: submission throughput vs raw Argon2id, and a 1,000,000-fact release vs plain GROUP BY
bench: install assets
	$(PY) bench/submission_throughput.py
	$(PY) bench/release_statistics.py

clean:
	rm -rf $(VENV) node_modules speakup/static/dist .pytest_cache .hypothesis
