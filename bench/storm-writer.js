'use strict'
// Another process writing every key the `storm` phase reads (`sess:bench-0` … `sess:bench-999`),
// over and over until SIGTERM, so a near cache hears a storm of invalidations. Prints `ready`
// once its first round is written, and its rounds on exit.
const { createClient } = require('redis')

const KEYS = 1_000
const value = (round) => JSON.stringify({ cookie: { originalMaxAge: 86_400_000, expires: new Date(Date.now() + 86_400_000) }, round })

async function main() {
  const client = createClient({ url: process.argv[2] })
  client.on('error', () => {})
  await client.connect()
  let rounds = 0
  let stop = false
  process.on('SIGTERM', () => (stop = true))
  while (!stop) {
    const v = value(rounds)
    await Promise.all(Array.from({ length: KEYS }, (_, k) => client.set(`sess:bench-${k}`, v, { EX: 86_400 })))
    if (rounds++ === 0) process.stdout.write('ready\n')
  }
  process.stdout.write(`${rounds}\n`)
  await client.quit()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
