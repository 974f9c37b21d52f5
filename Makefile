# Two entry points: `make demo` and `make test`. Each builds .venv by itself.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.base: $(BIN)/python pyproject.toml
	$(PIP) install -q -e .
	touch $@

$(VENV)/.test: $(BIN)/python pyproject.toml
	$(PIP) install -q -e '.[test]'
	touch $@

demo: $(VENV)/.base
	$(BIN)/certimport run samples/certificates.csv --emulator --out out/demo
	$(BIN)/certimport run samples/spreadsheet-semicolon.csv --emulator --dayfirst \
	  --timezone Europe/Berlin --out out/demo-spreadsheet

lint: $(VENV)/.test
	$(BIN)/ruff check importer tests benchmarks
	$(BIN)/ruff format --check importer tests benchmarks

typecheck: $(VENV)/.test
	$(BIN)/mypy importer

unit: $(VENV)/.test
	$(BIN)/pytest

test: lint typecheck unit

$(VENV)/.bench: $(BIN)/python pyproject.toml
	$(PIP) install -q -e '.[test,bench]'
	touch $@

# Prints the benchmark table (several minutes); not part of `make test`.
bench: $(VENV)/.bench
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
