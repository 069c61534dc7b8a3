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
here="$(cd "$(dirname "$0")/.." && pwd)"
mod_dir="$here/tools/jaeger"
version="$(awk '$1 == "github.com/jaegertracing/jaeger" {print $2; exit}' "$mod_dir/go.mod")"
[ -n "$version" ] || { echo "no jaeger pin in $mod_dir/go.mod" >&2; exit 1; }
cache="${AVATAR_MONITOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/avatar-monitor}"
bin="$cache/jaeger-$version"
if [ ! -x "$bin" ]; then
    mkdir -p "$cache"
    echo "building jaeger $version into $bin (first run only)" >&2
    (cd "$mod_dir" && GOFLAGS=-mod=mod go build -o "$bin.tmp" github.com/jaegertracing/jaeger/cmd/jaeger) >&2
    mv "$bin.tmp" "$bin"
fi
echo "$bin"
