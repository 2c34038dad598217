# peat-mesh for Swift — the two commands that matter: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

SWIFT ?= swift
APT_PACKAGES := libsodium-dev liblmdb-dev pkg-config iproute2
# Where `make run` keeps its data (the LMDB store and the development formation secret).
PEAT_DATA := $(CURDIR)/.peat-data
NODE_NAME ?= peat-mesh-0
# CRDT workloads (shared/bench/WORKLOADS.md): inputs from the shared folder beside the repository,
# each workload CRDT_REPS times, a fresh process per run, results in CRDT_RESULTS.
SHARED ?= $(abspath $(CURDIR)/../shared)
CRDT_INPUTS ?= $(SHARED)/bench/inputs.json
CRDT_TRACE ?= $(SHARED)/bench-data/automerge-paper.json.gz
CRDT_WORKLOADS := map_churn concurrent_merge text_trace small_docs
CRDT_REPS ?= 3
CRDT_RESULTS := $(CURDIR)/Benchmarks/.build/crdt-results
# The binary the container image ships (deploy/Dockerfile builds it the same way).
STATIC_BUILD := $(CURDIR)/.build-static
STATIC_BINARY := $(STATIC_BUILD)/release/peat-mesh-node
# The peer engines (Python bindings of Yrs and Loro) for `make bench-peers`, pinned as in WORKLOADS.md.
PEERS_DIR := $(SHARED)/bench/peers
PEERS_VENV := $(CURDIR)/.venv-peers
PEER_PACKAGES := pycrdt==0.14.13 loro==1.17.1

# Runs $(CRDT_WORKLOADS) for the libraries in $(1) (peat-crdt, pycrdt, loro), CRDT_REPS times each,
# rep-major (rep 1 of everything, then rep 2, ...), each run a fresh process; RESULT lines are shown
# and collected in $(2); then the side-by-side table. Fails at the end if any run failed.
define crdt_runs
@set -o pipefail; mkdir -p "$(CRDT_RESULTS)"; out="$(2)"; : > "$$out"; status=0; \
	bin="$$(cd Benchmarks && $(SWIFT) build -c release --show-bin-path)/peat-bench"; \
	export CRDT_INPUTS="$(CRDT_INPUTS)" CRDT_TRACE="$(CRDT_TRACE)" PYTHONDONTWRITEBYTECODE=1; \
	for rep in $$(seq $(CRDT_REPS)); do for lib in $(1); do for w in $(CRDT_WORKLOADS); do \
	  case $$lib in \
	    peat-crdt) cmd=("$$bin" crdt "$$w");; \
	    *) cmd=("$(PEERS_VENV)/bin/python" "$(PEERS_DIR)/bench_$$lib.py" "$$w");; \
	  esac; \
	  "$${cmd[@]}" | tee -a "$$out" || { status=1; echo "crdt: $$lib $$w (rep $$rep) failed"; }; \
	done; done; done; \
	echo; python3 Benchmarks/crdt_compare.py "$$out" || status=1; \
	echo "(RESULT lines in $$out)"; exit $$status
endef

# What `make lint` checks with the toolchain's swift-format (configuration: .swift-format).
FORMAT_PATHS := Package.swift Sources Tests Fuzz Benchmarks/Package.swift Benchmarks/Sources Examples/Embedding/Package.swift Examples/Embedding/Sources

.PHONY: help deps build test lint format examples run bench bench-mesh bench-peers bench-flood bench-ddil api-check verify-deploy static-binary fuzz fuzz-build fuzz-seeds fuzz-merge clean

help:
	@echo "make run    build and run a local node (data in ./.peat-data, static discovery on 127.0.0.1)"
	@echo "make test   install system packages if missing, build, run every test"
	@echo "make build  debug build (make deps first on a new machine)"
	@echo "make lint   swift format lint --strict (configuration .swift-format); make format rewrites in place"
	@echo "make examples  build and run the out-of-tree embedding examples (Examples/Embedding)"
	@echo "make bench  release-build and run the benchmarks (ratios against same-run baselines; CRDT workloads 3x each)"
	@echo "make bench-peers  the CRDT workloads for peat-crdt, pycrdt and loro (venv in ./.venv-peers), one table"
	@echo "make bench-flood  write-to-visible p99 before and during a flood of a node's sync listener (release nodes)"
	@echo "make bench-ddil  3 release nodes in network namespaces over 256 kbit/s + 10% and 64 kbit/s + 30% loss links (root; DDIL_ARGS=...)"
	@echo "make api-check  schemathesis (PyPI, ./.venv-api) checks a live node against Sources/PeatBroker/openapi.json"
	@echo "make deps   install the Debian packages the build needs (idempotent)"
	@echo "make verify-deploy  prove deploy/ offline: chart lint/render/schemas, shellcheck, the image's runtime libraries, a simulated 3-pod StatefulSet"
	@echo "make fuzz   build the libFuzzer targets (.build-fuzz) and fuzz each decoder FUZZ_SECONDS (60); fails on any crash or leak"
	@echo "make fuzz-seeds / fuzz-merge  rewrite the seed corpora in Fuzz/Corpus / add the scratch corpus's new coverage to them"

# Installs the Debian packages only when one is missing; silent when all are present.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# python-zeroconf: the independent mDNS peer of the discovery tests, which run only as root.
	@[ "$$(id -u)" -ne 0 ] || python3 -c 'import zeroconf' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check zeroconf

build: deps
	$(SWIFT) build

# The multi-node tests run in a second pass of their own: the node-process tests block test threads
# while they wait for child processes, which on a 2-core machine would stall the in-process meshes.
# As another user than root, the tests that need root (network namespaces) are skipped, each suite
# with one line saying why. Then the embedding examples are built out of tree and run.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip IntegrationTests
	$(SWIFT) test --skip-build --filter IntegrationTests
	$(MAKE) --no-print-directory examples

lint:
	$(SWIFT) format lint --strict --recursive --parallel $(FORMAT_PATHS)

format:
	$(SWIFT) format format --in-place --recursive --parallel $(FORMAT_PATHS)

# The out-of-tree package of Examples/Embedding: each executable embeds one seam's module and runs
# that seam's conformance suite against an implementation of its own. The discovery example must
# link neither AsyncHTTPClient nor Yams (only PeatKubernetesDiscovery needs them).
examples: deps
	@# SwiftPM caches the file list of a path dependency: drop it so new sources are seen.
	@rm -f Examples/Embedding/.build/debug.yaml Examples/Embedding/.build/*/debug/description.json
	@set -e; cd Examples/Embedding; $(SWIFT) build; bin="$$($(SWIFT) build --show-bin-path)"; \
	for product in StoreExample DiscoveryExample TransportExample; do "$$bin/$$product" | tail -1; done; \
	if grep -Eq '/(AsyncHTTPClient|Yams)\.build/' "$$bin/DiscoveryExample.product/Objects.LinkFileList"; then \
	  echo "examples: DiscoveryExample links AsyncHTTPClient or Yams"; exit 1; fi; \
	echo "examples: DiscoveryExample links neither AsyncHTTPClient nor Yams"

# A single local node with working defaults. A development formation secret is generated on
# first run and kept in ./.peat-data/formation-secret (mode 0600); an exported
# PEAT_FORMATION_SECRET, or any other PEAT_* variable you export, takes precedence.
run: build
	@mkdir -p "$(PEAT_DATA)" && chmod 700 "$(PEAT_DATA)"
	@bin="$$($(SWIFT) build --show-bin-path)/peat-mesh-node"; \
	if [ -z "$${PEAT_FORMATION_SECRET:-}" ] && [ ! -s "$(PEAT_DATA)/formation-secret" ]; then \
	  (umask 077 && "$$bin" generate-secret > "$(PEAT_DATA)/formation-secret.tmp" && \
	   mv "$(PEAT_DATA)/formation-secret.tmp" "$(PEAT_DATA)/formation-secret") && \
	  echo "make run: generated a development formation secret in $(PEAT_DATA)/formation-secret"; \
	fi; \
	export PEAT_FORMATION_SECRET="$${PEAT_FORMATION_SECRET:-$$(cat "$(PEAT_DATA)/formation-secret")}"; \
	export HOSTNAME="$(NODE_NAME)"; \
	export PEAT_DATA_DIR="$${PEAT_DATA_DIR:-$(PEAT_DATA)}"; \
	export PEAT_DISCOVERY="$${PEAT_DISCOVERY:-static}"; \
	export PEAT_BIND_HOST="$${PEAT_BIND_HOST:-127.0.0.1}"; \
	exec "$$bin"

bench: deps
	@command -v wrk >/dev/null || { sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; $$sudo apt-get install -y -qq wrk >/dev/null; }
	@# SwiftPM caches the file list of a path dependency: drop it so new sources are seen.
	rm -f Benchmarks/.build/release.yaml Benchmarks/.build/*/release/description.json
	cd Benchmarks && $(SWIFT) run -c release peat-bench
	@# mDNS timing needs a multicast-capable interface: a veth pair in a throwaway namespace (root).
	@if [ "$$(id -u)" -eq 0 ] && command -v ip >/dev/null; then \
	  ns=peatbench$$$$; bin="$$(cd Benchmarks && $(SWIFT) build -c release --show-bin-path)/peat-bench"; \
	  ip netns add $$ns && ip -n $$ns link add pbv0 type veth peer name pbv1 && \
	  ip -n $$ns addr add 198.51.100.1/24 dev pbv0 && ip -n $$ns link set pbv0 up && ip -n $$ns link set pbv1 up && \
	  ip -n $$ns route add 224.0.0.0/4 dev pbv0 && \
	  ip netns exec $$ns env PEAT_BENCH_MDNS_ADDRESS=198.51.100.1 "$$bin" mdns-in-namespace; \
	  ip netns del $$ns; \
	else echo "mdns_new_node_found: needs root and iproute2 (network namespace)"; fi
	$(call crdt_runs,peat-crdt,$(CRDT_RESULTS)/bench.txt)
	@# Mesh: write-to-visible latency (3 and 10 nodes), idle anti-entropy traffic and memory with 10,000
	@# documents, start to ready — release node processes on 127.21.x.y (Benchmarks/mesh_bench.py).
	$(SWIFT) build -c release --product peat-mesh-node
	python3 Benchmarks/mesh_bench.py all --binary "$$($(SWIFT) build -c release --show-bin-path)/peat-mesh-node"

# Only the mesh benchmarks.
bench-mesh: deps
	$(SWIFT) build -c release --product peat-mesh-node
	python3 Benchmarks/mesh_bench.py all --binary "$$($(SWIFT) build -c release --show-bin-path)/peat-mesh-node"

# The sync listener's limits under a flood (Benchmarks/mesh_bench.py flood): 1,000 idle sockets and
# 200 certificate-less TLS clients against one of three nodes; p99 during vs before, refusals, disconnections.
bench-flood: deps
	$(SWIFT) build -c release --product peat-mesh-node
	python3 Benchmarks/mesh_bench.py flood --binary "$$($(SWIFT) build -c release --show-bin-path)/peat-mesh-node"

# Disconnected, intermittent, limited links (Benchmarks/ddil_bench.py, root): 3 nodes in network namespaces
# over tbf-shaped, randomly lossy veths; beacon lag, wire bytes per update, catch-up after an outage, a
# large document over a flapping link. DDIL_ARGS="--baseline-binary PATH --profiles 256k --scenarios ...".
DDIL_ARGS ?=
bench-ddil: deps
	@command -v iptables >/dev/null || { sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends iptables >/dev/null; }
	$(SWIFT) build -c release --product peat-mesh-node
	python3 Benchmarks/ddil_bench.py --binary "$$($(SWIFT) build -c release --show-bin-path)/peat-mesh-node" $(DDIL_ARGS)

# The broker against its OpenAPI document (scripts/api_check.sh): every operation, schema-valid and
# invalid input, undeclared methods (405), response schemas and headers; not part of `make test`.
api-check: build
	scripts/api_check.sh "$$($(SWIFT) build --show-bin-path)/peat-mesh-node"

# The CRDT workloads side by side with the peer engines, same inputs, same machine, same run.
bench-peers: deps
	@$(PEERS_VENV)/bin/python -c 'import importlib.metadata as m, sys; sys.exit(not (m.version("pycrdt") == "0.14.13" and m.version("loro") == "1.17.1"))' 2>/dev/null || { \
	  [ -x "$(PEERS_VENV)/bin/python" ] || python3 -m venv "$(PEERS_VENV)"; \
	  "$(PEERS_VENV)/bin/pip" install -q --disable-pip-version-check $(PEER_PACKAGES); }
	rm -f Benchmarks/.build/release.yaml Benchmarks/.build/*/release/description.json
	cd Benchmarks && $(SWIFT) build -c release --product peat-bench
	$(call crdt_runs,peat-crdt pycrdt loro,$(CRDT_RESULTS)/peers.txt)

# The deploy artefacts, proven without Docker or a cluster (docs/deployment.md, "Verified offline"):
# the chart lints, renders and validates against the Kubernetes schemas; the scripts pass shellcheck;
# the static binary runs in a root holding only the image's runtime packages; three simulated pods
# (network namespaces, a Kubernetes API double, the rendered StatefulSet's environment) pass the
# functional checks of deploy/k3d/functional-test.sh.
verify-deploy: deps static-binary
	@command -v shellcheck >/dev/null || { sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends shellcheck >/dev/null; }
	@python3 -c 'import helm_python, kubernetes_validate' 2>/dev/null || \
	  python3 -m pip install -q --disable-pip-version-check helm-python-sdk kubernetes-validate
	bash -n deploy/k3d/*.sh
	shellcheck -x deploy/k3d/*.sh
	python3 deploy/verify/chart_check.py
	python3 deploy/verify/secret_volume.py
	python3 deploy/verify/runtime_libs.py "$(STATIC_BINARY)"
	python3 deploy/verify/pod_sim.py --binary "$(STATIC_BINARY)"

static-binary: deps
	$(SWIFT) build -c release --static-swift-stdlib --product peat-mesh-node -Xlinker -s --scratch-path "$(STATIC_BUILD)"

# libFuzzer targets (Fuzz/, only in the package with PEAT_FUZZ set) for every decoder of outside bytes,
# each fuzzed FUZZ_SECONDS on a scratch copy of its corpus; FUZZ_JOBS of them at once. Not part of `make test`.
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 1
FUZZ_TARGETS ?=

fuzz-build: deps
	SWIFT="$(SWIFT)" scripts/fuzz.sh build

fuzz: fuzz-build
	SWIFT="$(SWIFT)" FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) scripts/fuzz.sh run $(FUZZ_TARGETS)

fuzz-seeds: fuzz-build
	scripts/fuzz.sh seeds

fuzz-merge: fuzz-build
	scripts/fuzz.sh merge $(FUZZ_TARGETS)

clean:
	rm -rf .build .build-static .build-fuzz Benchmarks/.build
