# The commands people and CI run. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
STATE ?= .cluster
DEMO_DIR ?= .demo
DEMO_ARGS ?=

.PHONY: help install lint unit test controlplane components images demo dashboard-png kind-demo cluster-up cluster-down clean

help:
	@echo "make demo          a whole rollout on this machine: v1 serves, v2 promoted, v3 rolled back"
	@echo "make dashboard-png the demo, then the Grafana dashboard's panels drawn to docs/images/"
	@echo "                   (DEMO_ARGS=--keep leaves it running; state and logs in $(DEMO_DIR)/)"
	@echo "make test          lint, type-check and run every test (what CI runs)"
	@echo "make kind-demo     with Docker and kind: build the images, install, roll out (examples/kind/)"
	@echo "make lint          ruff and mypy --strict"
	@echo "make unit          the pure unit tests only"
	@echo "make images        build the operator and runtime images from their Dockerfiles (buildah)"
	@echo "make cluster-up    start the local control plane in the background (state in $(STATE)/)"
	@echo "make cluster-down  stop it"

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; $(PYTHON) is " + sys.version.split()[0] + ". Run make PYTHON=/path/to/python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest -m unit tests/unit

# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubectl,
# etcd and kwok from Go modules once; later runs reuse ~/.cache/mlmodel-operator/.
controlplane: $(STAMP)
	$(PY) -m localenv.controlplane build

# CoreDNS, Prometheus, Traefik (the Gateway API data plane), containerd, runc and the CNI
# plugins of the real node, metrics-server (HPAs' CPU metrics), Helm for the chart's
# tests, and the GitOps health-check evaluator (gopher-lua, cel-go), each from its Go
# module once; cached the same way. And
# the Prometheus Operator's CRDs, from its Go module (GOMODCACHE), for the monitor examples.
components: $(STAMP)
	$(PY) -m localenv.components.build
	$(PY) -m localenv.promoperator

# The operator and runtime images, from operator/Dockerfile and runtime/Dockerfile, by
# buildah on a stand-in Python base made here (localenv/imagebuild.py); cached by input.
images: $(STAMP)
	$(PY) -m localenv.imagebuild

# Builds happen outside the network sandbox (they need the module proxy and PyPI); the
# tests run inside it (localenv/sandbox.py: no way out, pod and Service addresses of its own).
test: lint controlplane components images
	$(PY) -m localenv.sandbox -- $(VENV)/bin/pytest

# Control plane, operator, pods, gateway, Prometheus and load, all inside a network
# sandbox (localenv/demo.py); about two minutes once the binaries are built.
# DEMO_ARGS=--pods=real runs the pods as containers of the images `make images` builds.
demo: controlplane components $(if $(findstring real,$(DEMO_ARGS)),images)
	$(PY) -m localenv.sandbox -- $(PY) -m localenv.demo --dir $(DEMO_DIR) $(DEMO_ARGS)

# The picture of examples/grafana/'s dashboard in docs/operations.md: its queries run
# against the demo's Prometheus and drawn with matplotlib (Grafana is not built here).
dashboard-png: controlplane components
	$(PY) -m localenv.sandbox -- $(PY) -m localenv.demo --dir $(DEMO_DIR) --no-live \
		--dashboard docs/images/mlmodel-rollouts.png

# For people with Docker and kind; CI machines have neither (examples/kind/demo.sh).
kind-demo:
	bash examples/kind/demo.sh

cluster-up: controlplane components
	$(PY) -m localenv.controlplane up --dir $(STATE)

cluster-down: $(STAMP)
	$(PY) -m localenv.controlplane down --dir $(STATE)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info $(DEMO_DIR)
