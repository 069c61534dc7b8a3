#!/usr/bin/env bash
# Build the pinned livekit-server from the Go module proxy into a cache folder; reuse it when present.
# The pin lives in tools/livekit-server/go.mod (bump: cd tools/livekit-server && go get github.com/livekit/livekit-server@vX.Y.Z).
# Prints the path of the binary on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mod_dir="$here/tools/livekit-server"
version="$(awk '$1 == "github.com/livekit/livekit-server" {print $2}' "$mod_dir/go.mod")"
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
