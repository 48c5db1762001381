#!/usr/bin/env bash
# One kernel source tree for bcc: Debian's -common headers overlaid with the -amd64 ones
# (pointing bcc at either alone fails: ./include/linux/kconfig.h not found). Struct layouts there may
# differ from the running kernel; the offsets netmapper reads come from BTF instead. Idempotent.
set -euo pipefail
KSRC=${1:-/usr/src/netmapper-kernel-src}
if [ -f "$KSRC/include/linux/kconfig.h" ] && [ -f "$KSRC/.config" ]; then exit 0; fi
common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1)
arch=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1)
if [ -z "$common" ] || [ -z "$arch" ]; then
  echo "prepare-kernel-src: Debian linux-headers-amd64 not installed under /usr/src" >&2; exit 1
fi
echo "prepare-kernel-src: $KSRC from $common + $arch"
rm -rf "$KSRC.tmp"; mkdir -p "$KSRC.tmp"
cp -a "$common/." "$KSRC.tmp/"
cp -a "$arch/." "$KSRC.tmp/"
rm -rf "$KSRC"; mv "$KSRC.tmp" "$KSRC"
