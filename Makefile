# Every target installs what it needs: a virtual environment with the pinned packages,
# then Delta's jars resolved once from Maven Central into .local/ivy (offline after that).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SF ?= 0.01
TARGETS ?= local,databricks
UPDATES ?= 10
TABLES ?= 1000

export DAGSTER_HOME ?= $(CURDIR)/.local/dagster_home

# PLATFORM_INSTANCE=postgres: the Dagster instance in PostgreSQL (docs/settings.md). `setup`
# starts the embedded server (unless PLATFORM_PG_HOST names a managed one), and the recipes that
# open the instance get its PLATFORM_PG_* settings from `scripts.postgres env`, which reads the
# port from the embedded server's state file and keeps whatever the environment already sets.
ifeq ($(PLATFORM_INSTANCE),postgres)
PG_ENV = pg_env="$$($(BIN)/python -m scripts.postgres env)" && eval "$$pg_env" &&
endif

.PHONY: setup demo update test bench dev spark-start spark-status spark-stop postgres-start postgres-status postgres-stop clean

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

setup: $(BIN)/.installed
	$(BIN)/python -m scripts.setup_local

demo: setup
	$(PG_ENV) $(BIN)/python -m scripts.demo

# Builds what changed since the last build: new landing files, new external table versions.
update: setup
	$(PG_ENV) $(BIN)/python -m scripts.update

# Two processes, each taking whole test files (a file's live scenario is set up once).
TEST_WORKERS ?= 2
test: setup
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

bench: setup
	$(BIN)/python -m scripts.bench --scale-factor $(SF) --targets $(TARGETS) --updates $(UPDATES) --tables $(TABLES)

# With PLATFORM_INSTANCE=postgres, the team layout: a code server, the webserver and the daemon
# (scripts/team_dev.py, workspace.team.yaml).
dev: spark-start
ifeq ($(PLATFORM_INSTANCE),postgres)
	$(PG_ENV) $(BIN)/python -m scripts.team_dev
else
	$(BIN)/dagster dev --host 127.0.0.1
endif

# The warm local Spark server every local job connects to (started on demand anyway).
spark-start: setup
	$(BIN)/python -m scripts.spark_server start

spark-status:
	$(BIN)/python -m scripts.spark_server status

spark-stop:
	$(BIN)/python -m scripts.spark_server stop

# The embedded PostgreSQL of PLATFORM_INSTANCE=postgres (`setup` starts it then anyway).
postgres-start: $(BIN)/.installed
	$(BIN)/python -m scripts.postgres start

postgres-status:
	$(BIN)/python -m scripts.postgres status

postgres-stop:
	$(BIN)/python -m scripts.postgres stop

clean:
	-$(BIN)/python -m scripts.spark_server stop
	-$(BIN)/python -m scripts.postgres stop
	rm -rf .local $(VENV)
