# `make up` and `make test` are all a new machine needs: they install etcd and the venv when missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP  := $(VENV)/.installed

.PHONY: up test lint tf checkov unit bench etcd tools deps clean

# Debian's etcd-server when no etcd is on PATH.
etcd:
	@command -v etcd >/dev/null 2>&1 || { \
	  echo "etcd not found: installing Debian's etcd-server"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq etcd-server >/dev/null; }

# The test suite's other outside tools: Debian's chromium, which Playwright drives for the
# dashboard's browser test (no browser download), and promtool (Debian's prometheus package) for
# the alert rules' tests. Without recommends for prometheus: promtool is all we need of it.
tools:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "chromium not found: installing Debian's chromium"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "promtool not found: installing Debian's prometheus"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 (in the dev extras) is the CPU build on the machine's disk.
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

deps: etcd $(STAMP)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The local three-region federation (etcd, three agents with replicas, an edge on :8080, `demo`).
up: deps
	$(VENV)/bin/spillover up

# Terraform, offline: the AWS provider comes from the machine's mirror. TF_CLI_CONFIG_FILE is
# unset because on these machines it points at a missing file.
TF_DIRS := $(wildcard terraform/modules/* terraform/examples/*)
tf:
	@if ! command -v terraform >/dev/null 2>&1; then \
	  echo "terraform is not installed: the Terraform checks are SKIPPED (install terraform >= 1.7)"; \
	else \
	  set -e; unset TF_CLI_CONFIG_FILE; terraform fmt -check -recursive terraform; \
	  for d in $(TF_DIRS); do \
	    echo "terraform: $$d"; \
	    terraform -chdir=$$d init -backend=false -input=false -plugin-dir=/opt/tf-plugins >/dev/null; \
	    terraform -chdir=$$d validate -no-color >/dev/null; \
	    terraform -chdir=$$d test -no-color | tail -1; \
	  done; \
	fi

# checkov in a venv of its own (its pins fight ours); every skip is in place with its reason.
checkov:
	[ -x .venv-checkov/bin/checkov ] || { python3 -m venv .venv-checkov && .venv-checkov/bin/pip install -q checkov; }
	.venv-checkov/bin/checkov -d terraform/modules --framework terraform --compact --quiet --skip-download

test: lint tf tools
	$(VENV)/bin/pytest -q -p no:cacheprovider

unit: deps
	$(VENV)/bin/pytest -q tests/unit

bench: deps
	$(PY) -m benchmarks.queue
	$(PY) -m benchmarks.regional
	$(PY) -m benchmarks.edge
	$(PY) -m benchmarks.federation
	$(PY) -m benchmarks.autoscale_sim
	$(VENV)/bin/spillover bench all   # beside Celery + Redis; writes docs/benchmarks.md

clean:
	rm -rf $(VENV) .venv-checkov .spillover .pytest_cache .mypy_cache .ruff_cache
