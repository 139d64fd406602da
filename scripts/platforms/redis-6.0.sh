#!/usr/bin/env bash
# Fetches a Redis older than the store supports into the platform cache: Debian 11's
# redis-server 6.0, with the libraries it links that a newer system lacks (OpenSSL 1.1, Lua 5.1
# and its cjson and bitop modules; jemalloc and lzf too, so a machine without Redis has them).
# Nothing is installed: apt runs with its own lists and cache under the cache dir. Prints the
# path of a `redis-server` that runs it (a script that sets the library path and execs the
# server, so the process the harness spawned is the server). __test__/old-server.test.js
# starts it; .ci/run runs this first.
#
#   bash scripts/platforms/redis-6.0.sh
set -euo pipefail
# shellcheck source=debs.sh
. "$(dirname "$0")/debs.sh"

case "$(uname -m)" in
  x86_64) deb_arch=amd64 lib_arch=x86_64-linux-gnu ;;
  aarch64) deb_arch=arm64 lib_arch=aarch64-linux-gnu ;;
  *) echo "redis 6.0: no Debian package for $(uname -m) here" >&2; exit 2 ;;
esac
dir="${FERRISESSION_PLATFORM_CACHE:-$HOME/.cache/ferrisession-platforms}/redis-6.0"
server="$dir/redis-server"

if [ ! -x "$server" ]; then
  rm -f "$server"
  fetch_debs bullseye "$deb_arch" "$dir/apt" "$dir/root" \
    redis-server redis-tools liblua5.1-0 lua-cjson lua-bitop libssl1.1 libjemalloc2 liblzf1
  # Debian's redis-server is a link to the one multi-call binary, which acts on the name it was
  # run by: it is run through the link.
  cat >"$server.tmp" <<WRAPPER
#!/bin/sh
LD_LIBRARY_PATH="$dir/root/usr/lib/$lib_arch\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dir/root/usr/bin/redis-server" "\$@"
WRAPPER
  chmod +x "$server.tmp"
  mv "$server.tmp" "$server"
fi
"$server" --version | grep -q 'v=6\.0\.' || { echo "redis 6.0: $server is not Redis 6.0: $("$server" --version)" >&2; exit 1; }
echo "$server"
