// Shared start-up of the server benchmarks (server.mjs, firehose.mjs): command line, the two
// servers (ours spawned in dev mode, the reference through ../start-refnet.mjs) on free loopback
// ports, and killing them at the end.

import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))

// `<positional>... [--name value]...`: exits with `usage` unless there are exactly two positionals.
export function parseArgs(usage) {
  const pos = []
  const opt = {}
  const a = process.argv.slice(2)
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith('--')) opt[a[i].slice(2)] = a[++i]
    else pos.push(a[i])
  }
  if (pos.length !== 2) {
    console.error(usage)
    process.exit(2)
  }
  return { pos, opt }
}

// The spawned processes, killed (SIGTERM) by `cleanup` and on exit.
const children = []
export function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM')
}
process.on('exit', cleanup)
process.on('SIGINT', () => process.exit(130))
process.on('SIGTERM', () => process.exit(143))

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => res(p))
    })
    s.on('error', rej)
  })
}

export async function waitHealthy(base, ms = 60000) {
  const t0 = Date.now()
  for (;;) {
    try {
      if ((await fetch(`${base}/xrpc/_health`)).ok) return
    } catch {}
    if (Date.now() - t0 > ms) throw new Error(`${base} not healthy`)
    await sleep(50)
  }
}

// Starts `<bin> serve` in dev mode over a fresh temporary data directory (named after `prefix`,
// removed when it exits); resolves to its URL and pid once healthy.
export async function spawnOurs(bin, prefix) {
  const port = await freePort()
  const plc = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-ours-`))
  const c = spawn(bin, ['serve'], {
    env: {
      ...process.env,
      PDS_PORT: String(port),
      PDS_PLC_EMBEDDED_PORT: String(plc),
      PDS_DATA_DIRECTORY: dir,
      PDS_HOSTNAME: 'localhost',
      PDS_DEV_MODE: 'true',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  children.push(c)
  c.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  const base = `http://127.0.0.1:${port}`
  await waitHealthy(base)
  console.log(`# ours: ${bin} pid ${c.pid} at ${base}, data ${dir}`)
  return { base, pid: c.pid }
}

// Starts the reference network (../start-refnet.mjs) with its data under a temporary directory
// named after `prefix` (removed when it exits); resolves to the PDS's URL and pid once it is up.
// `describe(info)` is the log line's tail after the PDS's address.
export async function spawnRef(prefix, describe) {
  const pdsPort = await freePort()
  const plcPort = await freePort()
  const dir = path.join(os.tmpdir(), `${prefix}-refpds-${pdsPort}`)
  const c = spawn(
    process.execPath,
    [path.join(here, '..', 'start-refnet.mjs'), '--pds-port', String(pdsPort), '--plc-port', String(plcPort), '--data-dir', dir],
    { cwd: path.join(here, '..'), stdio: ['ignore', 'pipe', 'inherit'] },
  )
  children.push(c)
  c.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return await new Promise((resolve, reject) => {
    let buf = ''
    c.stdout.on('data', (d) => {
      buf += d
      const m = buf.match(/^REFNET (.*)$/m)
      if (m) {
        const info = JSON.parse(m[1])
        console.log(`# ref: @atproto/pds ${info.pdsVersion} pid ${info.pdsPid} at ${info.pds}${describe(info)}`)
        resolve({ base: info.pds, pid: info.pdsPid })
      }
    })
    c.once('exit', (code) => reject(new Error(`start-refnet exited ${code}`)))
  })
}

// One XRPC call: POST with a JSON `body`, else GET with `query`; fails on any non-2xx answer.
export async function xrpc(base, method, { body, token, query } = {}) {
  const url = `${base}/xrpc/${method}` + (query ? '?' + new URLSearchParams(query) : '')
  const headers = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token) headers.authorization = `Bearer ${token}`
  const res = await fetch(url, {
    method: body !== undefined ? 'POST' : 'GET',
    headers,
    body: body !== undefined ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${res.status}: ${text.slice(0, 300)}`)
  return text ? JSON.parse(text) : null
}

// A new account with a unique handle starting with `prefix`; its DID and access token.
let acctN = 0
export async function createAccount(base, prefix) {
  const handle = `${prefix}${Date.now().toString(36)}${acctN++}.test`
  const r = await xrpc(base, 'com.atproto.server.createAccount', {
    body: { handle, email: `${handle}@example.com`, password: 'bench-password-1' },
  })
  return { did: r.did, token: r.accessJwt }
}
