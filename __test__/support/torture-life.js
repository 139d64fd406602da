'use strict'
// One process life for __test__/torture.test.js (issue 16, item 1): the usual migration from
// connect-redis on Redis Cluster keeps the app's node-redis cluster client in the process.
//   node torture-life.js <seed url> <life number>
// A connected node-redis 5 cluster client, a store built from it and one built from
// `{cluster: {nodes: [url]}}`; one set and one get on each (and each reads the other's write);
// then both stores and the client are closed and the process must exit by itself with code 0.
const assert = require('node:assert/strict')
const { createCluster } = require('redis')
const { RedisStore } = require('../..')

process.exitCode = 1
const [url, life] = process.argv.slice(2)
// Where a life that hangs or dies got to.
const stage = (what) => process.stdout.write(`stage ${what}\n`)

;(async () => {
  const client = createCluster({ rootNodes: [{ url }] })
  client.on('error', () => {})
  await client.connect()
  stage('node-redis connected')
  const fromClient = new RedisStore({ client, prefix: 'life:' })
  const fromNodes = new RedisStore({ cluster: { nodes: [url] }, prefix: 'life:' })
  stage('stores made')
  const a = `${life}-${process.pid}-a`
  const b = `${life}-${process.pid}-b`
  await fromClient.set(a, { cookie: {}, life, by: 'client' })
  await fromNodes.set(b, { cookie: {}, life, by: 'nodes' })
  stage('set')
  assert.deepEqual(await fromClient.get(a), { cookie: {}, life, by: 'client' })
  assert.deepEqual(await fromNodes.get(b), { cookie: {}, life, by: 'nodes' })
  assert.deepEqual(await fromNodes.get(a), { cookie: {}, life, by: 'client' })
  // The app's client sees the store's keys where connect-redis would have put them.
  assert.equal(JSON.parse(await client.get(`life:${b}`)).by, 'nodes')
  await fromClient.destroy(a)
  await fromNodes.destroy(b)
  stage('read and destroyed')
  fromClient.close()
  fromNodes.close()
  stage('stores closed')
  await client.close()
  process.stdout.write(`RESULT ${JSON.stringify({ life: Number(life), driver: process.env.FERRISESSION_NO_LIBUV === '1' ? 'thread' : 'libuv' })}\n`)
  process.exitCode = 0
})().catch((e) => {
  process.stdout.write(`FAIL ${e && e.stack}\n`)
  process.exit(1)
})
