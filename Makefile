# Algostore: `make run` serves the store, `make test` runs the whole suite.
# Both set everything up first, from a fresh clone, as root on Debian.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REQS_HASH := $(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQS_HASH)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup system migrate demo worker beat bench clean

run: setup
	DJANGO_SETTINGS_MODULE=marketplace.settings.local $(BIN)/python manage.py migrate --noinput
	DJANGO_SETTINGS_MODULE=marketplace.settings.local $(BIN)/python manage.py collectstatic --noinput -v0
	DJANGO_SETTINGS_MODULE=marketplace.settings.local $(BIN)/python manage.py seed_demo
	@echo "Serving Algostore on http://$(HOST):$(PORT)"
	DJANGO_SETTINGS_MODULE=marketplace.settings.local HOST=$(HOST) PORT=$(PORT) \
		$(BIN)/gunicorn -c deploy/gunicorn.conf.py marketplace.asgi:application

test: setup
	bash scripts/test.sh

setup: system $(STAMP)

system:
	@bash scripts/install-system.sh

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(BIN)/python -m pip install --quiet -r requirements-dev.txt 2>&1 \
		| { grep -v "^WARNING: Location .* is ignored" || true; }
	@rm -f $(VENV)/.installed-* && touch $@

worker: setup
	PYTHONPATH=$(CURDIR) CELERY_CUSTOM_WORKER_POOL=execution.pool:TaskPool \
	  $(BIN)/celery -A marketplace worker -l info -Q default,builds,execution,billing -P custom -c 8

beat: setup
	$(BIN)/celery -A marketplace beat -l info -s var/celerybeat-schedule

bench: setup
	$(BIN)/python bench/auth_latency.py

clean:
	rm -rf $(VENV) var
