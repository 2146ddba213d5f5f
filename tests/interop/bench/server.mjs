#!/usr/bin/env node
// Server benchmark: our PDS vs the reference PDS (@atproto/pds, dev mode off), both started in
// this run on loopback and measured by the same load generator, `wrk` (Debian package), which
// is C and uses a fraction of the servers' CPU per request. Node only orchestrates.
//
//   node bench/server.mjs <our url|spawn:<pds binary>> <ref url|spawn>
//        [--duration 10] [--warmup 2] [--clients 8] [--batch 200] [--read-conns 16]
//        [--read-threads 1] [--wrk wrk] [--only ours|ref] [--metrics seq,c8,apply,get,rss]
//
// `spawn:<binary>` starts `<binary> serve` (PDS_DEV_MODE=true: loopback listener, http URL;
// the embedded PLC directory runs in the same process, so it counts in our memory) over a fresh
// temporary data directory; `spawn` starts ../start-refnet.mjs (reference PDS with devMode off;
// its PLC directory is a separate process, not counted). Both are killed at the end.
//
// For each server, metric by metric (ours, then the reference, so that both see the same
// machine load), each measured for `--duration` seconds after a `--warmup` of the same work:
//   createRecord.seq   one client, one account, one request at a time
//   createRecord.c8    `--clients` clients, each on its own account, one request at a time each
//   applyWrites        one client posting `--batch` creates per call; records/s
//   getRecord          `--read-conns` connections reading records (public, no auth); reads/s
//   rss.idle           resident memory after start-up, before any request (VmRSS)
//   rss.after          resident memory after the run; rss.peak is the high-water mark (VmHWM)
// `--metrics` measures only the listed figures (default: all; `rss` is rss.idle and rss.after),
// e.g. `--only ours --metrics seq,rss` to iterate on our sequential createRecord and idle memory.
// Every request must succeed: any non-2xx or socket error fails the run. Each figure is printed
// with the 1-minute load average when it was taken and the server's CPU use during it (cores).
// The disk's flush cost (write + fdatasync) is measured before and after: our server fsyncs
// every commit (SQLite WAL, synchronous=FULL), so it bounds the sequential createRecord figure;
// the reference's SQLite (better-sqlite3) is built with SQLITE_DEFAULT_WAL_SYNCHRONOUS=1, i.e.
// synchronous=NORMAL in WAL mode: its commits are not flushed until a checkpoint.
// Prints `bench <name> <value> <unit>` lines and a table with the ratios ours/ref.

import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { cleanup, createAccount, parseArgs, sleep, spawnOurs, spawnRef, xrpc } from './servers.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const { pos, opt } = parseArgs('usage: node server.mjs <our url|spawn:<pds binary>> <ref url|spawn> [options]')
const DURATION = Number(opt.duration ?? 10)
const WARMUP = Number(opt.warmup ?? 2)
const CLIENTS = Number(opt.clients ?? 8)
const BATCH = Number(opt.batch ?? 200)
const READ_CONNS = Number(opt['read-conns'] ?? 16)
const READ_THREADS = Number(opt['read-threads'] ?? 1)
const WRK = opt.wrk ?? 'wrk'
const ONLY = opt.only ?? null
const METRICS = new Set((opt.metrics ?? 'seq,c8,apply,get,rss').split(','))
for (const m of METRICS) {
  if (!['seq', 'c8', 'apply', 'get', 'rss'].includes(m)) {
    console.error(`bench: unknown metric '${m}' (known: seq, c8, apply, get, rss)`)
    process.exit(2)
  }
}
const CLK_TCK = 100 // /proc/<pid>/stat ticks per second on Linux

if (spawnSync(WRK, ['--version']).error) {
  console.error(`bench: '${WRK}' not found: apt-get install -y wrk (or pass --wrk <path>)`)
  process.exit(2)
}

const load1 = () => os.loadavg()[0]

// Resident memory (VmRSS) and its high-water mark (VmHWM), in MB.
function memory(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k) => Number(status.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN)
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 }
}

// CPU seconds (user + system) the process has used so far.
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / CLK_TCK
}

// The cost of one durable commit's flush on this disk: median and 90th percentile of
// overwriting 4 KiB + fdatasync over `n` rounds, in ms, in the directory the servers' data lives in.
// A sequential writer that fsyncs every commit cannot beat 1000 / median commits per second.
function fsyncCost(n = 200) {
  const file = path.join(os.tmpdir(), `srvbench-fsync-${process.pid}`)
  const fd = fs.openSync(file, 'w')
  const buf = Buffer.alloc(4096, 1)
  const ms = []
  try {
    // Allocate the blocks first: a log is mostly rewritten in place, not extended.
    for (let i = 0; i < 16; i++) fs.writeSync(fd, buf, 0, buf.length, i * buf.length)
    fs.fsyncSync(fd)
    for (let i = 0; i < n; i++) {
      fs.writeSync(fd, buf, 0, buf.length, (i % 16) * buf.length)
      const t0 = process.hrtime.bigint()
      fs.fdatasyncSync(fd)
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6)
    }
  } finally {
    fs.closeSync(fd)
    fs.rmSync(file, { force: true })
  }
  ms.sort((a, b) => a - b)
  return { median: ms[Math.floor(n / 2)], p90: ms[Math.floor(n * 0.9)] }
}

const fsyncs = {}
function reportFsync(when) {
  const f = fsyncCost()
  fsyncs[when] = f
  console.log(
    `bench fsync.${when} ${f.median.toFixed(3)} ms   # load ${load1().toFixed(2)}, p90 ${f.p90.toFixed(3)} ms (write 4 KiB + fdatasync)`,
  )
}


// Runs wrk with `script` against `server` for `seconds`; returns its summary and the server's
// CPU use. Fails on any error response or socket error.
function runWrk(server, script, { threads, conns, seconds, args }) {
  const wrkArgs = [
    `-t${threads}`,
    `-c${conns}`,
    `-d${seconds}s`,
    '--timeout',
    '30s',
    '-s',
    path.join(here, 'wrk', script),
    server.base,
    '--',
    ...args,
  ]
  return new Promise((resolve, reject) => {
    const cpu0 = cpuSeconds(server.pid)
    const t0 = performance.now()
    const w = spawn(WRK, wrkArgs, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    w.stdout.on('data', (d) => (out += d))
    w.once('error', reject)
    w.once('exit', (code) => {
      const cores = (cpuSeconds(server.pid) - cpu0) / ((performance.now() - t0) / 1000)
      const m = out.match(/^WRK (.*)$/m)
      if (code !== 0 || !m) return reject(new Error(`wrk ${script} exited ${code}:\n${out}`))
      const s = JSON.parse(m[1])
      const errors = s.connect + s.read + s.write + s.status + s.timeout
      if (errors > 0) return reject(new Error(`wrk ${script}: ${errors} failed requests: ${m[1]}`))
      if (s.requests === 0) return reject(new Error(`wrk ${script}: no request completed`))
      resolve({ ...s, perS: s.requests / (s.duration_us / 1e6), cores })
    })
  })
}

const results = {} // name -> { unit, ours, ref, load: {ours, ref}, note: {ours, ref} }
function report(name, who, value, unit, note = '') {
  const load = load1()
  console.log(`bench ${who}.${name} ${value.toFixed(1)} ${unit}   # load ${load.toFixed(2)}${note ? ', ' + note : ''}`)
  const r = (results[name] ??= { unit, load: {}, note: {} })
  r[who] = value
  r.load[who] = load
  r.note[who] = note
}

async function measure(who, server, name, unit, script, opts, scale = 1) {
  if (WARMUP > 0) await runWrk(server, script, { ...opts, seconds: WARMUP })
  const s = await runWrk(server, script, { ...opts, seconds: DURATION })
  const ms = (us) => (us / 1000).toFixed(2)
  report(
    name,
    who,
    s.perS * scale,
    unit,
    `server ${s.cores.toFixed(2)} cores, p50 ${ms(s.p50_us)} ms, p99 ${ms(s.p99_us)} ms, ${s.requests} requests`,
  )
}

// Accounts and records each server needs, made before anything is measured.
async function prepare(server) {
  const seq = await createAccount(server.base, 'sb')
  const many = []
  for (let i = 0; i < CLIENTS; i++) many.push(await createAccount(server.base, 'sb'))
  const batch = await createAccount(server.base, 'sb')
  const reader = await createAccount(server.base, 'sb')
  const rkeys = []
  for (let i = 0; i < 100; i++) {
    const r = await xrpc(server.base, 'com.atproto.repo.createRecord', {
      token: reader.token,
      body: {
        repo: reader.did,
        collection: 'app.bsky.feed.post',
        record: { $type: 'app.bsky.feed.post', text: `read me ${i}`, createdAt: new Date().toISOString() },
      },
    })
    rkeys.push(r.uri.split('/').pop())
  }
  return { seq, many, batch, reader, rkeys }
}

try {
  const servers = {}
  if (ONLY !== 'ref') servers.ours = pos[0].startsWith('spawn:') ? await spawnOurs(pos[0].slice(6), 'srvbench') : { base: pos[0] }
  if (ONLY !== 'ours') servers.ref = pos[1] === 'spawn' ? await spawnRef('srvbench', (info) => `, devMode ${info.devMode}, node ${info.node}`) : { base: pos[1] }
  for (const [who, s] of Object.entries(servers)) {
    if (!s.pid) throw new Error(`${who}: memory and CPU need a spawned server (spawn:<bin> / spawn)`)
  }
  console.log(`# ${os.cpus().length} cpus, wrk: ${spawnSync(WRK, ['--version']).stdout.toString().split('\n')[0]}`)
  console.log(`# duration ${DURATION} s per figure after ${WARMUP} s warm-up; clients ${CLIENTS}; batch ${BATCH}`)
  reportFsync('before')
  await sleep(3000) // let both settle after start-up
  if (METRICS.has('rss')) for (const [who, s] of Object.entries(servers)) report('rss.idle', who, memory(s.pid).rss, 'MB')
  const acc = {}
  for (const [who, s] of Object.entries(servers)) acc[who] = await prepare(s)
  const each = async (fn) => {
    for (const [who, s] of Object.entries(servers)) await fn(who, s, acc[who])
  }
  if (METRICS.has('seq')) await each((who, s, a) =>
    measure(who, s, 'createRecord.seq', 'commits/s', 'create_record.lua', {
      threads: 1,
      conns: 1,
      args: [a.seq.did, a.seq.token],
    }),
  )
  if (METRICS.has('c8')) await each((who, s, a) =>
    measure(who, s, `createRecord.c${CLIENTS}`, 'commits/s', 'create_record.lua', {
      threads: CLIENTS,
      conns: CLIENTS,
      args: a.many.flatMap((x) => [x.did, x.token]),
    }),
  )
  if (METRICS.has('apply')) await each((who, s, a) =>
    measure(
      who,
      s,
      `applyWrites${BATCH}`,
      'records/s',
      'apply_writes.lua',
      { threads: 1, conns: 1, args: [a.batch.did, a.batch.token, String(BATCH)] },
      BATCH,
    ),
  )
  if (METRICS.has('get')) await each((who, s, a) =>
    measure(who, s, 'getRecord', 'reads/s', 'get_record.lua', {
      threads: READ_THREADS,
      conns: READ_CONNS,
      args: [a.reader.did, ...a.rkeys],
    }),
  )
  reportFsync('after')
  await sleep(3000)
  for (const [who, s] of Object.entries(servers)) {
    if (!METRICS.has('rss')) break
    const m = memory(s.pid)
    report('rss.after', who, m.rss, 'MB')
    report('rss.peak', who, m.hwm, 'MB')
  }
  console.log('\n| metric | ours | ref | ours/ref | unit | load (ours/ref) |\n|---|---:|---:|---:|---|---|')
  for (const [name, r] of Object.entries(results)) {
    const lower = r.unit === 'MB'
    const ratio = r.ours && r.ref ? (lower ? r.ref / r.ours : r.ours / r.ref).toFixed(1) + (lower ? 'x less' : 'x') : '-'
    const ld = `${r.load.ours?.toFixed(2) ?? '-'} / ${r.load.ref?.toFixed(2) ?? '-'}`
    console.log(`| ${name} | ${r.ours?.toFixed(1) ?? '-'} | ${r.ref?.toFixed(1) ?? '-'} | ${ratio} | ${r.unit} | ${ld} |`)
  }
  const f = (x) => (x ? `${x.median.toFixed(3)} ms (p90 ${x.p90.toFixed(3)})` : '-')
  console.log(`\ndisk flush (write 4 KiB + fdatasync): before ${f(fsyncs.before)}, after ${f(fsyncs.after)}`)
} catch (e) {
  console.error(e)
  process.exitCode = 1
} finally {
  cleanup()
  setTimeout(() => process.exit(), 3000).unref()
}
