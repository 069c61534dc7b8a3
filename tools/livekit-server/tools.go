//go:build tools

// Package tools pins livekit-server as a dependency so `go build` can fetch it
// from the module proxy while ignoring the server's own replace directives.
package tools

import _ "github.com/livekit/livekit-server/cmd/server"
