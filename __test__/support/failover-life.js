'use strict'
// One cluster failover life, shared by the failover test and its measurement run:
// a fresh store over every node of `cluster`, N sessions written and replicated, then a
// primary killed (SIGKILL) or frozen (SIGSTOP) in one of the variants below, and the time until
// every key is served again. The cluster is put back together afterwards (the victim rejoins
// as a replica), so lives can follow one another on one cluster.
const fs = require('node:fs')
const { RedisStore } = require('../..')
const { sleep, until } = require('./redis.js')

const SESSIONS = 200
const LANES = 64

/**
 * The variants a life can take:
 * - `victim`: 'first-seed' (the killed primary is first in the store's node list, so also the
 *   node it read its slot map from) or 'last-seed' (last in the list: never asked for the map);
 * - `signal`: 'SIGKILL', or 'SIGSTOP' held until the replica is promoted;
 * - `load`: 'idle' (nothing in flight at the kill; sequential reads after it), 'sequential'
 *   (sequential reads through the kill) or 'lanes' (LANES reads in flight through the kill,
 *   beside the sequential sweep);
 * - `replica`: false kills the victim's replica first: its slots have no server until the
 *   victim comes back, and calls must fail with a coded error, not hang.
 */
function variants() {
  const out = []
  for (const replica of [true, false]) {
    for (const signal of ['SIGKILL', 'SIGSTOP']) {
      for (const victim of ['first-seed', 'last-seed']) {
        for (const load of ['idle', 'sequential', 'lanes']) {
          if (!replica && (signal === 'SIGSTOP' || load === 'idle')) continue
          out.push({ victim, signal, load, replica })
        }
      }
    }
  }
  return out
}

const roleOf = (n) => n.cli('ROLE').split('\n')[0]

/**
 * When the cluster could serve every slot again after `since` (epoch ms), by its nodes' own
 * logs: the last node to log a won failover election or its cluster state turning ok. 0 when
 * none did.
 */
function servableAt(cluster, since) {
  let last = 0
  for (const n of cluster.nodes) {
    let log = ''
    try {
      log = fs.readFileSync(n.logfile, 'utf8')
    } catch {}
    for (const m of log.matchAll(/^\d+:\w (\d+ \w+ \d+ [\d:.]+) [*#] (?:Failover election won|Cluster state changed: ok)/gm)) {
      const at = Date.parse(m[1])
      if (at > since) last = Math.max(last, at)
    }
  }
  return last
}

/** The replica of primary `p` among `cluster`'s running nodes. */
function replicaOf(cluster, p) {
  return cluster.nodes.find((n) => n.proc && n !== p && roleOf(n) === 'slave' && new RegExp(`master_port:${p.port}\\b`).test(n.cli('INFO', 'replication')))
}

/**
 * Runs one life. Returns `{victim, recoveredMs, maxCallMs, codes}`: the killed node's port,
 * when the first sweep in which every key read back succeeded after the fault (with no replica:
 * after the victim came back), or null if none within `limitMs`; the slowest call; the error
 * codes seen; `servableMs`, when the cluster itself could serve every slot again, on the same
 * clock (see `servableAt`).
 */
async function failoverLife(cluster, { victim: where, signal, load, replica }, { life, commandTimeout = 3000, limitMs = 20000, nodeTimeout }) {
  const primaries = cluster.nodes.filter((n) => n.proc && roleOf(n) === 'master')
  const victim = primaries[life % primaries.length]
  const others = cluster.nodes.filter((n) => n !== victim).map((n) => n.url)
  const nodes = where === 'first-seed' ? [victim.url, ...others] : [...others, victim.url]
  const store = new RedisStore({ cluster: { nodes }, prefix: `fo${life}:`, commandTimeout })
  const ids = Array.from({ length: SESSIONS }, (_, i) => `s${i}`)
  const sess = (id) => ({ cookie: { originalMaxAge: 3600e3, expires: new Date(Date.now() + 3600e3), httpOnly: true, path: '/' }, id })
  const codes = {}
  let maxCallMs = 0
  const timed = async (f) => {
    const t = performance.now()
    try {
      return await f()
    } finally {
      maxCallMs = Math.max(maxCallMs, performance.now() - t)
    }
  }
  const ok = async (id) => {
    try {
      const s = await timed(() => store.get(id))
      return s !== null && s.id === id
    } catch (e) {
      if (typeof e.code !== 'string') throw e
      codes[e.code] = (codes[e.code] || 0) + 1
      return false
    }
  }
  let replicaKilled = null
  let faultAt = 0
  let backWall = 0
  let stop = false
  const background = []
  try {
    await Promise.all(ids.map((id) => store.set(id, sess(id))))
    await cluster.inSync()
    const sweepAll = async () => {
      let good = 0
      for (const id of ids) if (await ok(id)) good++
      return good
    }
    if (load !== 'idle') {
      // Calls are in flight when the fault comes.
      background.push(
        (async () => {
          while (!stop) await sweepAll()
        })(),
      )
      if (load === 'lanes') {
        for (let l = 0; l < LANES; l++) {
          background.push(
            (async () => {
              for (let i = l; !stop; i += LANES) await ok(ids[i % SESSIONS])
            })(),
          )
        }
      }
      await sleep(200)
    }
    if (!replica) {
      replicaKilled = replicaOf(cluster, victim)
      await replicaKilled.stop()
      await sleep(200)
    }
    faultAt = performance.now()
    const faultAtWall = Date.now()
    if (signal === 'SIGKILL') await victim.stop()
    else victim.proc.kill('SIGSTOP')

    let recoveredMs = null
    if (replica) {
      while (performance.now() - faultAt < limitMs) {
        if ((await sweepAll()) === SESSIONS) {
          recoveredMs = performance.now() - faultAt
          break
        }
      }
    } else {
      // No server has those slots: calls fail with a code within their timeout until the victim
      // is back (the cluster refuses every call meanwhile). With no copy left anywhere its keys
      // are gone; served again means every read is answered, with the session or with null.
      await sleep(nodeTimeout + 1000)
      await victim.start()
      const back = performance.now()
      backWall = Date.now()
      const answered = async () => {
        const before = Object.values(codes).reduce((a, b) => a + b, 0)
        await sweepAll()
        return Object.values(codes).reduce((a, b) => a + b, 0) === before
      }
      while (performance.now() - back < limitMs) {
        if (await answered()) {
          recoveredMs = performance.now() - back
          break
        }
      }
    }
    stop = true
    await Promise.all(background)
    const from = replica ? faultAtWall : backWall
    const servable = servableAt(cluster, from)
    return { victim: victim.port, recoveredMs, servableMs: servable ? servable - from : null, maxCallMs, codes }
  } finally {
    stop = true
    await Promise.all(background).catch(() => {})
    store.close()
    // Put the cluster back: the victim (and its replica) rejoin, one as a replica.
    if (signal === 'SIGSTOP' && victim.proc) victim.proc.kill('SIGCONT')
    else if (!victim.proc) await victim.start()
    if (replicaKilled) await replicaKilled.start()
    await until(() => cluster.nodes.every((n) => /cluster_state:ok/.test(n.cli('CLUSTER', 'INFO'))), 30000, 'the cluster to be whole again')
    await until(() => cluster.nodes.filter((n) => roleOf(n) === 'master').length === 3, 30000, 'three primaries')
    await cluster.inSync()
  }
}

module.exports = { failoverLife, variants }
