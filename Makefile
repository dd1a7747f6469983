# seedsoil — set-up, demo and checks. Every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
STAMP := $(VENV)/.installed

.PHONY: demo test lint format lock report browser test-slurm test-faults benchmark benchmark-atlas benchmark-ctc clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

## demo: run the workflow on the embedded default data (config/config.yaml)
demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)
	@echo "Reports: results/cohort/index.html (one link per sample report)"

## test: lint, unit, parity, workflow and browser tests
test: $(STAMP) lint browser
	$(BIN)/pytest -n $(CORES) --dist loadfile tests

## browser: headless Chromium for the report tests (skipped, with a message, where apt is unavailable)
browser:
	@bash scripts/install-browser.sh || echo "Chromium could not be installed: the browser tests will be skipped."

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/snakefmt Snakefile workflow/rules

## report: Snakemake's own report of the demo run
report: demo
	$(BIN)/snakemake --report report.zip

## lock: re-resolve requirements.in into requirements.lock
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements.in
	.lock-venv/bin/pip freeze --exclude-editable > requirements.lock
	rm -rf .lock-venv

## test-faults: runs killed (SIGKILL) in every heavy rule resume to a clean run's tables; a rerun on 1 core = 2 (~3 min)
test-faults: $(STAMP)
	$(BIN)/pytest -m faults tests/test_faults_resume.py

## test-slurm: the workflow on a real one-node SLURM cluster on this machine (root + apt-get; ~2.5 min)
test-slurm: $(STAMP)
	$(BIN)/pytest -m slurm tests/test_slurm.py

# issue 13's setting: prints a table per matrix and a summary against the targets (~15 min)
BENCH_ARGS ?= --cells 50000 --full-length-cells 10000 --methods scanpy,ucell,aucell \
	--references scanpy,pyucell,decoupler-aucell
benchmark: $(STAMP)
	$(BIN)/python benchmarks/bench_scoring.py $(BENCH_ARGS)

ATLAS_DIR ?= ../seedsoil-atlas
benchmark-ctc: $(STAMP)
	$(BIN)/python benchmarks/ctc_spikein.py

benchmark-atlas: $(STAMP)
	$(BIN)/python benchmarks/atlas.py --cells 1000000 --workdir $(ATLAS_DIR)/run

clean:
	rm -rf results logs .snakemake report.zip
