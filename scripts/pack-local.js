'use strict'
// Writes the root package and this host's platform package to target/pack/ as npm tarballs,
// using napi's own release steps (create-npm-dirs, artifacts, pre-publish) in a staging copy.
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const out = path.join(root, 'target', 'pack')
const stage = path.join(out, 'stage')
const napi = path.join(root, 'node_modules', '.bin', 'napi')
const run = (cmd, args, cwd = stage) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' })

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const binaries = fs.readdirSync(root).filter((f) => /^ferrisession\..+\.node$/.test(f))
if (binaries.length === 0) run('npm', ['run', 'build'], root)

fs.rmSync(out, { recursive: true, force: true })
fs.mkdirSync(stage, { recursive: true })
for (const entry of [...pkg.files, 'package.json', 'README.md']) {
  fs.cpSync(path.join(root, entry), path.join(stage, entry), { recursive: true })
}
for (const f of fs.readdirSync(root).filter((f) => /^ferrisession\..+\.node$/.test(f))) {
  fs.copyFileSync(path.join(root, f), path.join(stage, f))
}

// A local pack holds this host's binary only, so the staged config names this host's target.
const host = /host: (\S+)/.exec(run('rustc', ['-vV'], root))[1]
const staged = JSON.parse(fs.readFileSync(path.join(stage, 'package.json'), 'utf8'))
staged.napi.targets = [host]
fs.writeFileSync(path.join(stage, 'package.json'), JSON.stringify(staged, null, 2) + '\n')

run(napi, ['create-npm-dirs', '--npm-dir', 'npm'])
run(napi, ['artifacts', '--output-dir', '.', '--npm-dir', 'npm'])
// Records every platform package as an optional dependency of the root package, as a release
// does, without publishing anything.
run(napi, ['pre-publish', '--npm-dir', 'npm', '--skip-optional-publish', '--tag-style', 'npm'])

const tarballs = [run('npm', ['pack', '--pack-destination', out]).trim().split('\n').pop()]
for (const dir of fs.readdirSync(path.join(stage, 'npm'))) {
  const platformDir = path.join(stage, 'npm', dir)
  if (fs.readdirSync(platformDir).some((f) => f.endsWith('.node'))) {
    tarballs.push(run('npm', ['pack', '--pack-destination', out], platformDir).trim().split('\n').pop())
  }
}
fs.rmSync(stage, { recursive: true, force: true })
for (const t of tarballs) console.log(path.join(out, t))
