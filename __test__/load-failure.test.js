'use strict'
// When no binary loads, the error says what happened: the platform, arch and C library found,
// the file and package looked for, each loader error, and what the binaries present were built
// for. Each case runs in a child process on a copy of the package's loader files, so the binary
// can be hidden or swapped without touching the checkout.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { outputDir, sourceHash, muslRuntime } = require('../scripts/platforms/cache.js')

const root = path.join(__dirname, '..')
const inCI = Boolean(process.env.CI)
const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64'
const { NODE_TEST_CONTEXT, NAPI_RS_NATIVE_LIBRARY_PATH, ...inherited } = process.env

/** A copy of the files that load the binary, in a folder with no node_modules above it. */
function packageCopy() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrisession-load-'))
  fs.mkdirSync(path.join(dir, 'lib', 'core'), { recursive: true })
  for (const f of ['native.js', 'package.json']) fs.copyFileSync(path.join(root, f), path.join(dir, f))
  for (const f of ['binding.js', 'elf.js']) fs.copyFileSync(path.join(root, 'lib', 'core', f), path.join(dir, 'lib', 'core', f))
  return dir
}

// Prints the load error's fields as JSON, or `loaded` if a binary loaded.
const PROBE = `
try { require(process.argv[1]); console.log(JSON.stringify({ loaded: true })) }
catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, platform: e.platform, arch: e.arch, libc: e.libc, lookedFor: e.lookedFor, loadErrors: e.loadErrors, found: e.found })) }`

function probe(dir, { cmd = process.execPath, pre = [] } = {}) {
  const r = spawnSync(cmd, [...pre, '-e', PROBE, path.join(dir, 'lib', 'core', 'binding.js')], { env: inherited, encoding: 'utf8', timeout: 30000 })
  assert.equal(r.status, 0, `probe exited ${r.status ?? r.signal}: ${r.stdout} ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

describe('the error when no native binary loads', { skip: !onLinuxX64 && 'the cases name linux-x64 files' }, () => {
  const dirs = []
  const copy = () => {
    const d = packageCopy()
    dirs.push(d)
    return d
  }
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
  })

  it('a copy with its binary loads (the probe can tell success)', () => {
    const dir = copy()
    fs.copyFileSync(path.join(root, 'ferrisession.linux-x64-gnu.node'), path.join(dir, 'ferrisession.linux-x64-gnu.node'))
    assert.deepEqual(probe(dir), { loaded: true })
  })

  it('with the binary hidden: platform, arch, libc, what it looked for and each loader error', () => {
    const dir = copy()
    const e = probe(dir)
    assert.equal(e.code, 'ERR_NO_NATIVE_BINARY')
    assert.deepEqual([e.platform, e.arch], ['linux', 'x64'])
    assert.match(e.libc, /^glibc \d+\.\d+/)
    assert.deepEqual(e.lookedFor, { file: 'ferrisession.linux-x64-gnu.node', package: 'ferrisession-linux-x64-gnu' })
    assert.ok(e.loadErrors.some((m) => m === "Cannot find module './ferrisession.linux-x64-gnu.node'"), e.loadErrors.join(' | '))
    assert.ok(e.loadErrors.some((m) => m === "Cannot find module 'ferrisession-linux-x64-gnu'"), e.loadErrors.join(' | '))
    assert.deepEqual(e.found, [])
    for (const part of ['on linux x64 (C library: glibc', 'ferrisession.linux-x64-gnu.node', 'the package ferrisession-linux-x64-gnu', "Cannot find module 'ferrisession-linux-x64-gnu'", 'No .node binary is present']) {
      assert.ok(e.message.includes(part), `message lacks ${JSON.stringify(part)}:\n${e.message}`)
    }
    assert.doesNotMatch(e.message, /npm has a bug/)
    assert.doesNotMatch(e.message, /Require stack/)
  })

  it('with a musl binary where the glibc one belongs: the dlopen error and what the binary is', (t) => {
    const dir = outputDir('x86_64-unknown-linux-musl', sourceHash())
    const musl = fs.existsSync(path.join(dir, '.done')) ? path.join(dir, 'ferrisession.linux-x64-musl.node') : null
    if (!musl || !fs.existsSync(musl)) {
      const why = `no cached musl binary in ${dir}: run node scripts/platforms/build.js x86_64-unknown-linux-musl`
      if (inCI) assert.fail(why)
      console.log(`# skipped: ${why}`)
      return t.skip(why)
    }
    const pkg = copy()
    fs.copyFileSync(musl, path.join(pkg, 'ferrisession.linux-x64-gnu.node'))
    const e = probe(pkg)
    assert.equal(e.code, 'ERR_NO_NATIVE_BINARY')
    // glibc's loader cannot use musl's libc.so: the dlopen error is the first the loader met.
    assert.match(e.loadErrors[0], /libc\.so/)
    assert.doesNotMatch(e.loadErrors[0], /Cannot find module/)
    assert.equal(e.found.length, 1)
    assert.match(e.found[0].is, /^ELF x86_64, built for musl \(NEEDED libc\.so\)$/)
    assert.ok(e.message.includes('ferrisession.linux-x64-gnu.node: ELF x86_64, built for musl'), e.message)
  })

  it('with the glibc binary in Node for musl: libc musl, the dlopen error, the binary called glibc', (t) => {
    const rt = muslRuntime('x86_64')
    if (rt.absent) {
      if (inCI) assert.fail(rt.absent)
      console.log(`# skipped: ${rt.absent}`)
      return t.skip(rt.absent)
    }
    const pkg = copy()
    fs.copyFileSync(path.join(root, 'ferrisession.linux-x64-gnu.node'), path.join(pkg, 'ferrisession.linux-x64-gnu.node'))
    const e = probe(pkg, { cmd: rt.cmd, pre: rt.args })
    assert.equal(e.code, 'ERR_NO_NATIVE_BINARY')
    assert.equal(e.libc, 'musl')
    // This machine's /usr/bin/ldd is glibc's, so the generated loader still tries the gnu file:
    // musl's loader refuses it, and that refusal is reported.
    assert.match(e.loadErrors[0], /ferrisession\.linux-x64-gnu\.node|symbol not found|Error (loading|relocating)/)
    assert.doesNotMatch(e.loadErrors[0], /Cannot find module/)
    assert.match(e.found[0].is, /^ELF x86_64, built for glibc \(/)
    console.log(`# musl's loader said: ${e.loadErrors[0].split('\n')[0]}`)
  })
})
