#!/usr/bin/env bash
# Build the pinned helm from the Go module proxy into a cache folder; reuse it when present.
# The pin lives in tools/helm/go.mod. To bump it:
#   cd tools/helm && GOFLAGS=-mod=mod go get helm.sh/helm/v4@vX.Y.Z && GOFLAGS=-mod=mod go mod tidy
# then run this script and `make test`, and commit go.mod and go.sum.
# Prints the path of the binary on stdout.
set -euo pipefail
source "$(dirname "$0")/go-tool.sh"
build_go_tool helm helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm \
    -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=@VERSION@"
