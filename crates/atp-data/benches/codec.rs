//! Codec throughput, without a benchmark framework: `cargo bench -p atp-data --bench codec`.
//!
//! Prints one line per figure, `bench <name> <value> <unit>`, for scripts to parse.

use std::hint::black_box;
use std::time::{Duration, Instant};

use atp_data::car::{CarReader, CarWriter};
use atp_data::cid::{cid_for_cbor, cid_for_raw};
use atp_data::{Cid, Value, cbor, json};

/// How long each per-operation figure is measured.
const MEASURE: Duration = Duration::from_millis(700);
/// Total block bytes for the CAR figures.
const CAR_BYTES: usize = 50 * 1024 * 1024;

/// A typical `app.bsky.feed.post`: text, createdAt, langs, a link facet and reply refs.
fn post() -> Value {
    let parent = "bafyreigopc2xg7ayxvsvwg3vobbraqfxe4c2bhil4ow6fkv74tzrr66qcq";
    let root = "bafyreiclp443lavogvhj3d2ob2cxbfuscni2k5jk7bebjzg7khl3esabwq";
    let record = serde_json::json!({
        "$type": "app.bsky.feed.post",
        "text": "Reading the repository spec again: https://atproto.com/specs/repository is worth it.",
        "createdAt": "2024-11-26T21:48:03.123Z",
        "langs": ["en"],
        "facets": [{
            "index": {"byteStart": 35, "byteEnd": 68},
            "features": [{
                "$type": "app.bsky.richtext.facet#link",
                "uri": "https://atproto.com/specs/repository"
            }]
        }],
        "reply": {
            "root": {"uri": "at://did:plc:ewvi7nxzyoun6zhxrhs64oiz/app.bsky.feed.post/3l7ouz6f3rz2a", "cid": root},
            "parent": {"uri": "at://did:plc:6evlgoug7wwijzxhzt2riyic/app.bsky.feed.post/3l7ov2kxqhs2x", "cid": parent}
        }
    });
    json::record_from_json(&record).expect("the sample post is valid atproto JSON")
}

/// Runs `op` repeatedly for about [`MEASURE`] and returns nanoseconds per call; results are
/// passed through `black_box` so the work cannot be optimised away.
fn ns_per_op<T>(mut op: impl FnMut() -> T) -> f64 {
    let mut iterations = 0u64;
    let start = Instant::now();
    loop {
        for _ in 0..256 {
            black_box(op());
        }
        iterations += 256;
        let elapsed = start.elapsed();
        if elapsed >= MEASURE {
            return elapsed.as_nanos() as f64 / iterations as f64;
        }
    }
}

fn report(name: &str, value: f64, unit: &str) {
    println!("bench {name} {value:.1} {unit}");
}

/// Deterministic pseudo-random blocks (xorshift), sizes 64..4096 bytes, totalling about `total`.
fn blocks(total: usize) -> Vec<(Cid, Vec<u8>)> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::new();
    let mut size = 0;
    while size < total {
        let len = 64 + (next() % 4032) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let cid = if out.len() % 2 == 0 {
            cid_for_cbor(&data)
        } else {
            cid_for_raw(&data)
        };
        size += len;
        out.push((cid, data));
    }
    out
}

fn car_figures() {
    let blocks = blocks(CAR_BYTES);
    let block_bytes: usize = blocks.iter().map(|(_, d)| d.len()).sum();
    let mb = block_bytes as f64 / (1024.0 * 1024.0);

    let start = Instant::now();
    let mut writer = CarWriter::new(
        Vec::with_capacity(block_bytes + blocks.len() * 40),
        &[blocks[0].0],
    )
    .expect("writing to a Vec");
    for (cid, data) in &blocks {
        writer.write_block(cid, data).expect("writing to a Vec");
    }
    let car = writer.finish().expect("writing to a Vec");
    report("car_write", mb / start.elapsed().as_secs_f64(), "MB/s");

    let start = Instant::now();
    let mut count = 0usize;
    for block in CarReader::new(car.as_slice()).expect("our own header") {
        let (_, data) = block.expect("our own blocks");
        count += black_box(data.len());
    }
    assert_eq!(count, block_bytes);
    report(
        "car_read_verified",
        mb / start.elapsed().as_secs_f64(),
        "MB/s",
    );
    report("car_blocks", blocks.len() as f64, "blocks");
    report("car_block_megabytes", mb, "MB");
}

fn main() {
    let record = post();
    let bytes = cbor::to_vec(&record);
    report("post_cbor_size", bytes.len() as f64, "bytes");
    report(
        "cbor_encode_post",
        ns_per_op(|| cbor::to_vec(black_box(&record))),
        "ns/op",
    );
    report(
        "cbor_decode_post",
        ns_per_op(|| cbor::from_slice(black_box(&bytes))),
        "ns/op",
    );
    report(
        "cbor_encode_decode_post",
        ns_per_op(|| {
            let encoded = cbor::to_vec(black_box(&record));
            cbor::from_slice(&encoded)
        }),
        "ns/op",
    );
    report(
        "cid_post",
        ns_per_op(|| cid_for_cbor(black_box(&bytes))),
        "ns/op",
    );
    report(
        "encode_and_cid_post",
        ns_per_op(|| cid_for_cbor(&cbor::to_vec(black_box(&record)))),
        "ns/op",
    );
    car_figures();
}
