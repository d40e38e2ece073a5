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
BALANCE_EVERY ?= 60
BALANCE_ARGS ?=
LOCAL := -e provider=local -e cluster_name=$(CLUSTER)

.PHONY: setup test lanes lint pytest molecule engine image clean cluster status cluster-down sanity twin test-twin test-balance balance plot segway-demo

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

## test: lint, ansible-test sanity, then pytest (unit, real SGE daemons, playbook runs)
## and every molecule scenario, in two lanes at once (harness/lanes.sh: tests/ec2 in one,
## the rest and molecule in the other): one check at a time leaves much of a 2-core
## machine idle. About 48 minutes in all on a 2-core machine (bench/results/test_time.txt).
test: setup lint sanity lanes

lanes: setup image
	$(ENSURE_RSYNC) || echo "lanes: no rsync (not root, or apt-get failed): the fetch/put test fails"
	SCENARIOS='$(SCENARIOS)' harness/lanes.sh

lint: setup
	ruff check .
	ruff format --check .
	ansible-lint --profile production

# rsync on this machine for fetch.yml and put.yml: Debian's package, when root.
ENSURE_RSYNC := command -v rsync >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
  && (apt-get install -y -qq rsync >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq rsync >/dev/null; }); }

## pytest: every test under tests/, the EC2 twin's end-to-end run included (it needs the
## node image). The 25 slowest tests are listed at the end, to keep an eye on the budget.
TWIN_TEST := tests/ec2/test_ec2_twin.py
pytest: setup image
	# fetch.yml and put.yml (tests/readme/transfer_checks.py) run rsync here.
	$(ENSURE_RSYNC) || echo "pytest: no rsync (not root, or apt-get failed): the fetch/put test fails"
	pytest -q --durations=25 tests

## test-twin: only the README's EC2 commands over SSH on the EC2 twin (root, Docker; about
## 17 minutes on a 2-core machine): tests/ec2/test_ec2_twin.py.
test-twin: setup image
	pytest -q -s $(TWIN_TEST)

## test-balance: playbooks/balance.yml scaling a local cluster up on memory and down
## without losing jobs, and an EC2 cluster on the twin (issue 16; about 30 minutes on 2
## cores, so not part of make test).
test-balance: setup image
	SEGWAY_BALANCE_TEST=1 pytest -q -s tests/integration/autoscale tests/ec2/test_ec2_twin_balance.py

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

## segway-demo: Segway end to end on the local cluster (not part of make test: building
## GMTK takes minutes). Launches the local cluster (or re-uses it: a re-run builds
## nothing) with GMTK built from GMTK_SOURCE, runs playbooks/segway_demo.yml (synthetic
## genomedata, segway train and annotate through Grid Engine with DRMAA, a check of the
## segmentation, segtools-length-distribution) and fetches the results into
## SEGWAY_DEMO_DEST. DEMO_ARGS= adds inputs (-e demo_labels=4 -e demo_rounds=3).
GMTK_SOURCE ?= $(abspath $(CURDIR)/../shared/gmtk/gmtk-1.4.4.tar.gz)
GMTK_CHECKSUM ?= sha256:fd00c0df274efd584f6687a227e7fae61e0c4eaa34629f68233dd12c3150ed5c
SEGWAY_DEMO_DEST ?= segway-demo-results
DEMO_ARGS ?=
segway-demo: setup image
	$(ENSURE_RSYNC) || { echo "segway-demo: fetch.yml needs rsync here: install it"; exit 1; }
	test -f "$(GMTK_SOURCE)" || { echo "segway-demo: no GMTK archive at $(GMTK_SOURCE);" \
	  "set GMTK_SOURCE= (a GMTK 1.4.4 source archive) and GMTK_CHECKSUM=sha256:..."; exit 1; }
	start=$$SECONDS; ansible-playbook playbooks/launch.yml $(LOCAL) -e size=$(SIZE) \
	  -e '{"volumes": $(LOCAL_VOLUMES)}' -e segway_gmtk_source=$(GMTK_SOURCE) \
	  -e segway_gmtk_checksum=$(GMTK_CHECKSUM); launched=$$SECONDS; \
	ansible-playbook playbooks/segway_demo.yml $(LOCAL) $(DEMO_ARGS); ran=$$SECONDS; \
	ansible-playbook playbooks/fetch.yml $(LOCAL) -e src=/home/sgeadmin/segway-demo/ \
	  -e dest=$(SEGWAY_DEMO_DEST); \
	echo "segway-demo: launch $$((launched - start)) s, demo $$((ran - launched)) s," \
	  "fetch $$((SECONDS - ran)) s; results in $(SEGWAY_DEMO_DEST)/" \
	  "(annotatedir/segway.bed.gz, traindir, length_distribution)"

## status: the local cluster's nodes, qhost -F mem_requested and jobs.
status: setup
	ansible-playbook playbooks/status.yml $(LOCAL)

## balance: the autoscaler from this machine: playbooks/balance.yml on the local cluster
## every BALANCE_EVERY seconds (60) until Ctrl-C; a failed pass is reported and the next
## one tries again. BALANCE_ARGS= adds inputs (-e max_nodes=4 -e min_nodes=1 -e
## local_mem_requested=2G -e dry_run=true). make status shows its last passes.
balance: setup
	while :; do ansible-playbook playbooks/balance.yml $(LOCAL) $(BALANCE_ARGS) \
	  || echo "balance: this pass failed; the next one runs in $(BALANCE_EVERY) s"; \
	  sleep $(BALANCE_EVERY); done

## plot: the local cluster's autoscaler passes as a PNG (PLOT=autoscale.png), from the
## log balance.yml keeps on the master; see also make status.
PLOT ?= autoscale.png
plot: setup
	ansible-playbook playbooks/status.yml $(LOCAL) -e plot=$(PLOT)

## cluster-down: remove the local cluster's containers without asking; the data volume
## image and /home are kept (DELETE_VOLUMES=true deletes them too).
cluster-down: setup
	ansible-playbook playbooks/teardown.yml $(LOCAL) -e confirm=true -e delete_volumes=$(DELETE_VOLUMES)

## twin: an EC2 twin to launch into by hand (root, Docker): moto_server for the API and
## a systemd container per instance (tests/ec2/ec2_twin.py). Prints the environment and
## the inputs to use; Ctrl-C removes its containers, loop devices and volume images.
twin: setup image
	$(BIN)/python tests/ec2/twin_serve.py

## sanity: ansible-test sanity, offline but for PyPI (see tests/sanity/get_pip_offline.py).
## ansible-test wants the tree under .../ansible_collections/segway/cluster, resolves the
## .collections link back to this directory, and inside a git work tree looks only at what
## git tracks there; so it runs on a copy of the work tree (the files git tracks or would
## track) in a temporary directory, next to the collections the ansible package bundles.
## Its per-test virtual environments are kept in .cache/sanity-home. SANITY_ARGS= adds
## options (e.g. SANITY_ARGS='--test validate-modules').
SANITY_HOME := $(CURDIR)/.cache/sanity-home
SANITY_ARGS ?=
# ansible-test's pip version names the bootstrap script it looks for in its cache.
SANITY_PIP := import types; from ansible_test._internal.python_requirements import \
  get_venv_packages; print(get_venv_packages(types.SimpleNamespace(version="3"))["pip"])
sanity: setup
	# ansible-test only warns and skips its shellcheck test without shellcheck: install it.
	command -v shellcheck >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get install -y -qq shellcheck >/dev/null 2>&1 \
	      || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; }); } \
	  || echo "sanity: no shellcheck (not root, or apt-get failed): ansible-test skips that test"
	mkdir -p $(SANITY_HOME)/.ansible/test/cache
	pip=$$($(BIN)/python -c '$(SANITY_PIP)'); \
	cp tests/sanity/get_pip_offline.py $(SANITY_HOME)/.ansible/test/cache/get_pip_$${pip//./_}.py
	top=$$(mktemp -d); trap 'rm -rf "$$top"' EXIT; \
	tree=$$top/ansible_collections/segway/cluster; mkdir -p $$tree; \
	git ls-files -z --cached --others --exclude-standard \
	  | tar --null -T - --ignore-failed-read -cf - | tar -xf - -C $$tree; \
	site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	for ns in amazon ansible community; do \
	  ln -s "$$site/ansible_collections/$$ns" $$top/ansible_collections/$$ns; done; \
	python=$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	cd $$tree && HOME=$(SANITY_HOME) $(CURDIR)/$(BIN)/ansible-test sanity \
	  --python $$python $(SANITY_ARGS)

clean:
	rm -rf $(VENV) .collections .cache .pytest_cache .ruff_cache
