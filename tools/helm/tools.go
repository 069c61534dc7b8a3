//go:build tools

// Package tools pins helm as a dependency so `go build` can fetch it from the module proxy
// (scripts/build-helm.sh).
package tools

import _ "helm.sh/helm/v4/cmd/helm"
