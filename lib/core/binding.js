'use strict'
// The native module, through the loader napi-rs generates (`native.js`, rewritten by every
// build). When no binary loads, the generated loader says only that npm may have a bug; this
// says what happened instead: the platform, arch and C library it found, the file and package it
// looked for, each error the loader met, and what the binaries it did find were built for.

const fs = require('node:fs')
const path = require('node:path')

const loaderFile = path.join(__dirname, '..', '..', 'native.js')

let binding
try {
  binding = require(loaderFile)
} catch (err) {
  throw isNotFound(err) ? loadFailure(err) : err
}
module.exports = binding

/** The generated loader's two "nothing loaded" errors; a version mismatch and others pass through. */
function isNotFound(err) {
  return err instanceof Error && /^(Cannot find native binding|Failed to load native binding)/.test(err.message)
}

/** `glibc 2.36`, `musl`, or why neither was found; null off Linux. */
function detectLibc() {
  if (process.platform !== 'linux') return null
  let report = null
  try {
    if (process.report && typeof process.report.getReport === 'function') {
      process.report.excludeNetwork = true
      report = process.report.getReport()
    }
  } catch {}
  const glibc = report && report.header && report.header.glibcVersionRuntime
  if (glibc) return `glibc ${glibc}`
  if (report && Array.isArray(report.sharedObjects) && report.sharedObjects.some((f) => /libc\.musl-|ld-musl-|-linux-musl\//.test(f))) return 'musl'
  try {
    if (fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl')) return 'musl'
  } catch {}
  return 'unknown (the process reports no glibc and no musl)'
}

/** The napi-rs platform name the loader looks for, e.g. `linux-x64-gnu`; null if it has none. */
function platformName(platform, arch, libc) {
  const musl = libc !== null && libc.startsWith('musl')
  if (platform === 'linux') {
    if (arch === 'x64' || arch === 'arm64') return `linux-${arch}-${musl ? 'musl' : 'gnu'}`
    if (arch === 'arm') return `linux-arm-${musl ? 'musleabihf' : 'gnueabihf'}`
    return `linux-${arch}-gnu`
  }
  if (platform === 'darwin') return `darwin-${arch}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  if (platform === 'freebsd') return `freebsd-${arch}`
  return null
}

/**
 * The generated loader chains its errors through `cause`, the last one outermost. Node's
 * "Require stack" tail is the same for each and is left off.
 */
function loaderErrors(err) {
  const out = []
  for (let e = err.cause; e && out.length < 50; e = e.cause) out.unshift(String(e.message || e).replace(/\nRequire stack:[\s\S]*$/, ''))
  return out
}

/** What a binary was built for, as far as its headers tell; '' when that cannot be read. */
function describeBinary(file) {
  try {
    const buf = fs.readFileSync(file)
    if (buf.length >= 4 && buf.readUInt32BE(0) === 0x7f454c46) {
      const { readElf, libcOf } = require('./elf.js')
      const info = readElf(buf)
      const { libc, why } = libcOf(info)
      const cLib = libc === 'none' ? '' : libc === 'mixed' ? `, mixed musl and glibc (${why.join(', ')})` : `, built for ${libc} (${why.slice(0, 3).join(', ')})`
      return `ELF ${info.machine}${cLib}`
    }
    if (buf.length >= 4 && buf.readUInt32LE(0) === 0xfeedfacf) return 'Mach-O (macOS)'
    if (buf.length >= 2 && buf.toString('latin1', 0, 2) === 'MZ') return 'PE (Windows)'
    return 'not a binary this loader knows'
  } catch (e) {
    return `unreadable: ${e.message}`
  }
}

/** The `.node` files beside the loader and in the installed platform package, with what each is. */
function binariesFound(pkgName) {
  const found = []
  const dir = path.dirname(loaderFile)
  try {
    for (const f of fs.readdirSync(dir)) if (f.endsWith('.node')) found.push(path.join(dir, f))
  } catch {}
  if (pkgName) {
    try {
      const pkgDir = path.dirname(require.resolve(`${pkgName}/package.json`, { paths: [dir] }))
      for (const f of fs.readdirSync(pkgDir)) if (f.endsWith('.node')) found.push(path.join(pkgDir, f))
    } catch {}
  }
  return found.map((file) => ({ file, is: describeBinary(file) }))
}

function loadFailure(cause) {
  const { platform, arch } = process
  const libc = detectLibc()
  const name = platformName(platform, arch, libc)
  const file = name && `ferrisession.${name}.node`
  const pkg = name && `ferrisession-${name}`
  const errors = loaderErrors(cause)
  const found = binariesFound(pkg)
  const lines = [`ferrisession could not load its native binary on ${platform} ${arch}${libc ? ` (C library: ${libc})` : ''}.`]
  if (process.env.NAPI_RS_NATIVE_LIBRARY_PATH) lines.push(`NAPI_RS_NATIVE_LIBRARY_PATH is set: ${process.env.NAPI_RS_NATIVE_LIBRARY_PATH}`)
  lines.push(name ? `It looked for ${file} beside ${loaderFile} and for the package ${pkg}.` : `No binary is published for ${platform} ${arch}.`)
  lines.push(`Each error the loader met, in order:`)
  for (const e of errors.length ? errors : ['(none recorded)']) lines.push(`  - ${e.split('\n').join('\n    ')}`)
  if (found.length) {
    lines.push('Binaries present:')
    for (const b of found) lines.push(`  - ${b.file}: ${b.is}`)
  } else lines.push('No .node binary is present beside the loader.')
  lines.push(
    pkg
      ? `Install ${pkg} (an optional dependency of ferrisession: check that optional dependencies were not omitted, and that node_modules was installed on this platform, not copied from another), or build from source with \`npm run build\` in a clone of the repository. docs/platforms.md lists the binaries published.`
      : 'Build from source with `npm run build` in a clone of the repository. docs/platforms.md lists the binaries published.',
  )
  const err = new Error(lines.join('\n'))
  err.code = 'ERR_NO_NATIVE_BINARY'
  err.platform = platform
  err.arch = arch
  err.libc = libc
  err.lookedFor = name ? { file, package: pkg } : null
  err.loadErrors = errors
  err.found = found
  err.cause = cause
  return err
}
