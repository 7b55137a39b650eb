# The two commands of the README: `make run` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
CONFIG_DIR ?= examples/config

.PHONY: run test lint bench servers clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=compat
	rm -f $(VENV)/.installed-*
	touch $@

## run: start the sidecar on the embedded example config (no etcd, Kafka or cluster needed)
run: $(STAMP)
	$(BIN)/sidecar run --config-dir $(CONFIG_DIR)

## servers: build or fetch the real servers the integration tests start (cached outside git)
servers: $(STAMP)
	@if [ -x scripts/provision/all.sh ] || [ -f scripts/provision/all.sh ]; then bash scripts/provision/all.sh; fi

## test: install everything the tests need and run them
test: $(STAMP) servers
	$(BIN)/python -m pytest

## lint: ruff, mypy, import-linter, and the docs site built with broken links as errors
lint: $(STAMP)
	$(BIN)/ruff check sidecar tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(VENV)/site

## bench: every benchmark under bench/, 3 runs each, into BENCHMARKS.md (BENCH_ARGS=--quick: a smoke run;
##        BENCH_ARGS=probes: that module only, its figures updated in BENCHMARKS.md); wrk from apt
bench: $(STAMP) servers
	bash scripts/provision/wrk.sh >/dev/null
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
