#!/usr/bin/env bash
# Build the pinned helm from the Go module proxy into a cache folder; reuse it when present.
# The pin lives in tools/helm/go.mod. To bump it:
#   cd tools/helm && GOFLAGS=-mod=mod go get helm.sh/helm/v4@vX.Y.Z && GOFLAGS=-mod=mod go mod tidy
# then run this script and `make test`, and commit go.mod and go.sum.
# Prints the path of the binary on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mod_dir="$here/tools/helm"
version="$(awk '{for (i = 1; i < NF; i++) if ($i == "helm.sh/helm/v4") {print $(i + 1); exit}}' "$mod_dir/go.mod")"
[ -n "$version" ] || { echo "no helm pin in $mod_dir/go.mod" >&2; exit 1; }
cache="${AVATAR_MONITOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/avatar-monitor}"
bin="$cache/helm-$version"
if [ ! -x "$bin" ]; then
    mkdir -p "$cache"
    echo "building helm $version into $bin (first run only)" >&2
    (cd "$mod_dir" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version" \
        -o "$bin.tmp" helm.sh/helm/v4/cmd/helm) >&2
    mv "$bin.tmp" "$bin"
fi
echo "$bin"
