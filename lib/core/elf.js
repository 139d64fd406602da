'use strict'
// Reads what a shared object asks of the dynamic loader, from its ELF headers alone: the
// interpreter, the NEEDED libraries and the symbol versions it requires. Enough to tell a musl
// binary from a glibc one without running it (a binary can be built on a glibc host for a musl
// target and still need glibc, which only shows on Alpine at load time). The load-failure
// message uses it (`binding.js`), and so do the platform checks (scripts/platforms/).

const fs = require('node:fs')

const PT_LOAD = 1
const PT_DYNAMIC = 2
const PT_INTERP = 3
const DT_NULL = 0
const DT_NEEDED = 1
const DT_STRTAB = 5
const DT_STRSZ = 10
const DT_SONAME = 14
const DT_VERNEED = 0x6ffffffe
const DT_VERNEEDNUM = 0x6fffffff
const SHT_GNU_VERNEED = 0x6ffffffe

const MACHINES = { 3: 'x86', 8: 'mips', 40: 'arm', 62: 'x86_64', 183: 'aarch64', 243: 'riscv' }

/** A bounds-checked reader over one file's bytes, for one class (32/64) and byte order. */
function reader(buf, is64, little) {
  const check = (off, len) => {
    if (off < 0 || off + len > buf.length) throw new Error(`ELF read out of bounds at ${off}+${len} (file is ${buf.length} bytes)`)
  }
  const u16 = (off) => (check(off, 2), little ? buf.readUInt16LE(off) : buf.readUInt16BE(off))
  const u32 = (off) => (check(off, 4), little ? buf.readUInt32LE(off) : buf.readUInt32BE(off))
  const u64 = (off) => {
    check(off, 8)
    const v = little ? buf.readBigUInt64LE(off) : buf.readBigUInt64BE(off)
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) return Number.MAX_SAFE_INTEGER
    return Number(v)
  }
  const word = is64 ? u64 : u32
  const cstr = (off) => {
    check(off, 1)
    const end = buf.indexOf(0, off)
    if (end < 0) throw new Error(`unterminated string at ${off}`)
    return buf.toString('latin1', off, end)
  }
  return { u16, u32, word, cstr }
}

/**
 * Parses `bufOrPath` (a Buffer or a file path). Returns
 * `{ class, machine, interp, needed, soname, versionNeeds: [{file, versions}], dynstr }`;
 * `interp` is null for a shared object without PT_INTERP (the usual case for a .node file).
 */
function readElf(bufOrPath) {
  const buf = Buffer.isBuffer(bufOrPath) ? bufOrPath : fs.readFileSync(bufOrPath)
  if (buf.length < 52 || buf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file')
  const is64 = buf[4] === 2
  if (!is64 && buf[4] !== 1) throw new Error(`unknown ELF class ${buf[4]}`)
  const little = buf[5] === 1
  const r = reader(buf, is64, little)

  const machineId = r.u16(18)
  const phoff = is64 ? r.word(0x20) : r.word(0x1c)
  const shoff = is64 ? r.word(0x28) : r.word(0x20)
  const phentsize = r.u16(is64 ? 0x36 : 0x2a)
  const phnum = r.u16(is64 ? 0x38 : 0x2c)
  const shentsize = r.u16(is64 ? 0x3a : 0x2e)
  const shnum = r.u16(is64 ? 0x3c : 0x30)

  const segments = []
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize
    segments.push(
      is64
        ? { type: r.u32(p), offset: r.word(p + 8), vaddr: r.word(p + 16), filesz: r.word(p + 32) }
        : { type: r.u32(p), offset: r.word(p + 4), vaddr: r.word(p + 8), filesz: r.word(p + 16) },
    )
  }
  // The dynamic section names addresses; the loadable segment holding one says where it is in the file.
  const fileOffset = (vaddr) => {
    const seg = segments.find((s) => s.type === PT_LOAD && vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz)
    if (!seg) throw new Error(`address 0x${vaddr.toString(16)} is in no loadable segment`)
    return seg.offset + (vaddr - seg.vaddr)
  }

  const interpSeg = segments.find((s) => s.type === PT_INTERP)
  const interp = interpSeg ? r.cstr(interpSeg.offset) : null

  const dynSeg = segments.find((s) => s.type === PT_DYNAMIC)
  const dyn = []
  if (dynSeg) {
    const size = is64 ? 16 : 8
    for (let off = dynSeg.offset; off + size <= dynSeg.offset + dynSeg.filesz; off += size) {
      const tag = is64 ? r.word(off) : r.u32(off)
      if (tag === DT_NULL) break
      dyn.push({ tag, val: is64 ? r.word(off + 8) : r.u32(off + 4) })
    }
  }
  const one = (tag) => dyn.find((d) => d.tag === tag)?.val
  const strtabAddr = one(DT_STRTAB)
  const strtab = strtabAddr === undefined ? null : fileOffset(strtabAddr)
  const strsz = one(DT_STRSZ) ?? 0
  const str = (i) => r.cstr(strtab + i)

  const needed = strtab === null ? [] : dyn.filter((d) => d.tag === DT_NEEDED).map((d) => str(d.val))
  const sonameIdx = one(DT_SONAME)
  const soname = sonameIdx === undefined || strtab === null ? null : str(sonameIdx)

  // Version requirements (.gnu.version_r): one Verneed per library, Vernaux entries per version.
  // Located through DT_VERNEED; the section table is read too in case the dynamic entry is absent.
  let verneed = one(DT_VERNEED) === undefined ? null : fileOffset(one(DT_VERNEED))
  let verneedNum = one(DT_VERNEEDNUM) ?? 0
  if (verneed === null && shoff && shnum) {
    for (let i = 0; i < shnum; i++) {
      const s = shoff + i * shentsize
      if (r.u32(s + 4) === SHT_GNU_VERNEED) {
        verneed = is64 ? r.word(s + 0x18) : r.word(s + 0x10)
        verneedNum = r.u32(is64 ? s + 0x2c : s + 0x1c) // sh_info: the entry count
      }
    }
  }
  const versionNeeds = []
  if (verneed !== null && strtab !== null) {
    let vn = verneed
    for (let i = 0; i < verneedNum; i++) {
      const cnt = r.u16(vn + 2)
      const file = str(r.u32(vn + 4))
      const versions = []
      let aux = vn + r.u32(vn + 8)
      for (let j = 0; j < cnt; j++) {
        versions.push(str(r.u32(aux + 8)))
        const next = r.u32(aux + 12)
        if (next === 0) break
        aux += next
      }
      versionNeeds.push({ file, versions })
      const next = r.u32(vn + 12)
      if (next === 0) break
      vn += next
    }
  }

  const dynstr = strtab === null ? [] : buf.toString('latin1', strtab, strtab + strsz).split('\0').filter(Boolean)

  return { class: is64 ? 64 : 32, machine: MACHINES[machineId] || `e_machine ${machineId}`, interp, needed, soname, versionNeeds, dynstr }
}

/** Every `GLIBC_*` version the binary names: in its version requirements or its dynamic strings. */
function glibcVersions(info) {
  const found = new Set()
  for (const need of info.versionNeeds) for (const v of need.versions) if (v.startsWith('GLIBC_')) found.add(v)
  for (const s of info.dynstr) if (s.startsWith('GLIBC_')) found.add(s)
  return [...found].sort()
}

const MUSL_NEEDED = /^(libc\.so|libc\.musl-[a-z0-9_]+\.so\.1|ld-musl-[a-z0-9_]+\.so\.1)$/
const GLIBC_NEEDED = /^(libc\.so\.6|ld-linux[-a-z0-9_.]*\.so\.\d|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libgcc_s\.so\.1)$/

/**
 * Which C library an ELF file was linked for: `{ libc: 'musl' | 'glibc' | 'none' | 'mixed', why }`.
 * 'musl' needs a musl interpreter (if any), only musl NEEDED libc names, and no GLIBC_ version.
 */
function libcOf(info) {
  const glibc = glibcVersions(info)
  const muslNeeded = info.needed.filter((n) => MUSL_NEEDED.test(n))
  const glibcNeeded = info.needed.filter((n) => GLIBC_NEEDED.test(n))
  const interpMusl = info.interp !== null && /\/ld-musl-/.test(info.interp)
  const interpGlibc = info.interp !== null && /\/ld-linux/.test(info.interp)
  const glibcSigns = [...glibcNeeded.map((n) => `NEEDED ${n}`), ...glibc.map((v) => `version ${v}`), ...(interpGlibc ? [`interpreter ${info.interp}`] : [])]
  const muslSigns = [...muslNeeded.map((n) => `NEEDED ${n}`), ...(interpMusl ? [`interpreter ${info.interp}`] : [])]
  if (glibcSigns.length && muslSigns.length) return { libc: 'mixed', why: [...muslSigns, ...glibcSigns] }
  if (glibcSigns.length) return { libc: 'glibc', why: glibcSigns }
  if (muslSigns.length) return { libc: 'musl', why: muslSigns }
  return { libc: 'none', why: ['no C library named'] }
}

module.exports = { readElf, glibcVersions, libcOf }

