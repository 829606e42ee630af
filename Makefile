# Entry points on a fresh Debian machine (see README.md):
#   make demo          audit the ops guide's snapshot on a local AWS endpoint
#   make sandbox       keep that endpoint up, seeded, to try every README command on it (make sandbox-stop)
#   make test          linters and the whole test suite (what CI runs)
#   make runtime       only what a control node or scheduled CI runner needs to run the playbooks
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
PIP_INSTALL := $(BIN)/python -m pip install --quiet --disable-pip-version-check
export PATH := $(BIN):$(PATH)

# Debian packages the test suite uses on the control node: podman, runc and debootstrap run the
# systemd target hosts; ffmpeg makes the test clips and runs the fake backend's conversions;
# chromium renders the audit's HTML report.
TEST_SYSTEM_PACKAGES := podman runc debootstrap ffmpeg chromium

.PHONY: demo sandbox sandbox-stop test lint unit bench runtime venv system-packages clean

# The venv in three layers, each remade only when its pins change: the runtime (ansible-core, boto3,
# collections/requirements.yml), plus the local AWS endpoint (the demo), plus the development tools.
$(VENV)/.created:
	@# Debian splits venv support out of python3: install it when missing.
	python3 -m venv $(VENV) || { rm -rf $(VENV); tools/install-system-packages.sh python3-venv; python3 -m venv $(VENV); }
	touch $@

$(VENV)/.runtime: requirements/runtime.txt requirements/collections-source.txt collections/requirements.yml \
		tools/install-collections.py | $(VENV)/.created
	$(PIP_INSTALL) -r requirements/runtime.txt
	$(BIN)/python tools/install-collections.py collections/requirements.yml
	touch $@

$(VENV)/.local-aws: requirements/local-aws.txt $(VENV)/.runtime
	$(PIP_INSTALL) -r requirements/local-aws.txt
	touch $@

$(VENV)/.dev: requirements/dev.txt collections/requirements-dev.yml $(VENV)/.local-aws
	$(PIP_INSTALL) -r requirements/dev.txt
	$(BIN)/python tools/install-collections.py collections/requirements.yml collections/requirements-dev.yml
	touch $@

runtime: $(VENV)/.runtime
venv: $(VENV)/.dev

system-packages:
	tools/install-system-packages.sh $(TEST_SYSTEM_PACKAGES)

demo: $(VENV)/.local-aws
	tools/demo.sh

sandbox: $(VENV)/.local-aws
	tools/sandbox.sh start

sandbox-stop:
	tools/sandbox.sh stop

lint: venv
	yamllint --strict .
	ruff check .
	ruff format --check .
	ansible-lint --profile production --offline

unit: venv
	pytest tests/unit

# Whole test files go to each of two workers, so module-scoped fixtures (a deployed host, a
# seeded table) are built once; the target-host files start first and each Molecule scenario is a unit
# of its own, so both workers stay busy to the end (tests/harness/scheduling.py). The slowest tests are
# listed at the end, to keep CI's time in view.
test: venv system-packages lint
	pytest -n 2 --dist loadfile --durations=25

# The modules side by side with the ops guide's scripts (see benchmarks/README.md).
bench: venv
	python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf .cache/ansible-facts .cache/apt-archives .cache/host-python-packages reports .local-aws .pytest_cache .ruff_cache
