#!/usr/bin/env bash
# Build the pinned Jaeger (v2, `cmd/jaeger`: an OpenTelemetry Collector with an OTLP receiver, memory
# storage and the query API) from the Go module proxy into a cache folder; reuse it when present.
# The trace-link e2e test sends the sidecar's traces to it. The pin lives in tools/jaeger/go.mod
# (module versions v1.x of github.com/jaegertracing/jaeger carry the v2 binary). To bump it:
#   cd tools/jaeger && GOFLAGS=-mod=mod go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@vX.Y.Z && GOFLAGS=-mod=mod go mod tidy
# then run this script and the test, and commit go.mod and go.sum. A cold build takes about 9 min
# on 2 cores (the binary is ~120 MB).
# Prints the path of the binary on stdout.
set -euo pipefail
source "$(dirname "$0")/go-tool.sh"
build_go_tool jaeger github.com/jaegertracing/jaeger github.com/jaegertracing/jaeger/cmd/jaeger
