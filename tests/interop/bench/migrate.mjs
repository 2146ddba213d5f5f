#!/usr/bin/env node
// `pds migrate` benchmark: one account with `--records` records and `--blob-bytes` of blobs moves
// between two of our servers on loopback; reports the command's wall time and peak memory.
// Run by `tests/bench.sh migrate [options]` (which builds the release binary), or directly:
//
//   node bench/migrate.mjs --pds <pds binary> [--records 100000] [--blob-bytes 1073741824]
//        [--blob-size 4194304] [--concurrency 4] [--work <dir>] [--keep]
//
// Server A (old host) runs the embedded PLC directory; server B (new host) uses it
// (PDS_DID_PLC_URL). The account on A gets `--records` records in all: one record of an unknown
// collection (com.example.bench.file) per blob, each blob `--blob-size` random bytes until
// `--blob-bytes` are reached, and app.bsky.feed.post records for the rest (applyWrites, 200 per
// call). Then `pds migrate` runs under `/usr/bin/time -v` (peak RSS = "Maximum resident set size"),
// taking the PLC token with `pds account token` from A's data directory. It must exit 0 (every
// check verified). Prints `bench <name> <value> <unit>` lines:
//   migrate.populate  time to fill the account (not part of the migration)
//   migrate.time      wall time of `pds migrate`
//   migrate.peak_rss  peak resident memory of `pds migrate`
//   migrate.repo_mb / migrate.blob_mb / migrate.records / migrate.blobs  what moved
//   migrate.mb_per_s  (repo + blob bytes) / migrate.time
import { spawn, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

const opt = {}
{
  const a = process.argv.slice(2)
  for (let i = 0; i < a.length; i++) {
    if (!a[i].startsWith('--')) throw new Error(`unexpected argument ${a[i]}`)
    const key = a[i].slice(2)
    if (key === 'keep') opt.keep = true
    else opt[key] = a[++i]
  }
}
if (!opt.pds) {
  console.error('usage: node bench/migrate.mjs --pds <pds binary> [--records N] [--blob-bytes N] ...')
  process.exit(2)
}
const PDS = path.resolve(opt.pds)
const RECORDS = Number(opt.records ?? 100_000)
const BLOB_BYTES = Number(opt['blob-bytes'] ?? 1024 * 1024 * 1024)
const BLOB_SIZE = Number(opt['blob-size'] ?? 4 * 1024 * 1024)
const CONCURRENCY = Number(opt.concurrency ?? 4)
const BLOBS = Math.ceil(BLOB_BYTES / BLOB_SIZE)
if (BLOBS > RECORDS) throw new Error('more blobs than records')
const work = opt.work ? path.resolve(opt.work) : fs.mkdtempSync(path.join(os.tmpdir(), 'pds-migrate-bench-'))
fs.mkdirSync(work, { recursive: true })
const log = (m) => console.error(`[migrate bench ${(process.uptime()).toFixed(1)}s] ${m}`)

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

const children = []
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')))

async function startServer(name, env) {
  const port = await freePort()
  const dataDir = path.join(work, name)
  fs.rmSync(dataDir, { recursive: true, force: true })
  fs.mkdirSync(dataDir, { recursive: true })
  const child = spawn(PDS, ['serve'], {
    env: {
      PATH: process.env.PATH,
      PDS_PORT: String(port),
      PDS_DATA_DIRECTORY: dataDir,
      PDS_HOSTNAME: 'localhost',
      PDS_DEV_MODE: 'true',
      PDS_BLOB_UPLOAD_LIMIT: String(Math.max(BLOB_SIZE * 2, 5 * 1024 * 1024)),
      PDS_MAX_REPO_IMPORT_SIZE: String(4 * 1024 * 1024 * 1024),
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  children.push(child)
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  for (;;) {
    try {
      const res = await fetch(`${url}/xrpc/_health`)
      if (res.ok) break
    } catch {}
    if (child.exitCode !== null) throw new Error(`${name} exited: ${child.exitCode}`)
    if (Date.now() > deadline) throw new Error(`${name} did not start`)
    await new Promise((r) => setTimeout(r, 100))
  }
  return { url, dataDir, child }
}

async function xrpc(base, method, { token, body, query, raw, contentType } = {}) {
  const url = new URL(`${base}/xrpc/${method}`)
  for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v)
  const headers = {}
  if (token) headers.authorization = `Bearer ${token}`
  let payload
  if (raw) {
    payload = raw
    headers['content-type'] = contentType
  } else if (body !== undefined) {
    payload = JSON.stringify(body)
    headers['content-type'] = 'application/json'
  }
  const res = await fetch(url, { method: payload === undefined ? 'GET' : 'POST', headers, body: payload })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : null
}

const plcPort = await freePort()
const a = await startServer('a', { PDS_PLC_EMBEDDED_PORT: String(plcPort) })
const plcUrl = `http://127.0.0.1:${plcPort}`
const b = await startServer('b', { PDS_DID_PLC_URL: plcUrl })
log(`server A ${a.url} (PLC ${plcUrl}), server B ${b.url}, work ${work}`)

// ---- populate A
const t0 = performance.now()
const session = await xrpc(a.url, 'com.atproto.server.createAccount', {
  body: { handle: 'bench.test', email: 'bench@example.com', password: 'bench-password' },
})
const did = session.did
const token = session.accessJwt
let writes = []
async function flush() {
  if (writes.length === 0) return
  await xrpc(a.url, 'com.atproto.repo.applyWrites', { token, body: { repo: did, writes } })
  writes = []
}
async function add(collection, value) {
  writes.push({ $type: 'com.atproto.repo.applyWrites#create', collection, value })
  if (writes.length >= 200) await flush()
}
let blobBytes = 0
for (let i = 0; i < BLOBS; i++) {
  const size = Math.min(BLOB_SIZE, BLOB_BYTES - blobBytes)
  const bytes = crypto.randomBytes(size)
  const out = await xrpc(a.url, 'com.atproto.repo.uploadBlob', {
    token,
    raw: bytes,
    contentType: 'application/octet-stream',
  })
  blobBytes += size
  await add('com.example.bench.file', { $type: 'com.example.bench.file', n: i, file: out.blob })
  if ((i + 1) % 32 === 0) log(`uploaded ${i + 1}/${BLOBS} blobs`)
}
const createdAt = new Date().toISOString()
for (let i = 0; i < RECORDS - BLOBS; i++) {
  await add('app.bsky.feed.post', { $type: 'app.bsky.feed.post', text: `bench post ${i}`, createdAt })
  if ((i + 1) % 20_000 === 0) log(`wrote ${i + 1}/${RECORDS - BLOBS} posts`)
}
await flush()
const populate = (performance.now() - t0) / 1000
log(`populated ${RECORDS} records and ${BLOBS} blobs (${(blobBytes / 2 ** 20).toFixed(0)} MiB) in ${populate.toFixed(1)} s`)

// ---- migrate A → B under /usr/bin/time -v
const tokenCmd = `PDS_DATA_DIRECTORY='${a.dataDir}' '${PDS}' account token "$PDS_MIGRATE_DID" plc_operation`
const args = [
  '-v',
  PDS,
  'migrate',
  '--from', a.url,
  '--to', b.url,
  '--handle', 'bench.test',
  '--new-handle', 'bench2.test',
  '--email', 'bench2@example.com',
  '--plc-url', plcUrl,
  '--plc-token-cmd', tokenCmd,
  '--blob-concurrency', String(CONCURRENCY),
  '--state-file', path.join(work, 'state.json'),
]
log(`running pds migrate (${args.slice(1).join(' ').replace(tokenCmd, '<token cmd>')})`)
const t1 = performance.now()
const run = spawnSync('/usr/bin/time', args, {
  env: { PATH: process.env.PATH, PDS_MIGRATE_PASSWORD: 'bench-password' },
  encoding: 'utf8',
  maxBuffer: 64 * 1024 * 1024,
})
const wall = (performance.now() - t1) / 1000
process.stderr.write(run.stdout)
const timeOut = run.stderr ?? ''
const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(timeOut)?.[1] ?? NaN)
if (run.status !== 0) {
  process.stderr.write(timeOut)
  log(`pds migrate failed: exit ${run.status}`)
  process.exit(1)
}
const repoMatch = /repository: ([\d.]+) (B|KiB|MiB|GiB)/.exec(run.stdout)
const unit = { B: 1, KiB: 1024, MiB: 2 ** 20, GiB: 2 ** 30 }
const repoBytes = repoMatch ? Number(repoMatch[1]) * unit[repoMatch[2]] : NaN
const phases = run.stdout
  .split('\n')
  .filter((l) => /^\s+(repository|blobs):/.test(l))
  .map((l) => l.trim())
for (const p of phases) log(p)

console.log(`bench migrate.populate ${populate.toFixed(1)} s`)
console.log(`bench migrate.time ${wall.toFixed(1)} s`)
console.log(`bench migrate.peak_rss ${(rssKb / 1024).toFixed(1)} MiB`)
console.log(`bench migrate.records ${RECORDS} records`)
console.log(`bench migrate.blobs ${BLOBS} blobs`)
console.log(`bench migrate.repo_mb ${(repoBytes / 2 ** 20).toFixed(1)} MiB`)
console.log(`bench migrate.blob_mb ${(blobBytes / 2 ** 20).toFixed(1)} MiB`)
console.log(`bench migrate.mb_per_s ${((repoBytes + blobBytes) / 2 ** 20 / wall).toFixed(1)} MiB/s`)
console.log(`bench migrate.load_avg ${os.loadavg()[0].toFixed(1)} (1 min, ${os.cpus().length} cores)`)

for (const c of children) c.kill('SIGTERM')
if (!opt.keep) fs.rmSync(work, { recursive: true, force: true })
process.exit(0)
