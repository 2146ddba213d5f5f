// The reference PLC client, @did-plc/lib (pinned in package.json), against our directory
// (`pds plc serve`), whose URL comes in PLC_URL.
//
// Creates a DID, updates it (handle, PDS endpoint, rotation keys, signing key), recovers from a
// lower-priority key's update, tombstones it, and checks everything the directory serves against
// what @did-plc/lib computes itself: the DID (didForCreateOp), the data (validateOperationLog,
// opToData), the CIDs (cidForCbor), the nullified set (assureValidNextOp) and the DID document
// (formatDidDoc; the lib renders the older format, so the check maps it to the current
// plc.directory one: `Multikey` with absolute ids, the same key, the same contexts plus multikey/v1).
//
// Prints `ok <step>` per step (`FAILED` and exit 1 at the first failure) and a last line `N passed, M failed`.
// Run by crates/pds/tests/interop_plc.rs; only talks to PLC_URL (127.0.0.1).

import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { finish, rejection, step } from './steps.mjs'

const require = createRequire(import.meta.url)
const plc = require('@did-plc/lib')
// The lib's own dependencies, so that CIDs and key parsing are computed exactly as it does.
const libRequire = createRequire(require.resolve('@did-plc/lib'))
const { cidForCbor } = libRequire('@atproto/common')
const { CID } = libRequire('multiformats/cid')
const uint8arrays = libRequire('uint8arrays')
const libCrypto = libRequire('@atproto/crypto')
// Keys from the current @atproto/crypto: it signs low-S on both curves, as PLC requires.
const { Secp256k1Keypair, P256Keypair } = require('@atproto/crypto')

const url = process.env.PLC_URL
if (!url || !url.startsWith('http://127.0.0.1:')) {
  console.error(`PLC_URL must be a loopback URL, got ${url}`)
  process.exit(2)
}
const client = new plc.Client(url)


// Rejects with a PlcClientError of this status; returns the response body.
async function expectStatus(promise, status) {
  let caught
  await assert.rejects(promise, (err) => {
    caught = err
    return true
  })
  assert.equal(caught.status, status, `expected HTTP ${status}, got ${caught.status}: ${JSON.stringify(caught.data)}`)
  return caught.data
}

const cidStr = async (op) => (await cidForCbor(op)).toString()
const last = (xs) => xs[xs.length - 1]

const rot1 = await Secp256k1Keypair.create()
const rot2 = await P256Keypair.create()
const rot3 = await Secp256k1Keypair.create()
const signing1 = await Secp256k1Keypair.create()
const signing2 = await P256Keypair.create()

let did
// The operations in effect, as we sent them.
const sent = []

await step('health answers with a version', async () => {
  const health = await client.health()
  assert.equal(typeof health.version, 'string')
})

await step('create: the DID is what didForCreateOp derives', async () => {
  const created = await plc.createOp({
    signingKey: signing1.did(),
    handle: 'alice.test',
    pds: 'https://pds.alice.test',
    rotationKeys: [rot1.did(), rot2.did()],
    signer: rot1,
  })
  assert.equal(created.did, await plc.didForCreateOp(created.op))
  await client.sendOperation(created.did, created.op)
  did = created.did
  sent.push(created.op)
  const expected = await plc.assureValidCreationOp(did, created.op)
  assert.deepEqual(await client.getDocumentData(did), expected)
})

await step('update the handle, signed by the second rotation key (p256)', async () => {
  const op = await plc.updateHandleOp(last(sent), rot2, 'alice2.test')
  await client.sendOperation(did, op)
  sent.push(op)
})

await step('update the PDS endpoint', async () => {
  const op = await plc.updatePdsOp(last(sent), rot1, 'https://pds2.alice.test')
  await client.sendOperation(did, op)
  sent.push(op)
})

await step('rotate the rotation keys', async () => {
  const op = await plc.updateRotationKeysOp(last(sent), rot1, [rot3.did(), rot1.did()])
  await client.sendOperation(did, op)
  sent.push(op)
})

await step('rotate the atproto key, signed by the new first rotation key', async () => {
  const op = await plc.updateAtprotoKeyOp(last(sent), rot3, signing2.did())
  await client.sendOperation(did, op)
  sent.push(op)
})

await step('a rotated-out key is refused with 400 {message} and nothing changes', async () => {
  const before = await client.getAuditableLog(did)
  const op = await plc.updateHandleOp(last(sent), rot2, 'eve.test')
  const body = await expectStatus(client.sendOperation(did, op), 400)
  assert.equal(typeof body.message, 'string')
  assert.deepEqual(await client.getAuditableLog(did), before)
})

await step('a genesis posted under another DID is refused', async () => {
  const other = await plc.createOp({
    signingKey: signing1.did(),
    handle: 'bob.test',
    pds: 'https://pds.bob.test',
    rotationKeys: [rot1.did()],
    signer: rot1,
  })
  await expectStatus(client.sendOperation(did, other.op), 400)
  const body = await expectStatus(client.getDocument(other.did), 404)
  assert.deepEqual(body, { message: `DID not registered: ${other.did}` })
})

await step('log: the operations sent; validateOperationLog agrees with /data', async () => {
  const log = await client.getOperationLog(did)
  assert.deepEqual(log, sent)
  const data = await plc.validateOperationLog(did, log)
  assert.deepEqual(await client.getDocumentData(did), data)
  assert.deepEqual(data, plc.opToData(did, last(sent)))
  assert.deepEqual(data.rotationKeys, [rot3.did(), rot1.did()])
  assert.deepEqual(data.alsoKnownAs, ['at://alice2.test'])
  assert.equal(data.verificationMethods.atproto, signing2.did())
  assert.equal(data.services.atproto_pds.endpoint, 'https://pds2.alice.test')
})

await step('audit log: entries with the CIDs cidForCbor gives, createdAt increasing', async () => {
  const audit = await client.getAuditableLog(did)
  assert.equal(audit.length, sent.length)
  let previous = 0
  for (let i = 0; i < audit.length; i++) {
    const entry = audit[i]
    assert.deepEqual(Object.keys(entry).sort(), ['cid', 'createdAt', 'did', 'nullified', 'operation'])
    assert.equal(entry.did, did)
    assert.deepEqual(entry.operation, sent[i])
    assert.equal(entry.cid, await cidStr(sent[i]))
    assert.equal(entry.nullified, false)
    const t = Date.parse(entry.createdAt)
    assert.equal(new Date(t).toISOString(), entry.createdAt, 'createdAt in toISOString form')
    assert.ok(t > previous, 'createdAt strictly increasing')
    previous = t
    if (i > 0) assert.equal(sent[i].prev, audit[i - 1].cid)
  }
})

await step('last op is the last operation sent', async () => {
  assert.deepEqual(await client.getLastOp(did), last(sent))
})

await step('DID document: formatDidDoc of the same data, in the current format', async () => {
  const doc = await client.getDocument(did)
  const data = await client.getDocumentData(did)
  const legacy = plc.formatDidDoc(data)
  assert.deepEqual(Object.keys(doc).sort(), ['@context', 'alsoKnownAs', 'id', 'service', 'verificationMethod'])
  assert.equal(doc.id, legacy.id)
  assert.deepEqual(doc.alsoKnownAs, legacy.alsoKnownAs)
  assert.deepEqual(doc.service, legacy.service)
  assert.deepEqual(doc['@context'], [
    legacy['@context'][0],
    'https://w3id.org/security/multikey/v1',
    ...legacy['@context'].slice(1),
  ])
  assert.equal(doc.verificationMethod.length, legacy.verificationMethod.length)
  for (let i = 0; i < doc.verificationMethod.length; i++) {
    const ours = doc.verificationMethod[i]
    const theirs = legacy.verificationMethod[i]
    assert.equal(ours.id, `${did}${theirs.id}`)
    assert.equal(ours.type, 'Multikey')
    assert.equal(ours.controller, theirs.controller)
    const didKey = `did:key:${ours.publicKeyMultibase}`
    assert.equal(didKey, data.verificationMethods[theirs.id.slice(1)])
    // The lib writes the same key uncompressed, without a multicodec prefix.
    const { keyBytes } = libCrypto.parseDidKey(didKey)
    assert.equal(theirs.publicKeyMultibase, `z${uint8arrays.toString(keyBytes, 'base58btc')}`)
  }
})

await step('recovery: nullifies exactly what assureValidNextOp says', async () => {
  // Rotation keys are [rot3, rot1]: rot1 signs an update, rot3 forks from before it.
  const base = last(sent)
  const hijack = await plc.updateHandleOp(base, rot1, 'mallory.test')
  await client.sendOperation(did, hijack)
  const fork = await plc.updateHandleOp(base, rot3, 'alice3.test')
  const audit = await client.getAuditableLog(did)
  const indexed = audit.map((e) => ({ ...e, cid: CID.parse(e.cid), createdAt: new Date(e.createdAt) }))
  const { nullified, prev } = await plc.assureValidNextOp(did, indexed, fork)
  assert.equal(prev.toString(), await cidStr(base))
  assert.deepEqual(nullified.map(String), [await cidStr(hijack)])
  await client.sendOperation(did, fork)
  const after = await client.getAuditableLog(did)
  assert.deepEqual(after.filter((e) => e.nullified).map((e) => e.cid), nullified.map(String))
  assert.deepEqual(after.map((e) => e.operation), [...sent, hijack, fork])
  sent.push(fork)
  assert.deepEqual(await client.getOperationLog(did), sent)
  assert.deepEqual(await client.getLastOp(did), fork)
  assert.deepEqual((await client.getDocumentData(did)).alsoKnownAs, ['at://alice3.test'])
})

await step('export: the audit log as JSON lines, paged by createdAt', async () => {
  const audit = await client.getAuditableLog(did)
  const exported = await client.export(undefined, 1000)
  assert.deepEqual(exported.filter((e) => e.did === did), audit)
  const page = await client.export(audit[0].createdAt, 2)
  assert.deepEqual(page, audit.slice(1, 3))
})

await step('tombstone: 410 on the document and data; the log ends with it', async () => {
  await client.tombstone(did, rot3)
  for (const get of [client.getDocument, client.getDocumentData]) {
    const body = await expectStatus(get.call(client, did), 410)
    assert.deepEqual(body, { message: `DID not available: ${did}` })
  }
  const tomb = await client.getLastOp(did)
  assert.equal(tomb.type, 'plc_tombstone')
  assert.equal(tomb.prev, await cidStr(last(sent)))
  const log = await client.getOperationLog(did)
  assert.deepEqual(log, [...sent, tomb])
  assert.equal(await plc.validateOperationLog(did, log), null)
  const update = await plc.updateHandleOp(last(sent), rot3, 'back.test')
  await expectStatus(client.sendOperation(did, update), 400)
})

await step('unknown DID: 404 with the reference message', async () => {
  const unknown = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz'
  for (const get of [client.getDocument, client.getDocumentData, client.getOperationLog, client.getAuditableLog, client.getLastOp]) {
    const body = await expectStatus(get.call(client, unknown), 404)
    assert.deepEqual(body, { message: `DID not registered: ${unknown}` })
  }
})

finish()
