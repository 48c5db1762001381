#!/usr/bin/env bash
# make setup: everything netmapper needs on a fresh Debian bookworm machine (idempotent).
# Needs root: it installs Debian packages, mounts tracefs and loads BPF programs to check the kernel.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "setup: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (installs packages, mounts tracefs, loads eBPF)"

KSRC=/usr/src/netmapper-kernel-src
PY=${PYTHON:-python3}

# libbpf1: the sniffer works its BPF objects through libbpf (sniffer/libbpf.py); iptables: the
# dual-stack test puts a ClusterIP behind DNAT, as kube-proxy does; openssl: the auth tests and
# scripts/deploy-secrets.sh make certificates with it.
source scripts/lib/apt.sh
apt_install bpfcc-tools python3-bpfcc libbpfcc libbpf1 bpftool linux-headers-amd64 iproute2 gcc libc6-dev iptables graphviz openssl

bash scripts/prepare-kernel-src.sh "$KSRC"
# PostgreSQL server binaries for the scale-out store and its tests (nothing is started here).
bash scripts/postgres.sh install

mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing \
  || die "cannot mount tracefs at /sys/kernel/tracing"
[ -r /sys/kernel/btf/vmlinux ] || die "kernel has no BTF (/sys/kernel/btf/vmlinux): netmapper needs it for struct offsets"

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
# bcc is Debian's pure-Python module over libbcc.so.0; there is no usable pip route.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ln -sfn /usr/lib/python3/dist-packages/bcc "$site/bcc"
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

# Prove the kernel loads a BPF program through bcc before anyone relies on it.
BCC_KERNEL_SOURCE=$KSRC .venv/bin/python - <<'PY' || die "this kernel cannot load BPF programs through bcc (see above)"
from bcc import BPF
BPF(text='int noop(void *ctx) { return 0; }').load_func("noop", BPF.SOCKET_FILTER)
PY
echo "setup: ok"
