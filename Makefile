# aisre — the commands a newcomer needs. `make demo` and `make test` do their own set-up.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= $(shell bash hack/python.sh)
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: help tools venv install crds docs cluster-up cluster-down demo test test-unit clean prometheus prometheus-down neo4j neo4j-down jaeger jaeger-down kafka kafka-down

help:
	@echo "make demo          local cluster + CRDs + operator + examples, then kubectl get aisre -A"
	@echo "make test          everything: set-up, unit and cluster tests"
	@echo "make tools         build the pinned control-plane binaries (cached in ~/.cache/aisre/tools)"
	@echo "make cluster-up    start the local cluster (.cluster/kubeconfig); make cluster-down removes it"
	@echo "make crds          regenerate crds/ and charts/aisre/crds/ from the models"
	@echo "make docs          regenerate docs/crd-reference.md from the models"
	@echo "make bench         play the fault scenarios (SCENARIOS=scenarios) in detect and investigate mode into bench/results/"
	@echo "make bench-detection  detection throughput (one core) and memory/latency from 500 to 5,000 pods"
	@echo "make bench-real    the scenarios of scenarios-real/ on the real node, both modes, into bench/results/real-*.json"
	@echo "make bench-forecast  the forecast scenarios of scenarios-forecast/ through Prometheus into bench/results/forecast.json"
	@echo "make prometheus    Debian's Prometheus on loopback for the metrics agent (tests and bench start it themselves)"
	@echo "make neo4j         Neo4j (its test harness) on loopback for the knowledge graph (tests start it themselves)"
	@echo "make jaeger        Jaeger v2 (built from its Go module) on loopback for traces (tests start it themselves)"
	@echo "make kafka         Apache Kafka (KRaft, jars from Maven Central) on loopback for the fleet (tests start it themselves)"

tools:
	bash hack/tools.sh

# The virtual environment, with the pinned dependencies; rebuilt when pyproject changes.
$(BIN)/.deps: pyproject.toml hack/python.sh
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "hatchling==1.33.0"
	$(BIN)/pip install --quiet ".[test]"
	touch $@

venv: $(BIN)/.deps

# Tests run against a real (non-editable) install, exactly as users and the image get it.
install: venv
	rm -rf build
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --force-reinstall .

crds: install
	$(BIN)/aisre crds -o crds -o charts/aisre/crds

docs: install
	$(BIN)/aisre docs -o docs/crd-reference.md

cluster-up: tools
	bash hack/cluster-up.sh

cluster-down:
	bash hack/cluster-down.sh

# The metrics agent's Prometheus (docs/metrics.md). The cluster tests' session fixture and
# `aisre bench` (for scenarios with metrics steps) start it themselves; this is for by hand.
prometheus:
	bash hack/prometheus.sh start

prometheus-down:
	bash hack/prometheus.sh stop

# The knowledge graph's Neo4j on loopback (docs/knowledge.md); the tests start it themselves.
neo4j:
	bash hack/neo4j.sh start

neo4j-down:
	bash hack/neo4j.sh stop

# The trace collector (Jaeger v2, built from its Go module; docs/tracing.md) on loopback;
# the tracing tests start it themselves.
jaeger:
	bash hack/jaeger.sh start

jaeger-down:
	bash hack/jaeger.sh stop

# The fleet's Kafka broker (KRaft, from Maven Central's jars; docs/fleet.md) on loopback;
# the fleet tests and bench/kafka_fleet.py start it themselves.
kafka:
	bash hack/kafka.sh start

kafka-down:
	bash hack/kafka.sh stop

demo: tools install
	bash hack/demo.sh

test-unit: install
	$(BIN)/pytest tests/unit

test: tools install
	$(BIN)/pytest tests --durations=25  # the slowest tests, for keeping CI in its budget

clean: cluster-down
	rm -rf $(VENV) build .tools

# The scenario benchmark (SCENARIOS.md): every scenario of $(SCENARIOS) on the local cluster,
# with the operator in-process, in both modes; the reports go to bench/results/.
SCENARIOS ?= scenarios
BENCH_ARGS ?=
.PHONY: bench bench-detection
bench: tools install
	$(BIN)/aisre bench --scenarios $(SCENARIOS) --mode detect --json bench/results/detect.json $(BENCH_ARGS)
	$(BIN)/aisre bench --scenarios $(SCENARIOS) --mode investigate --json bench/results/investigate.json $(BENCH_ARGS)

# The scenarios played by the real kubelet (scenarios-real/, docs/scenarios.md), on the real node.
.PHONY: bench-real
bench-real: tools install
	$(BIN)/aisre bench --scenarios scenarios-real --mode detect --json bench/results/real-detect.json $(BENCH_ARGS)
	$(BIN)/aisre bench --scenarios scenarios-real --mode investigate --json bench/results/real-investigate.json $(BENCH_ARGS)

# Forecast scenarios (scenarios-forecast/, docs/forecasts.md) through the loopback Prometheus; no cluster.
.PHONY: bench-forecast
bench-forecast: install
	$(BIN)/aisre bench --scenarios scenarios-forecast --mode forecast --json bench/results/forecast.json $(BENCH_ARGS)

# Detection's throughput (one core) and its memory and latency as the cluster grows.
bench-detection: tools install
	$(BIN)/python bench/detection_throughput.py --json bench/results/detection-throughput.json
	bash hack/cluster-up.sh
	$(BIN)/python bench/detection_scale.py --json bench/results/detection-scale.json
