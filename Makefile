# Two entry points for a fresh Debian machine (see README.md):
#   make demo   audit the ops guide's snapshot on a local AWS endpoint
#   make test   linters and the whole test suite (what CI runs)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: demo test lint unit bench venv system-packages clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@# Debian splits venv support out of python3: install it when missing.
	python3 -m venv $(VENV) || { rm -rf $(VENV); tools/install-system-packages.sh python3-venv; python3 -m venv $(VENV); }
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

system-packages:
	tools/install-system-packages.sh

demo: venv
	tools/demo.sh

lint: venv
	yamllint --strict .
	ruff check .
	ruff format --check .
	ansible-lint --profile production --offline

unit: venv
	pytest tests/unit

# Whole test files go to each of two workers, so module-scoped fixtures (a deployed host, a
# seeded table) are built once.
test: venv system-packages lint
	pytest -n 2 --dist loadfile

# The modules side by side with the ops guide's scripts (see benchmarks/README.md).
bench: venv
	python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf .cache reports .local-aws .pytest_cache .ruff_cache
