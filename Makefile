# The two commands: `make run` starts the sidecar with embedded defaults, `make test` runs every test.
# While working: `make unit` (the tests that need no root, livekit-server or Prometheus) and
# `make lint` (ruff, mypy, the import-cycle check, the rules lint).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Suites by marker (tests/conftest.py marks them by directory): e2e (livekit-server as root, in a
# network namespace), alerts (promtool, Prometheus, Alertmanager), deploy (the Helm chart with helm
# built from the Go module proxy, the image with buildah as root). `make unit` runs all the others.
UNIT_TESTS := not e2e and not alerts and not deploy

.PHONY: run simulate test unit lint lint-rules test-repeat test-deps deps docs dashboards demo \
	bench clean image

# The server alone (what `make run` needs). One pip command, so that the server's dependency
# avatar-monitor-agent is this repo's ./agent.
$(BIN)/avatar-monitor: pyproject.toml agent/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ./agent -e .
	touch $@

# The test tools on top (livekit-agents, pytest, linters).
$(VENV)/.test-deps: $(BIN)/avatar-monitor
	$(BIN)/pip install -q -e './agent[agents]' -e '.[test]'
	touch $@

deps: $(VENV)/.test-deps

PORT ?= 9465
run: $(BIN)/avatar-monitor  # dev keys and the status page without a token, unless set otherwise
	@echo "avatar-monitor: status page http://127.0.0.1:$(PORT)/, metrics http://127.0.0.1:$(PORT)/metrics;" \
		"try it with: make simulate"
	LIVEKIT_API_KEY=$${LIVEKIT_API_KEY:-devkey} LIVEKIT_API_SECRET=$${LIVEKIT_API_SECRET:-secret} \
		AVATAR_MONITOR_PUBLIC_STATUS=$${AVATAR_MONITOR_PUBLIC_STATUS:-1} \
		$(BIN)/avatar-monitor serve --port $(PORT)

simulate: $(BIN)/avatar-monitor  # a few simulated calls of every kind, sent to `make run`
	$(BIN)/avatar-monitor simulate http://127.0.0.1:$(PORT)

test-deps:
	scripts/install-test-deps.sh

test: deps test-deps lint
	LIVEKIT_SERVER_BIN=$$(scripts/build-livekit-server.sh) HELM_BIN=$$(scripts/build-helm.sh) \
		JAEGER_BIN=$$(scripts/build-jaeger.sh) \
		$(BIN)/pytest

unit: deps
	$(BIN)/pytest -q -m "$(UNIT_TESTS)"

lint: deps lint-rules
	$(BIN)/ruff check monitor agent tests benchmarks dashboards scripts/import_cycles.py
	$(BIN)/mypy
	$(BIN)/python scripts/import_cycles.py  # no import cycle in monitor, modules or packages

# `make test-repeat N=3`: the whole suite N times in a row; a flaky test fails one of the runs.
N ?= 3
test-repeat: deps test-deps
	@for i in $$(seq 1 $(N)); do echo "== run $$i of $(N)"; \
		$(MAKE) --no-print-directory test || { echo "== run $$i of $(N) failed"; exit 1; }; done

docs: deps
	$(BIN)/avatar-monitor docs metrics > docs/metrics.md
	$(BIN)/avatar-monitor docs diagnosis > docs/diagnosis.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

dashboards: deps  # also the Helm chart's copies under deploy/helm/avatar-monitor/files/
	$(BIN)/python -m dashboards

# The Dockerfile's image, avatar-monitor:dev (IMAGE=...): docker with a daemon, else buildah;
# FROM a stand-in made from Debian's packages where python:3.11-slim cannot be pulled.
image:
	scripts/build-image.sh

# promtool's checks and lint (cloudflare's pint is not on the Go module proxy), then the mixin's
# own: Grafana Cloud's name and group limits, annotations, absolute runbook links, the selector.
lint-rules: deps  # promtool comes with `make test-deps` (Debian's prometheus, as root)
	@command -v promtool >/dev/null || { echo "promtool not found: run make test-deps"; exit 1; }
	promtool check rules --lint=all --lint-fatal alerts/avatar-monitor.rules.yml
	$(BIN)/python -m dashboards.lint

demo: deps
	$(BIN)/python scripts/demo.py

bench: deps  # performance figures (as root: the observer's runs make a network namespace)
	command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null || true
	mkdir -p build
	{ $(BIN)/python benchmarks/webhook_intake.py && \
	  $(BIN)/python -m benchmarks.shard_drop && \
	  $(BIN)/python -m benchmarks.history && \
	  $(BIN)/python -m benchmarks.status_queries && \
	  $(BIN)/python -m benchmarks.repeated_lengths && \
	  $(BIN)/python benchmarks/observer_rooms.py --agent-state --max-rooms 100 --runs 3 && \
	  $(BIN)/python benchmarks/observer_rooms.py --agent-state --observe-media none \
	      --max-rooms 100 --runs 3; } 2>&1 | tee build/bench.log
	@echo "== every figure against its target (build/bench.log)"
	$(BIN)/python -m benchmarks.summary < build/bench.log
