// Repository CAR interop with the reference implementation (@atproto/repo and @atproto/crypto, pinned in
// package.json). Run by crates/pds/tests/interop_repo.rs with Node 22. Two modes:
//
//   node repo_verify.mjs verify <car> <did:key> <expected.json>
//     Checks a CAR written by our exporter with the reference's own code: `verifyRepo` (commit, DID and
//     signature with the did:key, every record reachable), `Repo.load` + `getRecord` for the sample
//     values, and a rebuild of the MST from the leaves with the reference's `MST` (same root CID, so our
//     tree is the canonical one). The same CAR must be refused with another key. `expected.json` is
//     {did, commit, data, records, collections: {nsid: count}, samples: [{collection, rkey, cid, value}]},
//     values in atproto JSON. Prints one line `ok {json}`; exits 1 with the reason otherwise.
//
//   node repo_verify.mjs create <out.car> <records>
//     Creates a repository with the reference's `Repo` (a fresh k256 key from @atproto/crypto), applies a
//     second commit with updates and deletes, exports it with `getFullRepo` to <out.car>, and prints one
//     line `created {json}`: {did, didKey, commit, rev, records, collections, samples}, for the Rust side to
//     check with `pds repo verify --key`.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import { Secp256k1Keypair } from '@atproto/crypto'
import { jsonToLex, lexToJson } from '@atproto/lex-json'
import {
  MST,
  MemoryBlockstore,
  Repo,
  WriteOpAction,
  concatBytesAsync,
  getFullRepo,
  readCarWithRoot,
  verifyRepo,
} from '@atproto/repo'

const COLLECTIONS = ['app.bsky.feed.like', 'app.bsky.feed.post', 'app.bsky.graph.follow', 'com.example.thing']

function countBy(items) {
  const counts = {}
  for (const c of items) counts[c] = (counts[c] ?? 0) + 1
  return counts
}

async function verify(carPath, didKey, expectedPath) {
  const expected = JSON.parse(fs.readFileSync(expectedPath, 'utf8'))
  const car = await readCarWithRoot(fs.readFileSync(carPath))
  assert.equal(car.root.toString(), expected.commit, 'CAR root is the commit')

  const verified = await verifyRepo(car.blocks, car.root, expected.did, didKey)
  assert.equal(verified.commit.cid.toString(), expected.commit)
  assert.equal(verified.creates.length, expected.records, 'record count')
  assert.deepEqual(countBy(verified.creates.map((c) => c.collection)), expected.collections, 'records per collection')

  const repo = await Repo.load(new MemoryBlockstore(car.blocks), car.root)
  assert.equal(repo.did, expected.did)
  assert.equal(repo.commit.data.toString(), expected.data)
  const cids = new Map(verified.creates.map((c) => [`${c.collection}/${c.rkey}`, c.cid.toString()]))
  for (const sample of expected.samples) {
    const key = `${sample.collection}/${sample.rkey}`
    assert.equal(cids.get(key), sample.cid, `cid of ${key}`)
    const record = await repo.getRecord(sample.collection, sample.rkey)
    assert.deepEqual(lexToJson(record), sample.value, `value of ${key}`)
  }

  // Our tree must be the canonical one: the reference builds the same root from the same leaves.
  let rebuilt = await MST.create(new MemoryBlockstore())
  for (const c of verified.creates) rebuilt = await rebuilt.add(`${c.collection}/${c.rkey}`, c.cid)
  assert.equal((await rebuilt.getPointer()).toString(), expected.data, 'MST rebuilt by the reference')

  const other = await Secp256k1Keypair.create()
  await assert.rejects(verifyRepo(car.blocks, car.root, expected.did, other.did()), /signature/i, 'wrong key refused')
  console.log(`ok ${JSON.stringify({ records: verified.creates.length, commit: expected.commit })}`)
}

function recordFor(i, collection) {
  const createdAt = new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString()
  const subject = 'bafyreigopc2xg7ayxvsvwg3vobbraqfxe4c2bhil4ow6fkv74tzrr66qcq'
  switch (collection) {
    case 'app.bsky.feed.like':
      return { $type: collection, createdAt, subject: { uri: `at://did:plc:abc/app.bsky.feed.post/p${i}`, cid: subject } }
    case 'app.bsky.feed.post':
      return { $type: collection, createdAt, text: `post ${i} ✓`, langs: ['en'] }
    case 'app.bsky.graph.follow':
      return { $type: collection, createdAt, subject: `did:plc:follow${i}` }
    default:
      return {
        $type: collection,
        n: i,
        link: { $link: subject },
        bytes: { $bytes: Buffer.from(`bytes ${i}`).toString('base64').replace(/=+$/, '') },
        blob: { $type: 'blob', ref: { $link: 'bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy' }, mimeType: 'image/png', size: 1000 + i },
        nested: [{ a: null, b: true }, [i, -i]],
      }
  }
}

async function create(outPath, count) {
  const keypair = await Secp256k1Keypair.create({ exportable: true })
  const did = 'did:plc:3jpt3ydz4ctkkljyiyaiqdgb'
  const storage = new MemoryBlockstore()
  const live = new Map()
  const writes = []
  for (let i = 0; i < count; i++) {
    const collection = COLLECTIONS[i % COLLECTIONS.length]
    const rkey = `r${String(i * 7919).padStart(8, '0')}`
    const value = recordFor(i, collection)
    writes.push({ action: WriteOpAction.Create, collection, rkey, record: jsonToLex(value) })
    live.set(`${collection}/${rkey}`, { collection, rkey, value })
  }
  let repo = await Repo.create(storage, did, keypair, writes)
  // A second commit, so the export is of a tree that was edited, not only built.
  const edits = []
  for (const w of writes.slice(0, 30)) {
    const key = `${w.collection}/${w.rkey}`
    if (edits.length % 2 === 0) {
      edits.push({ action: WriteOpAction.Delete, collection: w.collection, rkey: w.rkey })
      live.delete(key)
    } else {
      const value = { ...recordFor(count + edits.length, w.collection), edited: true }
      edits.push({ action: WriteOpAction.Update, collection: w.collection, rkey: w.rkey, record: jsonToLex(value) })
      live.set(key, { collection: w.collection, rkey: w.rkey, value })
    }
  }
  repo = await repo.applyWrites(edits, keypair)
  fs.writeFileSync(outPath, await concatBytesAsync(getFullRepo(storage, repo.cid)))

  const samples = []
  for (const s of [...live.values()].filter((_, i) => i % 37 === 0)) {
    const cid = await repo.data.get(`${s.collection}/${s.rkey}`)
    samples.push({ ...s, cid: cid.toString() })
  }
  const out = {
    did,
    didKey: keypair.did(),
    commit: repo.cid.toString(),
    rev: repo.commit.rev,
    records: live.size,
    collections: countBy([...live.values()].map((s) => s.collection)),
    samples,
  }
  console.log(`created ${JSON.stringify(out)}`)
}

const [mode, ...args] = process.argv.slice(2)
try {
  if (mode === 'verify' && args.length === 3) await verify(args[0], args[1], args[2])
  else if (mode === 'create' && args.length === 2) await create(args[0], Number(args[1]))
  else {
    console.error('usage: repo_verify.mjs verify <car> <did:key> <expected.json> | create <out.car> <records>')
    process.exit(2)
  }
} catch (err) {
  console.error(`not ok: ${err?.stack ?? err}`)
  process.exit(1)
}
