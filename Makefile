# netmapper: `make demo` runs the whole pipeline on this machine; `make test` runs the test suite.
# Both need root (eBPF, network namespaces) and install what they need on first run (`make setup`).
SHELL := /bin/bash
VENV := .venv
export BCC_KERNEL_SOURCE ?= /usr/src/netmapper-kernel-src
PYTEST_ARGS ?=

.PHONY: setup apiserver demo check test proto bench clean

setup:
	@bash scripts/setup.sh

# The real kube-apiserver the API-server tests run against (built once from Debian's source, cached).
apiserver: setup
	@bash scripts/kube-apiserver.sh

demo: setup
	$(VENV)/bin/netmapper demo -o out/demo-intents.yaml

# The layering (import-linter contracts in pyproject.toml) and the types (mypy --strict).
check: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: setup apiserver check
	$(VENV)/bin/pytest -q -rs $(PYTEST_ARGS)

proto:
	bash scripts/gen_proto.sh

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

clean:
	rm -rf out .pytest_cache
