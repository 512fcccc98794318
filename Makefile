# Parvis: `make run` brings the whole platform up; `make test` runs the whole suite. `make help` lists all.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PARVIS_DATA_DIR ?= var

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "setuptools>=68,<81" wheel
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install Parvis with its test tools

JS_DEPS := tests/js/node_modules/.package-lock.json

$(JS_DEPS): tests/js/package.json tests/js/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the client checks (Debian: apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix tests/js --no-audit --no-fund --silent

js-deps: $(JS_DEPS) ## the JavaScript parsers the tests read our outputs with (ical.js), from the npm registry

system-deps: ## Debian packages the tests need (promtool, docker-compose, chromium): installed if missing
	@bash infra/scripts/system-deps.sh

run: install ## run everything: embedded database, RabbitMQ check, 5 services, gateway, demo data
	exec $(BIN)/parvis up

test: install system-deps js-deps ## run the whole test suite (unit, nameko, integration, end-to-end)
	$(BIN)/python -m pytest tests/unit tests/security tests/integration tests/e2e
	$(BIN)/python -m pytest -p no:cacheprovider tests/nameko

unit: install system-deps js-deps ## only the fast, pure unit tests
	$(BIN)/python -m pytest tests/unit

schema: install ## regenerate gateway/schema.graphql and contracts/asyncapi.yaml
	$(BIN)/parvis schema

bench: install ## run every benchmark under bench/ (figures printed, not asserted)
	@for b in bench/*.py; do case $$b in */__init__.py) continue;; esac; echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: ## remove the virtualenv and local data (var/)
	rm -rf $(VENV) var .pytest_cache

.PHONY: help install js-deps system-deps run test unit schema bench clean
