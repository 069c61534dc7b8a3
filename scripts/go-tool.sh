# Sourced by scripts/build-*.sh: build a Go tool pinned in tools/<name>/go.mod from the Go module
# proxy into a cache folder, once; print the binary's path on stdout.
#   build_go_tool NAME MODULE PACKAGE [go build arguments; @VERSION@ stands for the pinned version]
# The cache is $AVATAR_MONITOR_CACHE, else $XDG_CACHE_HOME/avatar-monitor, else
# ~/.cache/avatar-monitor; the binary is <cache>/<name>-<version>.
build_go_tool() {
    local name="$1" module="$2" package="$3"
    shift 3
    local here mod_dir version cache bin
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    mod_dir="$here/tools/$name"
    version="$(awk -v m="$module" '{for (i = 1; i < NF; i++) if ($i == m) {print $(i + 1); exit}}' \
        "$mod_dir/go.mod")"
    [ -n "$version" ] || { echo "no $name pin ($module) in $mod_dir/go.mod" >&2; return 1; }
    cache="${AVATAR_MONITOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/avatar-monitor}"
    bin="$cache/$name-$version"
    if [ ! -x "$bin" ]; then
        mkdir -p "$cache"
        echo "building $name $version into $bin (first run only)" >&2
        (cd "$mod_dir" && GOFLAGS=-mod=mod go build "${@//@VERSION@/$version}" -o "$bin.tmp" \
            "$package") >&2
        mv "$bin.tmp" "$bin"
    fi
    echo "$bin"
}
