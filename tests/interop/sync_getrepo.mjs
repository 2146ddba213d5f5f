// Our `com.atproto.sync.getRepo` / `getRecord` output checked with the reference's own code
// (@atproto/repo, pinned in package.json). Run by crates/pds/tests/interop_sync.rs with Node 22:
//
//   node sync_getrepo.mjs <pds base URL> <PLC base URL> <did> <expected.json>
//
// Fetches the DID document from the PLC directory and takes the `#atproto` key as a did:key, then:
// getRepo → `verifyRepoCar` (commit, DID, signature, every record reachable) and again through
// `readCarWithRoot` + `verifyRepo`; the same CAR must be refused with another key; the records
// found must be exactly `expected.records` ([{collection, rkey, cid}]); getRecord for each of them →
// `verifyRecords` (the record proof, with the signature). Prints one line `ok {json}`; exits 1 with
// the reason otherwise.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import { Secp256k1Keypair } from '@atproto/crypto'
import { readCarWithRoot, verifyRecords, verifyRepo, verifyRepoCar } from '@atproto/repo'

async function fetchOk(url) {
  const res = await fetch(url)
  const body = new Uint8Array(await res.arrayBuffer())
  assert.equal(res.status, 200, `${url}: ${new TextDecoder().decode(body)}`)
  return { res, body }
}

async function main() {
  const [base, plc, did, expectedPath] = process.argv.slice(2)
  const expected = JSON.parse(fs.readFileSync(expectedPath, 'utf8'))

  const doc = JSON.parse(new TextDecoder().decode((await fetchOk(`${plc}/${did}`)).body))
  const method = (doc.verificationMethod ?? []).find((m) => m.id === '#atproto' || m.id === `${did}#atproto`)
  assert.ok(method?.publicKeyMultibase, `no #atproto key in ${JSON.stringify(doc)}`)
  const didKey = `did:key:${method.publicKeyMultibase}`

  const { res, body: car } = await fetchOk(`${base}/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(did)}`)
  assert.equal(res.headers.get('content-type'), 'application/vnd.ipld.car')

  const verified = await verifyRepoCar(car, did, didKey)
  const found = verified.creates
    .map((c) => ({ collection: c.collection, rkey: c.rkey, cid: c.cid.toString() }))
    .sort((a, b) => {
      const [ka, kb] = [`${a.collection}/${a.rkey}`, `${b.collection}/${b.rkey}`]
      return ka < kb ? -1 : ka > kb ? 1 : 0
    })
  assert.deepEqual(found, expected.records, 'records in the CAR')

  const parsed = await readCarWithRoot(car)
  const again = await verifyRepo(parsed.blocks, parsed.root, did, didKey)
  assert.equal(again.commit.cid.toString(), parsed.root.toString())
  assert.equal(again.creates.length, expected.records.length)

  const other = await Secp256k1Keypair.create()
  await assert.rejects(verifyRepoCar(car, did, other.did()), 'a CAR verified with the wrong key')

  for (const r of expected.records) {
    const url = `${base}/xrpc/com.atproto.sync.getRecord?did=${encodeURIComponent(did)}&collection=${r.collection}&rkey=${r.rkey}`
    const { body: proof } = await fetchOk(url)
    const claims = await verifyRecords(proof, did, didKey)
    assert.equal(claims.length, 1, `getRecord ${r.collection}/${r.rkey}`)
    assert.equal(claims[0].collection, r.collection)
    assert.equal(claims[0].rkey, r.rkey)
    assert.ok(claims[0].record, 'the record itself is in the proof')
  }

  console.log(`ok ${JSON.stringify({ records: found.length, commit: parsed.root.toString(), didKey })}`)
}

main().catch((err) => {
  console.error(err?.stack ?? String(err))
  process.exit(1)
})
