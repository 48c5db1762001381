#!/usr/bin/env bash
# Build (once) and cache the Kubernetes v1.20.2 binaries netmapper's tests run: kube-apiserver (API-server
# tests) and kubelet, kube-controller-manager, kube-scheduler, kube-proxy, kubectl (the real cluster).
#
# No registry ships these binaries and the Go module proxy is not reachable, but Debian bookworm's source
# package `kubernetes` (v1.20.2) holds the full tree with vendor/, so it builds offline with Debian's Go.
# The vendored modern-go/reflect2 crashes the API server on the first custom resource with Go >= 1.18;
# Debian's fixed copy (golang-github-modern-go-reflect2-dev) replaces it so the ClientIntents CRD works.
# ~7-11 minutes cold on 2 cores, 1.8 GB of disk during the build (deleted after); cached runs return at once.
#
# Idempotent. Needs root (apt-get). Environment:
#   NETMAPPER_KUBE_CACHE  directory of the cached binaries (default /var/cache/netmapper/kubernetes-v1.20.2)
#   NETMAPPER_KUBE_BUILD  parent dir for the temporary build tree (default: $TMPDIR or /tmp)
set -euo pipefail

CACHE="${NETMAPPER_KUBE_CACHE:-/var/cache/netmapper/kubernetes-v1.20.2}"
BUILD_PARENT="${NETMAPPER_KUBE_BUILD:-${TMPDIR:-/tmp}}"
SRC_LIST=/etc/apt/sources.list.d/netmapper-deb-src.sources
CMDS=(kube-apiserver kubelet kube-controller-manager kube-scheduler kube-proxy kubectl)
STAMP="$CACHE/.complete-reflect2-fixed"

log() { printf '[kube-build.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
t_start=$(date +%s)

source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

# etcd is needed at test time whether or not we build.
apt_install etcd-server openssl

if [[ -f "$STAMP" ]]; then
    log "cached binaries present in $CACHE"
    exit 0
fi

apt_install golang-go rsync jq dpkg-dev make golang-github-modern-go-reflect2-dev

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
    cat >"$SRC_LIST" <<EOS
Types: deb-src
URIs: $mirror
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
fi
apt-get update -qq

build_dir=$(mktemp -d "$BUILD_PARENT/netmapper-kube-build.XXXXXX")
trap 'log "removing $build_dir"; rm -rf "$build_dir"' EXIT

log "fetching source package kubernetes into $build_dir"
(cd "$build_dir" && apt-get source -qq kubernetes >/dev/null)
src=$(find "$build_dir" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
[[ -n "$src" ]] || { log "apt-get source produced no kubernetes-* directory"; exit 1; }

fixed=/usr/share/gocode/src/github.com/modern-go/reflect2
vendored="$src/vendor/github.com/modern-go/reflect2"
[[ -d "$fixed" && -d "$vendored" ]] || { log "reflect2 not found ($fixed or $vendored)"; exit 1; }
rm -f "$vendored"/*.go "$vendored"/*.s
cp "$fixed"/*.go "$vendored"/
cp "$fixed"/*.s "$vendored"/ 2>/dev/null || true
log "vendored reflect2 replaced by Debian's $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"

t_build=$(date +%s)
what=""
for c in "${CMDS[@]}"; do what+="cmd/$c "; done
log "building ${CMDS[*]} (7-11 min on 2 cores)"
(
    cd "$src"
    # Static binaries (no cgo): they run in any container and on any host of this kind.
    env -u GOPATH -u GOFLAGS -u GO111MODULE CGO_ENABLED=0 GOPROXY=off \
        make WHAT="${what% }" GOLDFLAGS='-s -w' >"$build_dir/build.log" 2>&1 \
        || { tail -n 50 "$build_dir/build.log" >&2; exit 1; }
)
log "built in $(($(date +%s) - t_build))s"

mkdir -p "$CACHE"
for c in "${CMDS[@]}"; do
    bin=$(find "$src/_output" -type f -name "$c" -perm -u+x | head -n1)
    [[ -n "$bin" ]] || { log "no $c binary under $src/_output"; exit 1; }
    cp "$bin" "$CACHE/$c.tmp.$$" && chmod 0755 "$CACHE/$c.tmp.$$" && mv -f "$CACHE/$c.tmp.$$" "$CACHE/$c"
done
# The pause container of every pod sandbox: Kubernetes' own static pause.c, built here (no registry).
gcc -Os -static -o "$CACHE/pause" "$src/build/pause/linux/pause.c" -DVERSION=3.4.1-netmapper
touch "$STAMP"
log "cached in $CACHE ($(du -sh "$CACHE" | cut -f1)); total $(($(date +%s) - t_start))s"
