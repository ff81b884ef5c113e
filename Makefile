# Two commands set up a fresh machine:
#   make run    virtualenv + .env of development defaults + install + migrate + serve on
#               http://127.0.0.1:8000 (SQLite, in-memory layer), with the background worker and
#               the job scheduler beside it
#   make test   virtualenv + dev install + the whole test suite
#   make check  the static checks CI runs before the tests (lint, types, migrations)
#   make demo-links  with `make run` serving: a demo app and its tests, linked (docs/walkthrough.md)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

# `make run` is development: DEBUG on unless the environment says otherwise.
run: export DEBUG ?= True

.PHONY: run test install install-dev migrate check clean demo-links

# Development defaults for every manage.py command, not only for the processes `make run` starts
# (settings.py reads .env; the real environment wins). Written once: a .env of yours is kept.
.env:
	@printf '%s\n' \
	  '# Development settings, written by `make run` because no .env was here; edit freely, it is' \
	  '# never overwritten. manage.py and the server read it; the real environment wins over it.' \
	  '# SECRET_KEY signs sessions and the demo token of this checkout only. Production sets its' \
	  '# own SECRET_KEY and DEBUG=False (docker-compose forces DEBUG off; see README, Environment).' \
	  'DEBUG=True' \
	  "SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > $@
	@echo "Wrote .env (development defaults: DEBUG=True and a new SECRET_KEY)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

# The legacy tracker (rigidanalytics-tracker 2.0.5, published, with a Flask < 2.3) in a virtualenv
# of its own, for the test that drives it (tracking/tests/test_ingest_queue.py).
SEED_TRACKER_VENV := .venv-seed-tracker
$(SEED_TRACKER_VENV)/.installed: tracking/tests/seed_tracker/requirements.txt
	$(PYTHON) -m venv $(SEED_TRACKER_VENV)
	$(SEED_TRACKER_VENV)/bin/pip install --quiet -r tracking/tests/seed_tracker/requirements.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev $(SEED_TRACKER_VENV)/.installed

migrate: install .env
	$(BIN)/python manage.py migrate --noinput

# The web server, the notification worker and the job scheduler, together (see Procfile).
run: .env migrate
	@echo "Serving on http://$(HOST):$(PORT)/  In another shell: $(BIN)/python manage.py createsuperuser (a login),"
	@echo "  $(BIN)/python manage.py demo$(if $(filter-out 127.0.0.1:8000,$(HOST):$(PORT)), --url http://$(HOST):$(PORT)) (demo data in every area)"
	PATH="$(CURDIR)/$(BIN):$$PATH" MONITOR_HOST=$(HOST) MONITOR_PORT=$(PORT) $(BIN)/honcho start

# With `make run` serving in another shell: the Flask shop of examples/linked_demo/ (OpenTelemetry +
# the request tracker) and its pytest suite (the tm_reporter plugin, one test failing), then the
# pages that link them (docs/walkthrough.md). The app and its tests need the dev tools.
demo-links: $(VENV)/.installed-dev .env
	$(BIN)/python manage.py demo_links --url http://$(HOST):$(PORT)

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Static checks; CI (.ci/run) runs them before the tests and fails on any finding. ruff: lint and
# import order; mypy: the pure modules and the clients (both configured in pyproject.toml);
# Django's system checks; and no model change without its migration. The manage.py commands
# run on the test settings' footing: no .env, DEBUG on for its development SECRET_KEY.
check: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	ENV_FILE= DEBUG=True $(BIN)/python manage.py check
	ENV_FILE= DEBUG=True $(BIN)/python manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) $(SEED_TRACKER_VENV) staticfiles .pytest_cache
