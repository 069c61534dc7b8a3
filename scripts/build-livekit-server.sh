#!/usr/bin/env bash
# Build the pinned livekit-server from the Go module proxy into a cache folder; reuse it when present.
# The pin lives in tools/livekit-server/go.mod. To bump it:
#   cd tools/livekit-server && GOFLAGS=-mod=mod go get github.com/livekit/livekit-server@vX.Y.Z && GOFLAGS=-mod=mod go mod tidy
# then run this script and `make test`, and commit go.mod and go.sum. A release whose own go.mod has
# replace directives (LiveKit's pion forks, v1.13.6 and later) cannot be built from the module proxy.
# Prints the path of the binary on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mod_dir="$here/tools/livekit-server"
version="$(awk '{for (i = 1; i < NF; i++) if ($i == "github.com/livekit/livekit-server") {print $(i + 1); exit}}' "$mod_dir/go.mod")"
[ -n "$version" ] || { echo "no livekit-server pin in $mod_dir/go.mod" >&2; exit 1; }
cache="${AVATAR_MONITOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/avatar-monitor}"
bin="$cache/livekit-server-$version"
if [ ! -x "$bin" ]; then
    mkdir -p "$cache"
    echo "building livekit-server $version into $bin (first run only)" >&2
    (cd "$mod_dir" && GOFLAGS=-mod=mod go build -o "$bin.tmp" github.com/livekit/livekit-server/cmd/server) >&2
    mv "$bin.tmp" "$bin"
fi
echo "$bin"
