'use strict'
// The cross-built binaries are what their package names promise. scripts/platforms/build.js
// builds them the way the release workflow does into a cache keyed by the sources (.ci/run runs
// it first); these tests read the binaries for the current sources from there:
//   - each musl binary's ELF asks only for musl (interpreter, NEEDED) and has no GLIBC_ version;
//   - the same reader calls the host's glibc binary glibc, so the check can fail;
//   - each musl binary runs the store against redis-server in Node for musl, under musl's own
//     loader (scripts/platforms/musl-runtime.sh fetches both; aarch64 runs under qemu-user);
//   - the linux-arm64-gnu binary asks for no newer glibc than it should, and runs the store in
//     Node for arm64 under qemu-user (scripts/platforms/gnu-runtime.sh fetches it);
//   - the FreeBSD binary needs FreeBSD's libraries and symbol versions only;
//   - each macOS binary is a Mach-O dylib for its CPU that exports napi_register_module_v1.
// A binary or runtime that is absent skips its test with the reason outside CI, and fails in CI.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { readElf, glibcVersions, libcOf } = require('../lib/core/elf.js')
const { readMachO } = require('../scripts/platforms/macho.js')
const { sourceHash, outputDir, muslRuntime, gnuRuntime } = require('../scripts/platforms/cache.js')
const { startRedis } = require('./support/redis.js')

const root = path.join(__dirname, '..')
const inCI = Boolean(process.env.CI)
const hash = sourceHash()

/** The cached binary of `target` for the current sources, or a reason it is absent. */
function binaryOf(target) {
  const dir = outputDir(target, hash)
  const file = fs.existsSync(path.join(dir, '.done')) && fs.readdirSync(dir).find((f) => f.endsWith('.node'))
  if (file) return { file: path.join(dir, file) }
  return { absent: `no ${target} binary for sources ${hash} in ${dir}: run node scripts/platforms/build.js ${target}` }
}

/** Skips `t` with `why` outside CI; in CI an absent artifact fails the test. */
function absent(t, why) {
  if (inCI) assert.fail(why)
  console.log(`# skipped: ${why}`)
  t.skip(why)
}

const MUSL = [
  { target: 'x86_64-unknown-linux-musl', machine: 'x86_64', file: 'ferrisession.linux-x64-musl.node' },
  { target: 'aarch64-unknown-linux-musl', machine: 'aarch64', file: 'ferrisession.linux-arm64-musl.node' },
]

describe('musl binaries', () => {
  for (const m of MUSL) {
    it(`${m.target}: interpreter and NEEDED are musl's, no GLIBC_ version`, (t) => {
      const bin = binaryOf(m.target)
      if (bin.absent) return absent(t, bin.absent)
      assert.equal(path.basename(bin.file), m.file)
      const info = readElf(bin.file)
      assert.equal(info.machine, m.machine)
      assert.equal(info.class, 64)
      assert.ok(info.interp === null || /\/ld-musl-/.test(info.interp), `interpreter ${info.interp}`)
      assert.ok(info.needed.length > 0, 'a dynamically linked addon names its C library')
      for (const n of info.needed) assert.match(n, /^(libc\.so|libc\.musl-[a-z0-9_]+\.so\.1|ld-musl-[a-z0-9_]+\.so\.1)$/, `NEEDED ${n} is not musl's`)
      assert.deepEqual(glibcVersions(info), [])
      assert.deepEqual(info.versionNeeds.map((v) => v.file), [], 'musl has no symbol versioning to require')
      assert.equal(libcOf(info).libc, 'musl')
    })
  }

  it("the reader calls the host's glibc binary glibc", (t) => {
    const host = path.join(root, 'ferrisession.linux-x64-gnu.node')
    if (process.platform !== 'linux' || process.arch !== 'x64') return t.skip('the host binary is linux-x64-gnu only on linux x64 hosts')
    assert.ok(fs.existsSync(host), `${host} is built by npm run build before the tests`)
    const info = readElf(host)
    const verdict = libcOf(info)
    assert.equal(verdict.libc, 'glibc', verdict.why.join(', '))
    assert.ok(info.needed.includes('libc.so.6'), `NEEDED ${info.needed}`)
    assert.ok(glibcVersions(info).length > 0, 'the glibc binary requires GLIBC_ versions')
    // The check musl binaries must pass fails for this one.
    assert.ok(info.needed.some((n) => !/^(libc\.so|libc\.musl-[a-z0-9_]+\.so\.1|ld-musl-[a-z0-9_]+\.so\.1)$/.test(n)))
  })

  it('the reader rejects what is not ELF and reads a 32-bit header', () => {
    assert.throws(() => readElf(Buffer.from('MZ not an ELF file at all, padded to fifty-two bytes...')), /not an ELF file/)
    // A minimal 32-bit little-endian shared object with no program headers.
    const b = Buffer.alloc(52)
    b.writeUInt32BE(0x7f454c46, 0)
    b[4] = 1
    b[5] = 1
    b.writeUInt16LE(3, 16)
    b.writeUInt16LE(40, 18)
    const info = readElf(b)
    assert.deepEqual([info.class, info.machine, info.interp, info.needed], [32, 'arm', null, []])
    assert.equal(libcOf(info).libc, 'none')
  })
})

/** Runs `cmd args` and resolves with `{code, signal, stdout, stderr, hung}`; killed after `ms`. */
function run(cmd, args, env, ms = 60000) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    let hung = false
    const timer = setTimeout(() => {
      hung = true
      child.kill('SIGKILL')
    }, ms)
    child.on('error', (e) => (stderr += `\nspawn error: ${e.message}`))
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, hung })
    })
  })
}

const { NODE_TEST_CONTEXT, FERRISESSION_NO_LIBUV, ...inherited } = process.env

/**
 * Runs support/platform-smoke.js in the runtime `rt` with `bin` as the addon, on `driver`,
 * against `url` under `prefix`; checks that it exited by itself after every step, with `bin`
 * loaded, and gives its report.
 */
async function smoke(rt, bin, driver, url, prefix) {
  const env = { ...inherited, NAPI_RS_NATIVE_LIBRARY_PATH: bin.file, ...(driver === 'thread' ? { FERRISESSION_NO_LIBUV: '1' } : {}) }
  const r = await run(rt.cmd, [...rt.args, path.join(__dirname, 'support', 'platform-smoke.js'), url, prefix], env, 120000)
  assert.equal(r.hung, false, `the runtime did not exit by itself: ${r.stdout} ${r.stderr}`)
  assert.equal(r.code, 0, `exit ${r.code ?? r.signal}: ${r.stdout} ${r.stderr}`)
  const out = JSON.parse(r.stdout.trim().split('\n').pop())
  assert.equal(out.ok, true)
  assert.deepEqual(out.loaded, [bin.file], 'the binary built here is the addon that was loaded')
  assert.equal(out.steps.length, 7)
  return out
}

describe('the musl binaries in Node for musl', { skip: process.platform !== 'linux' && 'runs on linux hosts only' }, () => {
  let redis
  before(async () => {
    redis = await startRedis()
  })
  after(async () => {
    await redis.close()
  })

  for (const m of MUSL) {
    for (const driver of ['libuv', 'thread']) {
      it(`${m.target} runs the store against redis-server (${driver} driver)`, async (t) => {
        const bin = binaryOf(m.target)
        if (bin.absent) return absent(t, bin.absent)
        const rt = muslRuntime(m.machine)
        if (rt.absent) return absent(t, rt.absent)
        const out = await smoke(rt, bin, driver, redis.url, `musl-${m.machine}-${driver}:`)
        assert.equal(out.glibc, null, 'the runtime is not glibc')
        assert.equal(out.arch, { x86_64: 'x64', aarch64: 'arm64' }[m.machine])
        console.log(`# ${m.machine} musl Node ${out.version}${rt.cmd.startsWith('qemu') ? ' under qemu' : ''}, ${driver}: ${out.steps.join(', ')}; 2000 sets in ${out.setsMs} ms`)
      })
    }
  }
})

// Built with -x (cargo-zigbuild) for glibc 2.17, the floor napi-rs's own cross toolchain sets:
// zig links against glibc 2.17's symbol versions, so the binary loads on any glibc since.
const ARM64_GNU_MAX_GLIBC = '2.17'

describe('the linux-arm64-gnu binary', { skip: process.platform !== 'linux' && 'runs on linux hosts only' }, () => {
  const target = `aarch64-unknown-linux-gnu.${ARM64_GNU_MAX_GLIBC}`
  const [maxMajor, maxMinor] = ARM64_GNU_MAX_GLIBC.split('.').map(Number)
  /** Whether a `GLIBC_x.y[.z]` version is newer than the floor (`GLIBC_PRIVATE` is not). */
  const tooNew = (v) => {
    const [major, minor] = v.slice('GLIBC_'.length).split('.').map(Number)
    return major > maxMajor || (major === maxMajor && minor > maxMinor)
  }

  it(`${target}: an aarch64 glibc binary asking for GLIBC_${ARM64_GNU_MAX_GLIBC} at most`, (t) => {
    const bin = binaryOf(target)
    if (bin.absent) return absent(t, bin.absent)
    assert.equal(path.basename(bin.file), 'ferrisession.linux-arm64-gnu.node')
    const info = readElf(bin.file)
    assert.deepEqual([info.class, info.machine], [64, 'aarch64'])
    assert.equal(libcOf(info).libc, 'glibc')
    const versions = glibcVersions(info)
    assert.ok(versions.length > 0)
    assert.deepEqual(versions.filter(tooNew), [], `newer than ${ARM64_GNU_MAX_GLIBC}: ${versions}`)
  })

  let redis
  before(async () => {
    redis = await startRedis()
  })
  after(async () => {
    await redis.close()
  })
  for (const driver of ['libuv', 'thread']) {
    it(`${target} runs the store against redis-server in Node for arm64 under qemu-user (${driver} driver)`, async (t) => {
      const bin = binaryOf(target)
      if (bin.absent) return absent(t, bin.absent)
      const rt = gnuRuntime('aarch64')
      if (rt.absent) return absent(t, rt.absent)
      const out = await smoke(rt, bin, driver, redis.url, `gnu-arm64-${driver}:`)
      assert.equal(out.arch, 'arm64')
      assert.match(out.glibc, /^2\.\d+$/)
      console.log(`# arm64 glibc ${out.glibc} Node ${out.version} under qemu, ${driver}: 2000 sets in ${out.setsMs} ms`)
    })
  }
})

describe('the FreeBSD binary', () => {
  it('x86_64-unknown-freebsd: needs FreeBSD libc.so.7, FBSD_ symbol versions only', (t) => {
    const bin = binaryOf('x86_64-unknown-freebsd')
    if (bin.absent) return absent(t, bin.absent)
    assert.equal(path.basename(bin.file), 'ferrisession.freebsd-x64.node')
    const info = readElf(bin.file)
    assert.deepEqual([info.class, info.machine, info.interp], [64, 'x86_64', null])
    assert.ok(info.needed.includes('libc.so.7'), `NEEDED ${info.needed}`)
    for (const n of info.needed) assert.match(n, /^lib(c|m|thr|pthread|gcc_s|cxxrt)\.so\.\d+$/, `NEEDED ${n} is not a FreeBSD base library`)
    const versions = info.versionNeeds.flatMap((v) => v.versions)
    assert.ok(versions.length > 0)
    for (const v of versions) assert.match(v, /^FBSD_\d+\.\d+$/)
    assert.deepEqual(glibcVersions(info), [])
  })
})

const DARWIN = [
  { target: 'x86_64-apple-darwin', cpu: 'x86_64', file: 'ferrisession.darwin-x64.node' },
  { target: 'aarch64-apple-darwin', cpu: 'arm64', file: 'ferrisession.darwin-arm64.node' },
]

// Linked here against stub frameworks (scripts/platforms/build.js says why): these check the
// shape of the file, not that macOS loads it.
describe('macOS binaries', () => {
  for (const m of DARWIN) {
    it(`${m.target}: a Mach-O dylib for ${m.cpu} whose export trie has napi_register_module_v1`, (t) => {
      const bin = binaryOf(m.target)
      if (bin.absent) return absent(t, bin.absent)
      assert.equal(path.basename(bin.file), m.file)
      const info = readMachO(bin.file)
      assert.equal(info.cpu, m.cpu)
      assert.equal(info.filetype, 'dylib')
      assert.ok(info.trieExports, 'an export trie for dyld')
      assert.ok(info.trieExports.includes('_napi_register_module_v1'), 'napi_register_module_v1 is exported')
      assert.ok(info.dylibs.includes('/usr/lib/libSystem.B.dylib'), `links libSystem: ${info.dylibs}`)
      for (const fw of ['Security', 'CoreFoundation']) assert.ok(info.dylibs.includes(`/System/Library/Frameworks/${fw}.framework/Versions/A/${fw}`), `links ${fw}: ${info.dylibs}`)
      // napi-rs's dyn-symbols: Node's napi_* functions are looked up at load, never linked or defined.
      const imported = Object.values(info.imports).flat()
      assert.ok(!info.exports.some((s) => s.startsWith('_napi_create_')) && !imported.some((s) => s.startsWith('_napi_create_')))
    })
  }

  it('the reader rejects an ELF file and a universal binary', () => {
    assert.throws(() => readMachO(path.join(root, 'ferrisession.linux-x64-gnu.node')), /not a 64-bit little-endian Mach-O/)
    const fat = Buffer.alloc(64)
    fat.writeUInt32BE(0xcafebabe, 0)
    assert.throws(() => readMachO(fat), /universal/)
  })
})
