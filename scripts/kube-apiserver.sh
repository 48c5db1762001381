#!/usr/bin/env bash
# Build (once) and cache a real kube-apiserver for the integration tests.
#
# No package registry ships a kube-apiserver binary and the Go module proxy is not reachable, but
# Debian bookworm's source package `kubernetes` (v1.20.2) contains the full tree with vendor/, so
# it builds offline with Debian's golang-go. The build takes ~5 minutes and 1.8 GB of disk, so the
# binary is cached and the build tree deleted; later runs return immediately.
#
# Idempotent. Needs root (apt-get). Environment:
#   NETMAPPER_APISERVER_CACHE  path of the cached binary (default /var/cache/netmapper/kube-apiserver)
#   NETMAPPER_APISERVER_BUILD  parent dir for the temporary build tree (default: $TMPDIR or /tmp)
set -euo pipefail

CACHE="${NETMAPPER_APISERVER_CACHE:-/var/cache/netmapper/kube-apiserver}"
BUILD_PARENT="${NETMAPPER_APISERVER_BUILD:-${TMPDIR:-/tmp}}"
SRC_LIST=/etc/apt/sources.list.d/netmapper-deb-src.sources

log() { printf '[kube-apiserver.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

t_start=$(date +%s)

apt_install() {
    # Install only what is missing: apt-get update is the slow part, so skip it when possible.
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# etcd is needed at test time whether or not we build.
apt_install etcd-server openssl

if [[ -x "$CACHE" ]]; then
    log "cached binary present: $CACHE ($("$CACHE" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

apt_install golang-go rsync jq dpkg-dev make

# Derive a deb-src entry from the configured Debian mirror (deb822 debian.sources on bookworm,
# or a one-line sources.list on older images) so we use the same mirror/snapshot as the image.
mirror=""
if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    mirror=$(awk '
        /^URIs:/   { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") found = uri }
        /^$/       { if (found) { print found; exit } }
        END        { if (found) print found }' /etc/apt/sources.list.d/debian.sources | head -n1)
fi
if [[ -z "$mirror" && -f /etc/apt/sources.list ]]; then
    mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list)
fi
mirror="${mirror:-http://deb.debian.org/debian}"

if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding deb-src entry for $mirror bookworm"
    cat >"$SRC_LIST" <<EOF
Types: deb-src
URIs: $mirror
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
apt-get update -qq

build_dir=$(mktemp -d "$BUILD_PARENT/netmapper-kube-build.XXXXXX")
# (apt-get source warns that it downloads "unsandboxed as root" here: harmless.)
# The tree is 1.8 GB: always remove it, also when the build fails.
trap 'log "removing $build_dir"; rm -rf "$build_dir"' EXIT

t_fetch=$(date +%s)
log "fetching source package kubernetes into $build_dir"
(cd "$build_dir" && apt-get source -qq kubernetes >/dev/null)
src=$(find "$build_dir" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
[[ -n "$src" ]] || { log "apt-get source produced no kubernetes-* directory"; exit 1; }
log "fetched in $(($(date +%s) - t_fetch))s: $src"

t_build=$(date +%s)
log "building cmd/kube-apiserver (takes ~5 min on 2 cores)"
# GOFLAGS=-mod=vendor: build strictly from the vendored tree (the module proxy is not reachable).
# GOCACHE inside the build dir so it is deleted along with the tree.
(
    cd "$src"
    export GOFLAGS=-mod=vendor GOCACHE="$build_dir/gocache" GOPATH="$build_dir/gopath" GOPROXY=off
    # The Debian tree may lack .git; version info then comes from hack's fallback (ok for tests).
    make WHAT=cmd/kube-apiserver >"$build_dir/build.log" 2>&1 || { tail -n 50 "$build_dir/build.log" >&2; exit 1; }
)
log "built in $(($(date +%s) - t_build))s"

bin=$(find "$src/_output" -type f -name kube-apiserver -perm -u+x | head -n1)
[[ -n "$bin" ]] || { log "no kube-apiserver binary under $src/_output"; exit 1; }
mkdir -p "$(dirname "$CACHE")"
# Copy then rename so a concurrent reader never sees a half-written binary.
cp "$bin" "$CACHE.tmp.$$"
chmod 0755 "$CACHE.tmp.$$"
mv -f "$CACHE.tmp.$$" "$CACHE"
log "cached $CACHE ($(du -h "$CACHE" | cut -f1)); total $(($(date +%s) - t_start))s"
