#!/usr/bin/env bash
# Install the system components the test suite runs for real: Prometheus, promtool, Alertmanager,
# Chromium, iproute2, buildah and mmdebstrap (Debian packages), and livekit-server, helm and
# Jaeger (built from the Go module proxy, cached).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v chromium >/dev/null || need+=(chromium)  # the status page, in a real browser
command -v ip >/dev/null || need+=(iproute2)  # the e2e stage makes its own network namespace
command -v faketime >/dev/null || need+=(faketime)  # a sidecar whose clock is off the server's
command -v buildah >/dev/null || need+=(buildah)  # builds and runs the image (tests/deploy)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)  # its stand-in base, without Docker Hub
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # The packages start services we do not want; tests run their own instances.
    systemctl stop prometheus prometheus-alertmanager prometheus-node-exporter 2>/dev/null || true
fi
"$here/scripts/build-livekit-server.sh" >/dev/null
"$here/scripts/build-helm.sh" >/dev/null
"$here/scripts/build-jaeger.sh" >/dev/null  # the trace store of the status page's trace-link test
