'use strict'
// An unstorage driver with the options and key layout of unstorage/drivers/redis (`base:key`).

const { OP, openLink } = require('./core/adapter.js')
const { badArgument } = require('./core/errors.js')

function normalizeKey(key) {
  if (!key) return ''
  return String(key).replace(/[:/\\]/g, ':').replace(/^[:/\\]|[:/\\]$/g, '')
}

function joinKeys(...keys) {
  return keys.map(normalizeKey).filter(Boolean).join(':')
}

function ferrisessionDriver(opts = {}) {
  const base = (opts.base || '').replace(/:$/, '')
  if (opts.hashIds) throw badArgument('hashIds does not apply to unstorage: its keys must stay listable by name')
  const link = openLink(opts, 'unstorage')
  const p = (...keys) => joinKeys(base, ...keys)
  const d = (key) => (base ? key.slice(base.length + 1) : key)
  // Keys strictly under `base2` (within our base): an exact, glob-free prefix.
  const under = (base2) => {
    const prefix = p(base2 || '')
    return prefix ? `${prefix}:` : ''
  }
  const scanCount = opts.scanCount || 100

  async function setItem(key, value, tOptions) {
    const ttl = (tOptions && tOptions.ttl) ?? opts.ttl
    await link.call(OP.SET, p(key), String(value), ttl ? ttl : undefined)
  }

  return {
    name: 'ferrisession',
    options: opts,
    async hasItem(key) {
      return (await link.call(OP.EXISTS, p(key))) > 0
    },
    async getItem(key) {
      return await link.call(OP.GET, p(key))
    },
    async getItems(items) {
      const keys = items.map((item) => p(item.key))
      if (keys.length === 0) return []
      const values = await link.call(OP.MGET, '', undefined, undefined, keys)
      return keys.map((key, i) => ({ key: d(key), value: values[i] ?? null }))
    },
    setItem,
    // Calls made together share one round trip, so a batch is just the calls.
    async setItems(items, commonOptions) {
      await Promise.all(items.map((item) => setItem(item.key, item.value, { ...commonOptions, ...item.options })))
    },
    async removeItem(key) {
      await link.call(OP.DESTROY, p(key))
    },
    async getKeys(base2) {
      return (await link.call(OP.IDS, under(base2), undefined, scanCount)).map((id) => d(under(base2) + id))
    },
    async clear(base2) {
      await link.call(OP.CLEAR, under(base2), undefined, scanCount)
    },
    dispose() {
      link.close()
    },
  }
}

module.exports = ferrisessionDriver
module.exports.default = ferrisessionDriver
