# Lineage's two commands: `make run` and `make test`. Everything else is a step they call.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Every pip call after torch holds torch at the CPU build: a looser pin pulls gigabytes of CUDA wheels.
PIP := $(VENV)/bin/pip install --quiet --constraint constraints.txt
STAMP := $(VENV)/.installed

.PHONY: run test install lint migrate seed serve bench clean system-packages

$(STAMP): pyproject.toml constraints.txt contracts/package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip wheel setuptools
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(PIP) --editable '.[dev]'
	npm ci --prefix contracts --no-audit --no-fund --loglevel=error
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

## Run the platform on its embedded defaults (SQLite, filesystem broker, in-process chain, bundled model).
run: seed
	@echo "Lineage on http://127.0.0.1:8000 (web, worker, beat, model server, chain); Ctrl-C stops everything."
	HF_HUB_OFFLINE=1 $(VENV)/bin/honcho start -f Procfile.dev

lint: install
	$(VENV)/bin/ruff check .

## Install (Chromium and a C compiler too, when missing), lint and run the whole suite (unit, integration,
## browser). Uses DATABASE_URL when set. The system check comes first, so a machine that lacks a package and
## cannot install it (not root) stops at once with the apt-get command, before minutes of pip.
test: system-packages lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest

system-packages:
	bash .ci/system-packages

bench: install
	for b in bench/*.py; do HF_HUB_OFFLINE=1 $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) var staticfiles
