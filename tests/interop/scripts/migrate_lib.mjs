// Shared by the account-migration interop scripts (migrate_ref_to_ours.mjs, migrate_ours_to_ref.mjs):
// an in-process reference PDS (@atproto/pds) on 127.0.0.1 against a given PLC directory, the official
// migration flow driven with @atproto/api as a migration tool would, snapshots of an account for
// comparison, and a firehose watcher (@atproto/sync).
//
// The reference PDS is started here rather than with start-refnet.mjs because it must have an AppView
// configured to serve preferences (a dummy one: nothing is proxied), and one process runs the whole flow.

import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { AtpAgent } from '@atproto/api'
import { IdResolver } from '@atproto/identity'
import { cborDecode } from '@atproto/lex-cbor'
import { readCarWithRoot, verifyCommitSig, verifyRepo } from '@atproto/repo'
import { Firehose } from '@atproto/sync'
import Database from 'better-sqlite3'

const HOST = '127.0.0.1'

// ---- steps and the summary line -------------------------------------------------------------
let passed = 0
export function fail(what, e) {
  let detail = `${e?.stack ?? e}`
  for (let c = e?.cause; c; c = c.cause) detail += `\ncaused by: ${c?.stack ?? c}`
  console.log(`FAILED ${what}: ${detail}`)
  console.log(`${passed} passed, 1 failed`)
  process.exit(1)
}
export async function step(name, fn) {
  let out
  try {
    out = await fn()
  } catch (e) {
    fail(name, e)
  }
  passed++
  console.log(`ok ${name}`)
  return out
}
export function summary() {
  console.log(`${passed} passed, 0 failed`)
}

export function parseArgs(argv) {
  const out = {}
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument ${argv[i]}`)
    out[argv[i].slice(2)] = argv[i + 1]
  }
  return out
}

/** The command line's `--name value` pairs; exits with a usage line when one of `required` is missing. */
export function requireArgs(argv, required) {
  const args = parseArgs(argv)
  for (const a of required) {
    if (!args[a]) {
      console.error(`usage: missing --${a}`)
      process.exit(2)
    }
  }
  return args
}

/** Indented progress output between the `ok <step>` lines. */
export const log = (m) => console.log(`  ${m}`)

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, HOST, () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

// ---- the reference PDS ------------------------------------------------------------------------
/** Starts a reference PDS bound to 127.0.0.1, public URL http://localhost:<port>. */
export async function startRefPds({ plcUrl, dataDir, handleDomain }) {
  const { PDS, envToCfg, envToSecrets } = await import('@atproto/pds')
  const { Secp256k1Keypair } = await import('@atproto/crypto')
  const port = await freePort()
  fs.rmSync(dataDir, { recursive: true, force: true })
  fs.mkdirSync(path.join(dataDir, 'blobs'), { recursive: true })
  const rotation = await Secp256k1Keypair.create({ exportable: true })
  const recovery = await Secp256k1Keypair.create()
  const env = {
    port,
    hostname: 'localhost',
    dataDirectory: dataDir,
    blobstoreDiskLocation: path.join(dataDir, 'blobs'),
    // Its SSRF guard refuses IP-address URLs: reach the directory by name.
    didPlcUrl: plcUrl.replace('//127.0.0.1:', '//localhost:'),
    recoveryDidKey: recovery.did(),
    plcRotationKeyK256PrivateKeyHex: Buffer.from(await rotation.export()).toString('hex'),
    jwtSecret: crypto.randomBytes(32).toString('hex'),
    adminPassword: crypto.randomBytes(12).toString('hex'),
    serviceHandleDomains: [handleDomain],
    inviteRequired: false,
    crawlers: [],
    disableSsrfProtection: true,
    // Preferences are served only with an AppView configured; nothing here is proxied to it.
    bskyAppViewUrl: 'http://127.0.0.1:9',
    bskyAppViewDid: 'did:web:appview.invalid',
    devMode: false,
  }
  const cfg = envToCfg(env)
  const publicUrl = `http://localhost:${port}`
  cfg.service.publicUrl = publicUrl
  cfg.oauth.issuer = publicUrl
  // The PDS refuses a plain-http public URL unless devMode is on (one start-up check in
  // auth-routes.js); devMode also validates every response, so it reads true only there.
  Object.defineProperty(cfg.service, 'devMode', {
    enumerable: true,
    get: () => /auth-routes\.js/.test(new Error().stack ?? ''),
  })
  const pds = await PDS.create(cfg, envToSecrets(env))
  const listen = pds.app.listen.bind(pds.app)
  pds.app.listen = (p, ...rest) => listen(p, HOST, ...rest)
  await pds.start()
  return {
    url: `http://${HOST}:${port}`,
    publicUrl,
    rotationKey: rotation.did(),
    accountDb: path.join(dataDir, 'account.sqlite'),
    stop: () => pds.destroy(),
  }
}

/** The live `plc_operation` email token of `did` in a SQLite database (ours or the reference's). */
export function readPlcToken(dbPath, did) {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true })
  try {
    const row = db
      .prepare("SELECT token FROM email_token WHERE did = ? AND purpose = 'plc_operation'")
      .get(did)
    assert.ok(row, `no plc_operation token for ${did} in ${dbPath}`)
    return row.token
  } finally {
    db.close()
  }
}

// ---- an account with content ----------------------------------------------------------------
const post = (text, extra = {}) => ({
  $type: 'app.bsky.feed.post',
  text,
  createdAt: new Date().toISOString(),
  ...extra,
})

/** Fills an account: `posts` posts (the first `blobs` with one image each), a profile, preferences. */
export async function fillAccount(agent, { posts, blobs }) {
  const did = agent.session.did
  const images = []
  for (let i = 0; i < blobs; i++) {
    const bytes = crypto.randomBytes(2000 + i * 100)
    const res = await agent.com.atproto.repo.uploadBlob(bytes, { encoding: 'image/png' })
    images.push(res.data.blob)
  }
  const writes = []
  for (let i = 0; i < posts; i++) {
    const extra =
      i < images.length
        ? { embed: { $type: 'app.bsky.embed.images', images: [{ alt: `image ${i}`, image: images[i] }] } }
        : {}
    writes.push({
      $type: 'com.atproto.repo.applyWrites#create',
      collection: 'app.bsky.feed.post',
      value: post(`post ${i}`, extra),
    })
  }
  writes.push({
    $type: 'com.atproto.repo.applyWrites#create',
    collection: 'app.bsky.actor.profile',
    rkey: 'self',
    value: { $type: 'app.bsky.actor.profile', displayName: 'Migrating Alice' },
  })
  for (let i = 0; i < writes.length; i += 100) {
    await agent.com.atproto.repo.applyWrites({ repo: did, writes: writes.slice(i, i + 100) })
  }
  await agent.app.bsky.actor.putPreferences({
    preferences: [
      { $type: 'app.bsky.actor.defs#adultContentPref', enabled: false },
      { $type: 'app.bsky.actor.defs#contentLabelPref', label: 'gore', visibility: 'hide' },
      { $type: 'app.bsky.actor.defs#personalDetailsPref', birthDate: '1990-01-01T00:00:00.000Z' },
    ],
  })
}

// ---- snapshots --------------------------------------------------------------------------------
const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex')

/** The MST root of a repository CAR (checked against `didKey` when given). */
export async function carData(car, did, didKey) {
  const { root, blocks } = await readCarWithRoot(car)
  const verified = await verifyRepo(blocks, root, did, didKey)
  const commit = cborDecode(blocks.get(root))
  return { data: commit.data.toString(), records: verified.creates.length, commit: root.toString() }
}

/** What must survive a migration: records (uri → cid), blobs (cid → sha256), preferences, data CID. */
export async function snapshot(agent, did, { car } = {}) {
  const repoCar = car ?? (await agent.com.atproto.sync.getRepo({ did })).data
  const { data } = await carData(repoCar, did)
  const records = {}
  const { data: described } = await agent.com.atproto.repo.describeRepo({ repo: did })
  for (const collection of described.collections) {
    let cursor
    do {
      const res = await agent.com.atproto.repo.listRecords({ repo: did, collection, limit: 100, cursor })
      for (const r of res.data.records) records[r.uri] = r.cid
      cursor = res.data.records.length === 100 ? res.data.cursor : undefined
    } while (cursor)
  }
  const blobs = {}
  let cursor
  do {
    const res = await agent.com.atproto.sync.listBlobs({ did, cursor })
    for (const cid of res.data.cids) {
      const blob = await agent.com.atproto.sync.getBlob({ did, cid })
      blobs[cid] = sha256(blob.data)
    }
    cursor = res.data.cursor
  } while (cursor)
  const prefs = (await agent.app.bsky.actor.getPreferences()).data.preferences
  return { data, records, blobs, prefs }
}

/** Step `name`: the snapshot of the account filled by `fillAccount` (500 posts, 10 blobs), checked. */
export function snapshotFilled(name, agent, did) {
  return step(name, async () => {
    const snap = await snapshot(agent, did)
    assert.equal(Object.keys(snap.records).length, 501)
    assert.equal(Object.keys(snap.blobs).length, 10)
    assert.ok(snap.prefs.length >= 3, JSON.stringify(snap.prefs))
    log(`preferences: ${snap.prefs.map((p) => p.$type).join(', ')}`)
    return snap
  })
}

// ---- PLC --------------------------------------------------------------------------------------
export async function plcAudit(plcUrl, did) {
  const res = await fetch(`${plcUrl}/${did}/log/audit`)
  assert.equal(res.status, 200, `audit log of ${did}`)
  return res.json()
}
export async function plcData(plcUrl, did) {
  const res = await fetch(`${plcUrl}/${did}/data`)
  assert.equal(res.status, 200, `PLC data of ${did}`)
  return res.json()
}

// ---- the official flow --------------------------------------------------------------------------
/**
 * Moves the account logged in on `oldAgent` to `newService`, as the atproto account-migration guide
 * does with @atproto/api. `plcToken(did)` reads the one-time token the old host "mailed".
 */
export async function migrate({ oldAgent, newService, handle, email, password, plcToken, log }) {
  const did = oldAgent.session.did
  const newAgent = new AtpAgent({ service: newService })
  const { data: described } = await newAgent.com.atproto.server.describeServer()
  log(`new host ${described.did}`)
  const { data: auth } = await oldAgent.com.atproto.server.getServiceAuth({
    aud: described.did,
    lxm: 'com.atproto.server.createAccount',
  })
  await newAgent.com.atproto.server.createAccount(
    { handle, email, password, did },
    { headers: { authorization: `Bearer ${auth.token}` }, encoding: 'application/json' },
  )
  await newAgent.login({ identifier: handle, password })
  assert.equal(newAgent.session.did, did)

  const car = (await oldAgent.com.atproto.sync.getRepo({ did })).data
  await newAgent.com.atproto.repo.importRepo(car, { encoding: 'application/vnd.ipld.car' })
  const missing = (await newAgent.com.atproto.repo.listMissingBlobs({})).data.blobs
  log(`imported ${car.length} bytes; ${missing.length} blobs missing`)

  let cursor
  let moved = 0
  do {
    const listed = await oldAgent.com.atproto.sync.listBlobs({ did, cursor })
    for (const cid of listed.data.cids) {
      const blob = await oldAgent.com.atproto.sync.getBlob({ did, cid })
      await newAgent.com.atproto.repo.uploadBlob(blob.data, { encoding: blob.headers['content-type'] })
      moved++
    }
    cursor = listed.data.cursor
  } while (cursor)
  const prefs = await oldAgent.app.bsky.actor.getPreferences()
  await newAgent.app.bsky.actor.putPreferences(prefs.data)
  const status = (await newAgent.com.atproto.server.checkAccountStatus()).data
  log(`moved ${moved} blobs; status ${JSON.stringify(status)}`)

  const creds = (await newAgent.com.atproto.identity.getRecommendedDidCredentials()).data
  await oldAgent.com.atproto.identity.requestPlcOperationSignature()
  const token = await plcToken(did)
  const signed = await oldAgent.com.atproto.identity.signPlcOperation({ token, ...creds })
  await newAgent.com.atproto.identity.submitPlcOperation({ operation: signed.data.operation })
  await newAgent.com.atproto.server.activateAccount()
  await oldAgent.com.atproto.server.deactivateAccount({})
  return { newAgent, car, creds, statusBeforeActivation: status, missingAfterImport: missing }
}

// ---- checks after a migration ------------------------------------------------------------------
/** The checks of the "done when", for one step. */
export async function checkMigrated({
  did,
  before,
  plcUrl,
  auditBefore,
  oldAgent,
  newAgent,
  newPublicUrl,
  creds,
  resignByWrite = false,
}) {
  await step('DID unchanged', async () => {
    assert.equal(newAgent.session.did, did)
    const res = await newAgent.com.atproto.server.getSession()
    assert.equal(res.data.did, did)
    assert.notEqual(res.data.active, false, 'the new account is active')
  })
  await step('PLC audit log shows the handover', async () => {
    const audit = await plcAudit(plcUrl, did)
    assert.equal(audit.length, auditBefore.length + 1, 'one new operation')
    const last = audit.at(-1).operation
    assert.equal(last.prev, auditBefore.at(-1).cid)
    assert.equal(last.services.atproto_pds.endpoint, newPublicUrl)
    assert.equal(last.verificationMethods.atproto, creds.verificationMethods.atproto)
    assert.deepEqual(last.rotationKeys, creds.rotationKeys)
    const data = await plcData(plcUrl, did)
    assert.equal(data.services.atproto_pds.endpoint, newPublicUrl)
  })
  await step('old host deactivated', async () => {
    const res = await oldAgent.com.atproto.sync.getRepoStatus({ did })
    assert.equal(res.data.active, false)
    assert.equal(res.data.status, 'deactivated')
    // The owner may still read it; the public may not.
    const anonymous = new AtpAgent({ service: oldAgent.serviceUrl.toString() })
    await assert.rejects(anonymous.com.atproto.sync.getRepo({ did }), /deactivated/i)
  })
  const after = await step('new host: records, blobs and preferences equal the original', async () => {
    const after = await snapshot(newAgent, did)
    assert.equal(after.data, before.data, 'MST data CID')
    assert.deepEqual(after.records, before.records, 'records')
    assert.deepEqual(after.blobs, before.blobs, 'blobs')
    assert.deepEqual(after.prefs, before.prefs, 'preferences')
    return after
  })
  await step("getRepo on the new host verifies against the DID's current key (@atproto/repo)", async () => {
    const key = (await plcData(plcUrl, did)).verificationMethods.atproto
    assert.equal(key, creds.verificationMethods.atproto)
    if (resignByWrite) {
      // The reference keeps serving the old host's commit after an import until the next write:
      // one create and delete makes it sign (same MST data afterwards).
      const stale = (await newAgent.com.atproto.sync.getRepo({ did })).data
      const signedByNew = await carData(stale, did, key).then(() => true, () => false)
      console.log(`  new host's head signed with the new key before any write: ${signedByNew}`)
      const res = await newAgent.com.atproto.repo.createRecord({
        repo: did,
        collection: 'app.bsky.feed.post',
        record: { $type: 'app.bsky.feed.post', text: 'resign', createdAt: new Date().toISOString() },
      })
      const rkey = res.data.uri.split('/').at(-1)
      await newAgent.com.atproto.repo.deleteRecord({ repo: did, collection: 'app.bsky.feed.post', rkey })
    }
    const car = (await newAgent.com.atproto.sync.getRepo({ did })).data
    const verified = await carData(car, did, key)
    assert.equal(verified.data, before.data)
    assert.equal(verified.records, Object.keys(before.records).length)
  })
  return after
}

// ---- firehose -----------------------------------------------------------------------------------
/** Collects the events of `did` on `service`'s firehose (live, from now). */
export function watchFirehose(service, plcUrl, did) {
  const events = []
  const errors = []
  const firehose = new Firehose({
    idResolver: new IdResolver({ plcUrl, fetch: globalThis.fetch }),
    service: service.replace(/^http/, 'ws'),
    unauthenticatedHandles: true,
    handleEvent: (evt) => {
      if (evt.did === did) events.push(evt)
    },
    onError: (err) => errors.push(err),
  })
  firehose.start()
  return {
    events,
    errors,
    async waitFor(what, pred) {
      const deadline = Date.now() + 15000
      while (!pred(events)) {
        if (errors.length) throw errors[0]
        if (Date.now() > deadline) {
          throw new Error(`timed out waiting for ${what}; got ${events.map((e) => e.event).join(', ')}`)
        }
        await sleep(50)
      }
    },
    stop: () => firehose.destroy(),
  }
}

/** Checks a #sync event's commit: for `did`, signed with `didKey`, over `data`. */
export async function checkSyncEvent(evt, did, didKey, data) {
  const bytes = evt.blocks.get(evt.cid)
  assert.ok(bytes, 'the #sync CAR holds its commit block')
  const commit = cborDecode(bytes)
  assert.equal(commit.did, did)
  assert.equal(commit.rev, evt.rev)
  assert.equal(commit.data.toString(), data)
  assert.ok(await verifyCommitSig(commit, didKey), "the #sync commit verifies against the DID's key")
}
