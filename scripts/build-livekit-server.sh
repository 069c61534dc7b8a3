#!/usr/bin/env bash
# Build the pinned livekit-server from the Go module proxy into a cache folder; reuse it when present.
# The pin lives in tools/livekit-server/go.mod. To bump it:
#   cd tools/livekit-server && GOFLAGS=-mod=mod go get github.com/livekit/livekit-server@vX.Y.Z && GOFLAGS=-mod=mod go mod tidy
# then run this script and `make test`, and commit go.mod and go.sum. A release whose own go.mod has
# replace directives (LiveKit's pion forks, v1.13.6 and later) cannot be built from the module proxy.
# Prints the path of the binary on stdout.
set -euo pipefail
source "$(dirname "$0")/go-tool.sh"
build_go_tool livekit-server github.com/livekit/livekit-server \
    github.com/livekit/livekit-server/cmd/server
