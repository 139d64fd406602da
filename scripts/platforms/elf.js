'use strict'
// Prints what each ELF file named on the command line asks of the dynamic loader, and which C
// library that makes it for: node scripts/platforms/elf.js <file>...
const { readElf, glibcVersions, libcOf } = require('../../lib/core/elf.js')

for (const file of process.argv.slice(2)) {
  const info = readElf(file)
  const { dynstr, ...shown } = info
  console.log(file, JSON.stringify({ ...shown, glibc: glibcVersions(info), ...libcOf(info) }, null, 1))
}
