# segway.cluster: one command to set up, one to test. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY ?= python3
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Molecule scenarios, in the order make test runs them.
SCENARIOS ?= default

# The local cluster of `make cluster` (containers on this machine; see README.md).
CLUSTER ?= segway
SIZE ?= small
LOCAL_VOLUMES ?= [{"name": "data", "size": 4, "mount": "/data"}]
DELETE_VOLUMES ?= false
LOCAL := -e provider=local -e cluster_name=$(CLUSTER)

.PHONY: setup test lint pytest molecule engine image clean cluster status cluster-down

## setup: Python venv with Ansible, molecule, linters, moto; the collection link.
setup: $(BIN)/.installed .collections/ansible_collections/segway/cluster

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PY) -c 'import sys; sys.exit("Python >= 3.11 is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade 'pip>=23'
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/ansible-playbook --version | sed -n 1p
	$(BIN)/molecule --version | sed -n 1p
	touch $@

.collections/ansible_collections/segway/cluster:
	mkdir -p $(@D)
	ln -sfn ../../.. $@

## test: lint, pytest (unit, real SGE daemons, playbook runs), every molecule scenario.
test: setup lint pytest molecule

lint: setup
	ruff check .
	ruff format --check .
	ansible-lint --profile production

pytest: setup
	pytest -q tests

engine:
	harness/ensure_docker.sh

image: engine
	harness/build_image.sh

molecule: setup image
	for s in $(SCENARIOS); do molecule test -s $$s; done

## cluster: set up, then launch the local cluster (master + 2 compute containers, a
## 4 GiB data volume at /data) and run one example job through DRMAA. Re-running
## changes nothing. CLUSTER=, SIZE=, LOCAL_VOLUMES= override.
cluster: setup image
	ansible-playbook playbooks/launch.yml $(LOCAL) -e size=$(SIZE) -e '{"volumes": $(LOCAL_VOLUMES)}'
	ansible-playbook playbooks/example_job.yml $(LOCAL)

## status: the local cluster's nodes, qhost -F mem_requested and jobs.
status: setup
	ansible-playbook playbooks/status.yml $(LOCAL)

## cluster-down: remove the local cluster's containers without asking; the data volume
## image and /home are kept (DELETE_VOLUMES=true deletes them too).
cluster-down: setup
	ansible-playbook playbooks/teardown.yml $(LOCAL) -e confirm=true -e delete_volumes=$(DELETE_VOLUMES)

clean:
	rm -rf $(VENV) .collections .cache .pytest_cache .ruff_cache
