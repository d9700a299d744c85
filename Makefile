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

.PHONY: setup demo update test bench dev spark-start spark-status spark-stop clean

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

setup: $(BIN)/.installed
	$(BIN)/python -m scripts.setup_local

demo: setup
	$(BIN)/python -m scripts.demo

# Builds what changed since the last build: new landing files, new external table versions.
update: setup
	$(BIN)/python -m scripts.update

test: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m scripts.bench --scale-factor $(SF) --targets $(TARGETS) --updates $(UPDATES) --tables $(TABLES)

dev: spark-start
	$(BIN)/dagster dev --host 127.0.0.1

# The warm local Spark server every local job connects to (started on demand anyway).
spark-start: setup
	$(BIN)/python -m scripts.spark_server start

spark-status:
	$(BIN)/python -m scripts.spark_server status

spark-stop:
	$(BIN)/python -m scripts.spark_server stop

clean:
	-$(BIN)/python -m scripts.spark_server stop
	rm -rf .local $(VENV)
