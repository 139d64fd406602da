'use strict'
// The packed tarballs install into an empty project and load from CJS and ESM with no Rust
// toolchain: the binary comes from the platform package.
const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..')

const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64'

describe('npm run pack:local', { skip: !onLinuxX64 && 'the expected tarball names are for linux-x64-gnu hosts' }, () => {
  let project, tarballs

  before(() => {
    const printed = execFileSync('node', [path.join(root, 'scripts', 'pack-local.js')], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    tarballs = printed.trim().split('\n').filter((l) => l.endsWith('.tgz'))
    project = fs.mkdtempSync(path.join(os.tmpdir(), 'ferrisession-install-'))
    fs.writeFileSync(path.join(project, 'package.json'), '{"name":"consumer","version":"1.0.0","private":true}')
  })
  after(() => fs.rmSync(project, { recursive: true, force: true }))

  it('writes the root package without a binary and the host package with one', () => {
    assert.equal(tarballs.length, 2)
    const list = (t) => execFileSync('tar', ['tzf', t], { encoding: 'utf8' })
    const [rootTgz, hostTgz] = tarballs
    assert.match(path.basename(rootTgz), /^ferrisession-\d/)
    assert.doesNotMatch(list(rootTgz), /\.node\b/)
    assert.match(list(rootTgz), /package\/index\.d\.ts/)
    assert.match(path.basename(hostTgz), /^ferrisession-linux-x64-gnu-/)
    assert.match(list(hostTgz), /ferrisession\.linux-x64-gnu\.node/)
  })

  it('installs offline and loads from CJS and ESM without a Rust toolchain', () => {
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', ...tarballs], { cwd: project, stdio: 'ignore' })
    const env = { ...process.env, PATH: path.dirname(process.execPath) + ':/usr/bin:/bin', CARGO_HOME: '/nonexistent', RUSTUP_HOME: '/nonexistent' }
    fs.writeFileSync(
      path.join(project, 'a.cjs'),
      'const {RedisStore}=require("ferrisession");const s=new RedisStore({url:"memory://"});' +
        's.set("a",{cookie:{},v:"cjs"}).then(()=>s.get("a")).then(v=>{console.log(v.v);s.close()})',
    )
    fs.writeFileSync(
      path.join(project, 'b.mjs'),
      'import {RedisStore} from "ferrisession";import D from "ferrisession";const s=new RedisStore({url:"memory://"});' +
        'await s.set("a",{cookie:{},v:"esm"});console.log((await s.get("a")).v, D===RedisStore);s.close()',
    )
    assert.equal(execFileSync('node', ['a.cjs'], { cwd: project, env, encoding: 'utf8' }).trim(), 'cjs')
    assert.equal(execFileSync('node', ['b.mjs'], { cwd: project, env, encoding: 'utf8' }).trim(), 'esm true')
  })
})
