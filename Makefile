# netmapper: `make demo` runs the whole pipeline on this machine; `make test` runs the test suite.
# Both need root (eBPF, network namespaces) and install what they need on first run (`make setup`).
SHELL := /bin/bash
VENV := .venv
export BCC_KERNEL_SOURCE ?= /usr/src/netmapper-kernel-src
PYTEST_ARGS ?=

.PHONY: setup apiserver cluster cluster-stop demo check test proto bench clean

setup:
	@bash scripts/setup.sh

# The real kube-apiserver the API-server tests run against (built once from Debian's source, cached).
apiserver: setup
	@bash scripts/kube-apiserver.sh

# The single-node Kubernetes cluster the cluster tests install netmapper into: binaries and images built once
# and cached (measured here: ~19 min from nothing, ~25 s warm). tests/cluster starts it itself; these targets are
# for trying it out.
cluster: setup apiserver
	@bash scripts/cluster.sh start

cluster-stop:
	@bash scripts/cluster.sh stop

demo: setup
	$(VENV)/bin/netmapper demo -o out/demo-intents.yaml

# The layering (import-linter contracts in pyproject.toml) and the types (mypy --strict).
check: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# Build (or reuse) the cluster's binaries and images before the run: tests/cluster then only starts daemons.
test: setup apiserver check
	@bash scripts/cluster.sh images >/dev/null
	$(VENV)/bin/pytest -q -rs $(PYTEST_ARGS)

proto:
	bash scripts/gen_proto.sh

bench: setup apiserver
	@for b in bench/*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf out .pytest_cache
