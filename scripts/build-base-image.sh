#!/usr/bin/env bash
# A stand-in for python:3.11-slim where Docker Hub cannot be reached: a Debian bookworm root
# filesystem with python3 (3.11) and python3-venv, made by mmdebstrap from Debian's packages,
# cached as a tarball and committed into buildah's storage as localhost/avatar-monitor-base.
# Reused when present (delete the tarball, or the image, to rebuild).
# Prints the image's name on stdout.
set -euo pipefail
packages="python3,python3-venv,ca-certificates"
# The tag names what is in it; a change to the list above makes a new one.
tag="bookworm-py311-$(printf %s "$packages" | sha256sum | cut -c1-8)"
image="localhost/avatar-monitor-base:$tag"
cache="${AVATAR_MONITOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/avatar-monitor}"
tarball="$cache/avatar-monitor-base-$tag.tar"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

if buildah inspect --type image "$image" >/dev/null 2>&1; then
    echo "$image"
    exit 0
fi
if [ ! -s "$tarball" ]; then
    command -v mmdebstrap >/dev/null || {
        echo "mmdebstrap not found: install it (scripts/install-test-deps.sh)" >&2
        exit 1
    }
    mkdir -p "$cache"
    # mmdebstrap picks the output format from the name: it must end in .tar
    echo "making the stand-in base $image with mmdebstrap into $tarball (first run only)" >&2
    mmdebstrap --variant=minbase --include="$packages" --aptopt='Acquire::Retries "3"' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        bookworm "$cache/partial-$tag.tar" \
        "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
        "deb $security bookworm-security main" </dev/null >&2
    mv "$cache/partial-$tag.tar" "$tarball"
fi
ctr="$(buildah from --quiet scratch)"
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah add --quiet "$ctr" "$tarball" / >/dev/null
buildah config --env LANG=C.UTF-8 --cmd python3 \
    --label org.opencontainers.image.description="stand-in for python:3.11-slim: Debian bookworm python3, mmdebstrap" \
    "$ctr"
buildah commit --quiet --format docker "$ctr" "$image" >/dev/null
echo "$image"
