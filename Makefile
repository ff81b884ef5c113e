# Two commands set up a fresh machine:
#   make run    virtualenv + install + migrate + serve on http://127.0.0.1:8000 (SQLite, in-memory
#               layer), with the background worker and the job scheduler beside it
#   make test   virtualenv + dev install + the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

# `make run` is development: DEBUG on unless the environment says otherwise.
run: export DEBUG ?= True

.PHONY: run test install install-dev migrate check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(BIN)/python manage.py migrate --noinput

# The web server, the notification worker and the job scheduler, together (see Procfile).
run: migrate
	@echo "Serving on http://$(HOST):$(PORT)/  (create a login with: $(BIN)/python manage.py createsuperuser)"
	PATH="$(CURDIR)/$(BIN):$$PATH" MONITOR_HOST=$(HOST) MONITOR_PORT=$(PORT) $(BIN)/honcho start

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: install
	$(BIN)/python manage.py check

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
