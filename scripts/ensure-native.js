'use strict'
// Builds the native addon when no binary for this platform is present yet, so `npm run demo`
// works on a fresh clone.
const { execSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const built = fs.readdirSync(root).some((f) => /^ferrisession\..+\.node$/.test(f))
if (!built) {
  console.log('building the native addon (first run)…')
  execSync('npm run build', { cwd: root, stdio: 'inherit' })
}
