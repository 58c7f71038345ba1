# SciTeX Hub: the two commands are `make demo` and `make test` (see README.md).
# Everything here runs as root on a Debian/Ubuntu machine (or with sudo) and
# installs what it needs; see deploy/dev/ for the pieces.

SHELL := /bin/bash
export SCITEX_PREFIX ?= /opt/scitex
export SCITEX_DEV_DIR ?= /var/lib/scitex-dev
VENV := $(SCITEX_PREFIX)/venv
PY := $(VENV)/bin/python
# The jobs' Python must be readable by the demo users: Debian's python3, not
# a pyenv under /root.
BASE_PYTHON ?= /usr/bin/python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -E)

.PHONY: help system venv install slurm users apptainer postgres docker demo demo-cluster demo-cluster-down demo-compose demo-compose-down demo-down demo-status test test-unit test-e2e lint format bench docs clean-venv

help:
	@echo "make demo       start the demo hub on http://127.0.0.1:8000 (SLURM, users, hub)"
	@echo "make demo-down  stop everything make demo started"
	@echo "make demo-cluster  the demo on a two-node SLURM in network namespaces"
	@echo "make demo-compose  the production Compose file on https://127.0.0.1:8443"
	@echo "make test       run the whole test suite (starts the services it needs)"
	@echo "make lint       ruff and mypy"
	@echo "make bench      benchmarks into bench/results/"

system:
	$(SUDO) bash deploy/dev/install-system.sh

$(VENV)/.created:
	$(SUDO) $(BASE_PYTHON) -m venv $(VENV)
	$(SUDO) $(VENV)/bin/pip install -q --upgrade pip hatchling
	$(SUDO) chmod -R a+rX $(SCITEX_PREFIX)
	$(SUDO) touch $@

# Dependencies change rarely: reinstall them only when pyproject.toml changes.
$(VENV)/.deps: pyproject.toml $(VENV)/.created
	$(SUDO) $(VENV)/bin/pip install -q -e '.[test,lint,postgres]'
	$(SUDO) $(VENV)/bin/pip uninstall -q -y scitex-jupyterhub
	$(SUDO) touch $@

venv: $(VENV)/.deps

# Our own package is installed (not editable) so that users' jobs can read it;
# it is rebuilt on every run because it is cheap.
install: venv
	$(SUDO) $(VENV)/bin/pip install -q --no-deps --no-build-isolation --force-reinstall .
	$(SUDO) chmod -R a+rX $(SCITEX_PREFIX)

slurm: system
	$(SUDO) bash deploy/dev/slurm.sh start

users: system
	$(SUDO) bash deploy/dev/users.sh

# Apptainer (Debian sid's build, relocatable) and the near-empty test image that
# borrows the host's /usr and venv; the real images: containers/build.sh.
apptainer: system
	$(SUDO) bash deploy/dev/apptainer.sh install
	$(SUDO) bash containers/build.sh test-sandbox

postgres: system
	$(SUDO) bash deploy/dev/postgres.sh start

# Docker Engine (Debian's docker.io, no systemd) and the Compose stack's images,
# built offline from a debootstrap base (cached: a rerun takes seconds).
docker: system
	$(SUDO) bash deploy/dev/docker.sh start
	$(SUDO) bash deploy/dev/docker.sh images

# The demo uses Apptainer when it can be installed; without it, servers run
# directly in their jobs (the hub says so).
demo: system install slurm users
	-$(SUDO) $(MAKE) --no-print-directory apptainer
	$(SUDO) bash deploy/dev/demo.sh start

demo-down:
	$(SUDO) bash deploy/dev/demo.sh stop

# The production Compose file (+ docker-compose.local.yml) beside the dev SLURM:
# nginx with TLS on https://127.0.0.1:8443, the hub, PostgreSQL, the Gitea stand-in.
demo-compose: system install slurm users docker
	-$(SUDO) $(MAKE) --no-print-directory apptainer
	$(SUDO) bash deploy/dev/compose.sh up

demo-compose-down:
	$(SUDO) bash deploy/dev/compose.sh down

# The multi-node shape: the host as login node, compute nodes in network
# namespaces (docs/cluster.md).
demo-cluster: system install users
	-$(SUDO) $(MAKE) --no-print-directory apptainer
	$(SUDO) bash deploy/dev/cluster.sh start
	$(SUDO) env SCITEX_CONFIG=$(CURDIR)/deploy/dev/scitex-cluster.yaml bash deploy/dev/demo.sh start

demo-cluster-down:
	$(SUDO) bash deploy/dev/demo.sh stop
	$(SUDO) bash deploy/dev/cluster.sh stop

demo-status:
	$(SUDO) bash deploy/dev/demo.sh status

test: system install slurm users apptainer postgres docker
	$(SUDO) bash deploy/dev/run-tests.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: system install slurm users
	$(SUDO) $(PY) -m bench

clean-venv:
	$(SUDO) rm -rf $(VENV)
