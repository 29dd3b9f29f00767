# Capgov: `make demo` serves a demo organisation; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test install lint format serve worker run-prod bench bench-load bench-faults clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the dependency list or the constraints change.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# E-mailed links (approvals, budgets) point at the address the demo serves on.
demo: export CAPGOV_BASE_URL ?= http://$(HOST):$(PORT)
demo: install
	$(BIN)/python manage.py migrate --no-input -v0
	$(BIN)/python manage.py install_schedules
	$(BIN)/python manage.py seed_demo
	@echo ""
	@echo "  Capgov is starting at http://$(HOST):$(PORT)/  (sign in as fiona / capgov-demo; Ctrl-C to stop)"
	@echo "  E-mails are printed below (console backend); their links open this server."
	@echo ""
	DJANGO_DEBUG=$${DJANGO_DEBUG:-false} $(BIN)/python manage.py runserver $(HOST):$(PORT) --noreload

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run -v0
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

serve: install
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# Both queues (imports and syncs are routed to the bulk one), and beat, in one process.
worker: install
	$(BIN)/celery -A governance worker --beat --loglevel=INFO \
		-Q $${CAPGOV_DEFAULT_QUEUE:-celery},$${CAPGOV_BULK_QUEUE:-bulk}

# Production settings on this machine: gunicorn, a worker per queue and beat against the local
# PostgreSQL and Redis (DATABASE_URL / CELERY_BROKER_URL, or their local defaults); migrates
# first. Ctrl-C stops everything. See "Running in production" in README.md.
run-prod: install
	$(BIN)/python deploy/run_prod.py --host $(HOST) --port $(PORT)

bench: install
	$(BIN)/python bench/ingest.py

# 50 signed-in users on gunicorn (production settings) over >= 10M cost rows in the local
# PostgreSQL (database capgov_load, built once; BENCH_ARGS=--rebuild to start over).
bench-load: install
	$(BIN)/python bench/load.py $(BENCH_ARGS)

# Redis stopped, PostgreSQL restarted under an import, a worker killed mid-sync: on private
# servers it starts itself (never the machine's shared PostgreSQL or Redis).
bench-faults: install
	$(BIN)/python bench/faults.py $(BENCH_ARGS)

clean:
	rm -rf var staticfiles
