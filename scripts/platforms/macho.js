'use strict'
// Reads a 64-bit Mach-O file's header, the dylibs it links and the symbols it exports (from the
// export trie dyld uses, and from the symbol table), so a macOS binary built here can be checked
// without a Mac: the right CPU, a dylib, and `napi_register_module_v1` exported for Node to find.

const fs = require('node:fs')

const MH_MAGIC_64 = 0xfeedfacf
const CPUS = { 0x01000007: 'x86_64', 0x0100000c: 'arm64' }
const FILETYPES = { 1: 'object', 2: 'execute', 6: 'dylib', 8: 'bundle' }
const LC_SYMTAB = 0x2
const LC_LOAD_DYLIB = 0xc
const LC_ID_DYLIB = 0xd
const LC_DYLD_INFO = 0x22
const LC_LOAD_WEAK_DYLIB = 0x80000018
const LC_REEXPORT_DYLIB = 0x8000001f
const LC_DYLD_INFO_ONLY = 0x80000022
const LC_DYLD_EXPORTS_TRIE = 0x80000033

function uleb(buf, off) {
  let result = 0
  let shift = 0
  for (;;) {
    if (off >= buf.length) throw new Error('ULEB128 runs past the end of the file')
    const b = buf[off++]
    result += (b & 0x7f) * 2 ** shift
    shift += 7
    if ((b & 0x80) === 0) return [result, off]
  }
}

function cstr(buf, off, end = buf.length) {
  const stop = buf.indexOf(0, off)
  return buf.toString('latin1', off, stop < 0 || stop > end ? end : stop)
}

/** The names in an export trie at `start`, `size` bytes long. */
function trieNames(buf, start, size) {
  const names = []
  const seen = new Set()
  const walk = (nodeOff, prefix) => {
    if (nodeOff >= size || seen.has(nodeOff)) return
    seen.add(nodeOff)
    let p = start + nodeOff
    let terminal
    ;[terminal, p] = uleb(buf, p)
    if (terminal > 0) names.push(prefix)
    p += terminal
    const children = buf[p++]
    for (let i = 0; i < children; i++) {
      const edge = cstr(buf, p, start + size)
      p += edge.length + 1
      let child
      ;[child, p] = uleb(buf, p)
      walk(child, prefix + edge)
    }
  }
  if (size > 0) walk(0, '')
  return names
}

/**
 * `{ cpu, filetype, dylibs, id, exports, trieExports, imports }` of a thin 64-bit little-endian
 * Mach-O file: `trieExports` is what dyld can find (null without an export trie), `exports` adds
 * the external symbols of the symbol table.
 */
function readMachO(bufOrPath) {
  const buf = Buffer.isBuffer(bufOrPath) ? bufOrPath : fs.readFileSync(bufOrPath)
  if (buf.length < 32) throw new Error('not a Mach-O file')
  if (buf.readUInt32BE(0) === 0xcafebabe) throw new Error('a universal (fat) Mach-O file: read each slice')
  if (buf.readUInt32LE(0) !== MH_MAGIC_64) throw new Error('not a 64-bit little-endian Mach-O file')
  const cputype = buf.readUInt32LE(4)
  const filetype = buf.readUInt32LE(12)
  const ncmds = buf.readUInt32LE(16)
  const dylibs = []
  let id = null
  let trie = null
  let symtab = null
  let off = 32
  for (let i = 0; i < ncmds; i++) {
    const cmd = buf.readUInt32LE(off)
    const size = buf.readUInt32LE(off + 4)
    if (size < 8 || off + size > buf.length) throw new Error(`load command ${i} is malformed`)
    if (cmd === LC_LOAD_DYLIB || cmd === LC_LOAD_WEAK_DYLIB || cmd === LC_REEXPORT_DYLIB) dylibs.push(cstr(buf, off + buf.readUInt32LE(off + 8), off + size))
    else if (cmd === LC_ID_DYLIB) id = cstr(buf, off + buf.readUInt32LE(off + 8), off + size)
    else if (cmd === LC_DYLD_INFO || cmd === LC_DYLD_INFO_ONLY) trie = { off: buf.readUInt32LE(off + 40), size: buf.readUInt32LE(off + 44) }
    else if (cmd === LC_DYLD_EXPORTS_TRIE) trie = { off: buf.readUInt32LE(off + 8), size: buf.readUInt32LE(off + 12) }
    else if (cmd === LC_SYMTAB) symtab = { symoff: buf.readUInt32LE(off + 8), nsyms: buf.readUInt32LE(off + 12), stroff: buf.readUInt32LE(off + 16), strsize: buf.readUInt32LE(off + 20) }
    off += size
  }
  const trieExports = trie ? trieNames(buf, trie.off, trie.size).sort() : null
  const exported = new Set(trieExports || [])
  // Undefined symbols by where dyld is to find them: a dylib (two-level namespace, ordinal from 1)
  // or, with `-undefined dynamic_lookup`, any image already loaded (Node's napi_* functions).
  const imports = {}
  if (symtab) {
    for (let i = 0; i < symtab.nsyms; i++) {
      const e = symtab.symoff + i * 16
      const type = buf[e + 4]
      if ((type & 0xe0) !== 0 || !(type & 0x01)) continue // debugging entries, local symbols
      const name = cstr(buf, symtab.stroff + buf.readUInt32LE(e), symtab.stroff + symtab.strsize)
      // External (N_EXT), defined in a section (N_SECT).
      if ((type & 0x0e) === 0x0e) exported.add(name)
      else if ((type & 0x0e) === 0) {
        const ordinal = (buf.readUInt16LE(e + 6) >> 8) & 0xff
        const from = ordinal === 0xfe ? 'dynamic lookup' : ordinal === 0 ? 'self' : ordinal === 0xff ? 'main executable' : dylibs[ordinal - 1] || `ordinal ${ordinal}`
        ;(imports[from] ||= []).push(name)
      }
    }
  }
  return { cpu: CPUS[cputype] || `cputype 0x${cputype.toString(16)}`, filetype: FILETYPES[filetype] || `filetype ${filetype}`, dylibs, id, exports: [...exported].sort(), trieExports, imports }
}

module.exports = { readMachO }

if (require.main === module) {
  for (const file of process.argv.slice(2)) {
    const info = readMachO(file)
    const imports = Object.fromEntries(Object.entries(info.imports).map(([k, v]) => [k, `${v.length}: ${v.slice(0, 12).join(' ')}${v.length > 12 ? ' …' : ''}`]))
    console.log(file, JSON.stringify({ ...info, exports: info.exports.length > 40 ? [...info.exports.slice(0, 40), `… ${info.exports.length} in all`] : info.exports, imports }, null, 1))
  }
}
