#!/usr/bin/env bash
# Build the Dockerfile into the image avatar-monitor:dev (or $IMAGE): with docker when a daemon
# answers, else with buildah (`buildah bud --isolation chroot`, no daemon, no cgroups needed);
# BUILDER=buildah or BUILDER=docker chooses.
# The base is the Dockerfile's ARG BASE (python:3.11-slim) unless $BASE names another. Where
# buildah cannot pull it (no Docker Hub from here), the image is built FROM a stand-in made from
# Debian's packages (scripts/build-base-image.sh: bookworm's python3 3.11), and this says so.
# Prints the image's name on stdout; the build's own output goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
image="${IMAGE:-avatar-monitor:dev}"
base="${BASE:-$(sed -n 's/^ARG BASE=//p' "$here/Dockerfile")}"
started=$(date +%s)

builder="${BUILDER:-}"
if [ -z "$builder" ]; then
    builder=buildah
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then builder=docker; fi
fi
if [ "$builder" = docker ]; then
    docker build --build-arg "BASE=$base" -t "$image" "$here" >&2
    echo "built $image with docker FROM $base in $(( $(date +%s) - started )) s" >&2
    echo "$image"
    exit 0
fi
command -v buildah >/dev/null || {
    echo "no docker daemon and no buildah: install buildah (scripts/install-test-deps.sh)" >&2
    exit 1
}
if ! buildah inspect --type image "$base" >/dev/null 2>&1 \
        && ! timeout 120 buildah pull --quiet "$base" >/dev/null 2>&1; then
    wanted="$base"
    base="$("$here/scripts/build-base-image.sh")"
    {
        echo "################################################################################"
        echo "# cannot pull $wanted: building FROM the stand-in $base"
        echo "# (Debian bookworm's python3 3.11 made with mmdebstrap), not the real base image"
        echo "################################################################################"
    } >&2
fi
# pip in the build trusts what this machine trusts (a TLS-intercepting proxy's CA included): the
# host's bundle is bind-mounted over the base's for the RUN steps only (the image keeps its own).
ca="${BUILD_CA_BUNDLE:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}"
ca_args=()
if [ -s "$ca" ]; then
    bundle=/etc/ssl/certs/ca-certificates.crt  # in python:3.11-slim and the stand-in alike
    ca_args=(--volume "$ca:$bundle:ro" --build-arg "PIP_CERT=$bundle")
fi
# --format docker keeps the HEALTHCHECK (OCI image configs have no field for it);
# --layers reuses the steps whose inputs did not change; --force-rm leaves no container behind
# after a failed step.
buildah bud --isolation chroot --format docker --layers --force-rm --build-arg "BASE=$base" \
    "${ca_args[@]}" -t "$image" "$here" >&2
echo "built $image with buildah FROM $base in $(( $(date +%s) - started )) s" >&2
echo "$image"
