'use strict'
// Cross-builds the addon for the targets named on the command line (with none, the ones CI
// checks: CROSS_TARGETS) the way the release workflow
// does (`npm run build -- --target <t> -x`, i.e. cargo-zigbuild; Windows GNU with mingw-w64, see
// below), into a cache outside the work tree: the host's binary, native.js and target/ are left
// alone. A target whose binary for the current sources is already cached is not built again.
//
//   node scripts/platforms/build.js [x86_64-unknown-linux-musl aarch64-unknown-linux-gnu.2.17 ...]
//
// Prints one line per target: `<target> built|cached <file> <seconds>`; exits 1 if any failed.

const { spawnSync, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { root, cacheDir, sourceHash, outputDir } = require('./cache.js')

function installedTargets() {
  return execFileSync('rustup', ['target', 'list', '--installed'], { encoding: 'utf8' }).split('\n').filter(Boolean)
}

function ensureTarget(target) {
  if (installedTargets().includes(target)) return
  console.error(`rustup target add ${target}`)
  execFileSync('rustup', ['target', 'add', target], { stdio: 'inherit' })
}

/** cargo-zigbuild finds zig on PATH or as the `ziglang` Python module; either will do. */
function checkZig() {
  const zigOnPath = spawnSync('zig', ['version'], { encoding: 'utf8' }).status === 0
  const zigModule = spawnSync('python3', ['-m', 'ziglang', 'version'], { encoding: 'utf8' }).status === 0
  if (!zigOnPath && !zigModule) throw new Error('zig is missing: `pip install ziglang cargo-zigbuild`')
  if (spawnSync('cargo-zigbuild', ['--version']).status !== 0) throw new Error('cargo-zigbuild is missing: `pip install ziglang cargo-zigbuild`')
}

/**
 * A stand-in macOS SDK holding only empty text stubs (.tbd) for the two frameworks the crate
 * links (Security and CoreFoundation, through rustls-native-certs). No Apple SDK can be had
 * here; with these, zig's linker finishes the link and records each framework's real install
 * name, and the framework functions are left to bind by flat lookup at load time (napi-rs links
 * with `-undefined dynamic_lookup`). A binary to ship is linked on macOS.
 */
function stubMacSdk() {
  const sdk = path.join(cacheDir(), 'macos-stub-sdk')
  for (const fw of ['Security', 'CoreFoundation']) {
    const dir = path.join(sdk, 'System', 'Library', 'Frameworks', `${fw}.framework`)
    fs.mkdirSync(dir, { recursive: true })
    const tbd = [
      '--- !tapi-tbd',
      'tbd-version:     4',
      'targets:         [ x86_64-macos, arm64-macos ]',
      `install-name:    '/System/Library/Frameworks/${fw}.framework/Versions/A/${fw}'`,
      'current-version: 1',
      'exports:',
      '  - targets:         [ x86_64-macos, arm64-macos ]',
      '    symbols:         [ ]',
      '...',
      '',
    ].join('\n')
    fs.writeFileSync(path.join(dir, `${fw}.tbd`), tbd)
  }
  return sdk
}

function built(dir) {
  if (!fs.existsSync(path.join(dir, '.done'))) return null
  const node = fs.readdirSync(dir).find((f) => f.endsWith('.node'))
  return node ? path.join(dir, node) : null
}

function build(target, hash) {
  const out = outputDir(target, hash)
  const cached = built(out)
  if (cached) return { target, state: 'cached', file: cached, seconds: 0 }
  // cargo-zigbuild takes the newest glibc a -gnu binary may ask for as a suffix
  // (`aarch64-unknown-linux-gnu.2.17`); rustup knows the plain triple.
  ensureTarget(target.replace(/\.\d+\.\d+$/, ''))
  if (target.endsWith('-pc-windows-gnu')) {
    const status = spawnSync(`${target.split('-')[0]}-w64-mingw32-gcc`, ['--version']).status
    if (status !== 0) throw new Error(`${target} needs mingw-w64: apt-get install mingw-w64`)
  } else checkZig()
  fs.rmSync(out, { recursive: true, force: true })
  fs.mkdirSync(out, { recursive: true })
  const log = path.join(out, 'build.log')
  const started = Date.now()
  const env = { ...process.env }
  if (target.endsWith('-apple-darwin') && !env.SDKROOT) env.SDKROOT = stubMacSdk()
  // The release workflow builds Windows with MSVC on Windows runners. Here the GNU target is
  // built with Debian's mingw-w64 (napi-rs's -x refuses windows-gnu), linking against an import
  // library of node.exe that LIBNODE_PATH names (scripts/platforms/test-windows.sh makes it).
  const windowsGnu = target.endsWith('-pc-windows-gnu')
  if (windowsGnu) {
    if (!env.LIBNODE_PATH) throw new Error(`${target}: set LIBNODE_PATH to a folder holding libnode.dll (an import library of node.exe)`)
    const linkerVar = `CARGO_TARGET_${target.toUpperCase().replace(/-/g, '_')}_LINKER`
    env[linkerVar] ||= `${target.split('-')[0]}-w64-mingw32-gcc`
  }
  const args = ['-n', '10', 'npm', 'run', 'build', '--', '--target', target, ...(windowsGnu ? [] : ['-x']), '--target-dir', path.join(cacheDir(), 'target'), '-o', out]
  const fd = fs.openSync(log, 'w')
  const r = spawnSync('nice', args, { cwd: root, env, stdio: ['ignore', fd, fd] })
  fs.closeSync(fd)
  const seconds = Math.round((Date.now() - started) / 1000)
  const node = fs.readdirSync(out).find((f) => f.endsWith('.node'))
  if (r.status !== 0 || !node) {
    const tail = fs.readFileSync(log, 'utf8').trim().split('\n').slice(-25).join('\n')
    return { target, state: 'failed', file: log, seconds, tail }
  }
  // A binary is filed under the sources it was built from: sources edited during the build void it.
  if (sourceHash() !== hash) return { target, state: 'failed', file: log, seconds, tail: 'the sources changed during the build; run it again' }
  fs.writeFileSync(path.join(out, '.done'), JSON.stringify({ target, hash, seconds, at: new Date().toISOString() }) + '\n')
  // Binaries for older sources of this target are of no further use.
  for (const old of fs.readdirSync(path.dirname(out))) if (old !== hash) fs.rmSync(path.join(path.dirname(out), old), { recursive: true, force: true })
  return { target, state: 'built', file: path.join(out, node), seconds }
}

// The cross-built targets CI builds and __test__/platforms.test.js checks (the rustup target
// each needs is added by `build`).
const CROSS_TARGETS = [
  'x86_64-unknown-linux-musl',
  'aarch64-unknown-linux-musl',
  'aarch64-unknown-linux-gnu.2.17',
  'x86_64-apple-darwin',
  'aarch64-apple-darwin',
  'x86_64-unknown-freebsd',
]

module.exports = { build, checkZig, CROSS_TARGETS }

if (require.main === module) {
  const named = process.argv.slice(2)
  const targets = named.length ? named : CROSS_TARGETS
  const hash = sourceHash()
  let failed = 0
  for (const t of targets) {
    const r = build(t, hash)
    console.log(`${r.target} ${r.state} ${r.file} ${r.seconds}s`)
    if (r.state === 'failed') {
      failed++
      console.error(r.tail)
    }
  }
  process.exit(failed ? 1 : 0)
}
