# The README's commands are `make demo`, `make test` and `make rehearsal`; everything else is a building block.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV ?= .venv
TOOLS ?= .tools
RUN ?= .run
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/$(TOOLS)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help bootstrap demo rehearsal controlplane test lint sanity unit integration molecule stack-up stack-down bench clean

help:
	@echo "make demo   - run playbooks/site.yml end to end on the local stack (fake GCS + Triton)"
	@echo "make test   - lint, sanity, unit, integration and molecule tests"
	@echo "make rehearsal - site.yml on a GKE target against the local Kubernetes control plane, twice, then teardown"

bootstrap:
	@./scripts/bootstrap.sh

# demo: start the local stack, converge site.yml, print the verify report, stop the stack.
demo: bootstrap
	@$(PY) local_stack/stack.py run --run-dir $(RUN)/demo -- \
	  ansible-playbook playbooks/site.yml -i inventories/local $(DEMO_ARGS)

# rehearsal: site.yml (VERIFIED), site.yml again (changed=0, zero writes at every server), teardown.yml.
rehearsal: bootstrap controlplane
	@$(PY) local_stack/rehearsal.py run --run-dir $(RUN)/rehearsal

# The Kubernetes control plane from Go modules, built once per pinned version into ~/.cache/rapids-triton-fil.
controlplane: bootstrap
	@$(PY) -m local_stack.controlplane.build >/dev/null

stack-up: bootstrap
	@$(PY) local_stack/stack.py up --run-dir $(RUN)/stack

stack-down:
	@$(PY) local_stack/stack.py down --run-dir $(RUN)/stack

lint: bootstrap
	yamllint -s .
	ansible-lint --profile production --offline

sanity: bootstrap
	./scripts/sanity.sh

unit: bootstrap
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: bootstrap
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# extensions/molecule: `default` runs the local stack; `rehearsal` a GKE target on the local control plane;
# `gke` skips cleanly without GKE credentials.
molecule: bootstrap controlplane
	molecule test -s default
	molecule test -s rehearsal
	molecule test -s gke

# pytest runs last so that its summary line closes the log.
test: bootstrap lint sanity molecule
	$(PY) -m pytest tests $(PYTEST_ARGS)

bench: bootstrap
	$(PY) bench/run.py

clean:
	rm -rf $(RUN) tests/output .pytest_cache
