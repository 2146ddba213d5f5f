//! Repository figures, without a benchmark framework: `cargo bench -p atp-repo --bench repo`.
//!
//! Prints one line per figure, `bench <name> <value> <unit>`, for scripts to parse
//! (`tests/bench.sh repo` runs it next to `tests/interop/bench/repo.mjs`, which does the same
//! with `@atproto/repo`). Figures:
//! - `mst_insert_100k_commit`: inserting 100k records' keys (random TIDs over three collections)
//!   one by one into an empty tree on a `MemoryBlockStore`, then the root CID and a signed commit;
//! - `mst_diff_100k_by_100`: the diff of two stored 100k trees differing by 100 added keys, both
//!   loaded lazily from the store (best of 5);
//! - `export_100k*`: a streaming CAR export of the stored 100k repository to memory;
//! - `import_verify_100k*`: staging that CAR into a fresh `MemoryBlockStore` and verifying it
//!   fully (hashes, signature, MST, every record decoded);
//! - the same for 1M records (`export_1m*`, `import_verify_1m*`), the export and the import each in
//!   its own process, with `VmHWM` reset (`/proc/self/clear_refs`) once the input is in memory, so
//!   each peak RSS is that phase's own: `rss_1m_store` (the built store) then `peak_rss_1m_export`,
//!   `rss_1m_staged` (the CAR staged into a store) then the verification's peak; the `*_extra`
//!   figures are what the streaming walk itself adds on top of the store.
//!   Set `REPO_BENCH_1M=0` to skip them.

use std::hint::black_box;
use std::io::BufWriter;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use atp_crypto::{Curve, Keypair};
use atp_data::{Cid, Value};
use atp_repo::mst::WalkItem;
use atp_repo::{
    BlockMap, BlockStore, MemoryBlockStore, Mst, UnsignedCommit, export_car, stage_car, verify_car,
    verify_repo,
};
use atp_syntax::{Did, Tid};

const N: usize = 100_000;
const BIG: usize = 1_000_000;
const MB: f64 = 1024.0 * 1024.0;

fn report(name: &str, value: f64, unit: &str) {
    println!("bench {name} {value:.3} {unit}");
}

/// xorshift32, as in the JavaScript bench, so both sides build the same records and keys.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

const TEXT: &[u8] = b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,!?";
const SUBJECT_CID: &str = "bafyreigopc2xg7ayxvsvwg3vobbraqfxe4c2bhil4ow6fkv74tzrr66qcq";
const CREATED_AT: &str = "2024-05-01T12:34:56.789Z";

fn string(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// Records with distinct keys, generated one at a time (so 1M records never sit in memory as
/// values): 40 % posts (20..200 chars of text), 40 % likes, 20 % follows.
struct Workload {
    rng: Rng,
    seen: std::collections::HashSet<String>,
}

fn workload() -> Workload {
    Workload {
        rng: Rng(0x2545_f491),
        seen: std::collections::HashSet::new(),
    }
}

impl Iterator for Workload {
    type Item = (String, Value);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (key, record) = self.generate();
            if self.seen.insert(key.clone()) {
                return Some((key, record));
            }
        }
    }
}

impl Workload {
    fn generate(&mut self) -> (String, Value) {
        let rng = &mut self.rng;
        let micros =
            1_600_000_000_000_000 + (u64::from(rng.next()) << 12) + u64::from(rng.next() & 0xfff);
        let rkey = Tid::from_parts(micros, 0);
        let (collection, record) = match rng.next() % 10 {
            0..=3 => {
                let len = 20 + (rng.next() % 180) as usize;
                let text: String = (0..len)
                    .map(|_| TEXT[(rng.next() as usize) % TEXT.len()] as char)
                    .collect();
                let record = string(vec![
                    ("$type", Value::from("app.bsky.feed.post")),
                    ("createdAt", Value::from(CREATED_AT)),
                    ("text", Value::from(text)),
                ]);
                ("app.bsky.feed.post", record)
            }
            4..=7 => {
                let uri = format!(
                    "at://did:plc:bench{}/app.bsky.feed.post/{rkey}",
                    rng.next() % 1000
                );
                let subject = string(vec![
                    ("cid", Value::from(SUBJECT_CID)),
                    ("uri", Value::from(uri)),
                ]);
                let record = string(vec![
                    ("$type", Value::from("app.bsky.feed.like")),
                    ("createdAt", Value::from(CREATED_AT)),
                    ("subject", subject),
                ]);
                ("app.bsky.feed.like", record)
            }
            _ => {
                let subject = format!("did:plc:follow{}", rng.next());
                let record = string(vec![
                    ("$type", Value::from("app.bsky.graph.follow")),
                    ("createdAt", Value::from(CREATED_AT)),
                    ("subject", Value::from(subject)),
                ]);
                ("app.bsky.graph.follow", record)
            }
        };
        (format!("{collection}/{rkey}"), record)
    }
}

/// One record's block.
fn encode(record: &Value) -> (Cid, Vec<u8>) {
    let bytes = atp_data::cbor::to_vec(record);
    (atp_data::cid::cid_for_cbor(&bytes), bytes)
}

/// The (key, record CID) entries of the first `n` records.
fn entries(n: usize) -> Vec<(String, Cid)> {
    entries_from(0, n)
}

/// The (key, record CID) entries of records `skip..skip + n`.
fn entries_from(skip: usize, n: usize) -> Vec<(String, Cid)> {
    workload()
        .skip(skip)
        .take(n)
        .map(|(key, record)| (key, encode(&record).0))
        .collect()
}

fn signer() -> Keypair {
    Keypair::from_private_bytes(Curve::K256, &[42u8; 32]).expect("a valid scalar")
}

fn did() -> Did {
    "did:plc:benchbenchbenchbenchbenc"
        .parse()
        .expect("a valid DID")
}

fn rev() -> Tid {
    Tid::from_parts(1_732_000_000_000_000, 0)
}

async fn insert_figure(entries: &[(String, Cid)]) {
    let store = MemoryBlockStore::new();
    let start = Instant::now();
    let mut tree = Mst::empty();
    for (key, cid) in entries {
        tree = tree.insert(&store, key, *cid).await.expect("insert").0;
    }
    let commit = UnsignedCommit::v3(did(), tree.root_cid(), rev())
        .sign(&signer())
        .expect("sign");
    black_box(commit.cid());
    report("mst_insert_100k_commit", start.elapsed().as_secs_f64(), "s");
}

fn node_blocks(tree: &Mst) -> BlockMap {
    tree.walk_loaded()
        .filter_map(|item| match item.expect("a built tree is loaded") {
            WalkItem::Node { cid, bytes } => Some((cid, bytes)),
            WalkItem::Leaf(_) => None,
        })
        .collect()
}

async fn diff_figure(entries: &[(String, Cid)]) {
    let store = MemoryBlockStore::new();
    let old = Mst::from_entries(entries.iter().cloned()).expect("tree");
    let extra = entries_from(N, 100);
    let new = Mst::from_entries(entries.iter().cloned().chain(extra)).expect("tree");
    store
        .put_blocks(&node_blocks(&old), &rev())
        .await
        .expect("put");
    store
        .put_blocks(&node_blocks(&new), &rev())
        .await
        .expect("put");
    let mut best = f64::MAX;
    for _ in 0..5 {
        let (a, b) = (Mst::load(old.root_cid()), Mst::load(new.root_cid()));
        let start = Instant::now();
        let diff = Mst::diff(&store, &a, &b).await.expect("diff");
        best = best.min(start.elapsed().as_secs_f64());
        assert_eq!(diff.changes.len(), 100);
    }
    report("mst_diff_100k_by_100", best * 1000.0, "ms");
}

/// Puts `blocks` into the store in batches of 10k.
async fn put_all(store: &MemoryBlockStore, blocks: impl Iterator<Item = (Cid, Vec<u8>)>) {
    let mut batch = BlockMap::new();
    for (cid, bytes) in blocks {
        batch.insert(cid, bytes);
        if batch.len() >= 10_000 {
            store.put_blocks(&batch, &rev()).await.expect("put");
            batch.clear();
        }
    }
    store.put_blocks(&batch, &rev()).await.expect("put");
}

/// A stored repository of the first `n` records; returns the commit CID.
async fn build_store(store: &MemoryBlockStore, n: usize) -> Cid {
    let mut entries = Vec::with_capacity(n);
    let records = workload().take(n).map(|(key, record)| {
        let (cid, bytes) = encode(&record);
        entries.push((key, cid));
        (cid, bytes)
    });
    put_all(store, records).await;
    let tree = Mst::from_entries(entries).expect("tree");
    let nodes = tree
        .walk_loaded()
        .filter_map(|item| match item.expect("loaded") {
            WalkItem::Node { cid, bytes } => Some((cid, bytes)),
            WalkItem::Leaf(_) => None,
        });
    put_all(store, nodes).await;
    let commit = UnsignedCommit::v3(did(), tree.root_cid(), rev())
        .sign(&signer())
        .expect("sign");
    let bytes = commit.to_cbor();
    let cid = atp_data::cid::cid_for_cbor(&bytes);
    put_all(store, std::iter::once((cid, bytes))).await;
    cid
}

/// The stored repository of the first `n` records, filled the way an import fills a store: built
/// (which leaves the allocator's heap fragmented by short-lived values: the walk then runs about
/// twice slower for reasons unrelated to it), exported, and staged back from that CAR.
async fn stored_repo(n: usize) -> (MemoryBlockStore, Cid) {
    let built = MemoryBlockStore::new();
    let commit = build_store(&built, n).await;
    let (car, _) = export_car(&built, &commit, Vec::new())
        .await
        .expect("export");
    drop(built);
    let store = MemoryBlockStore::new();
    stage_car(car.as_slice(), &store, &rev())
        .await
        .expect("stage");
    (store, commit)
}

fn import_verify(car: impl std::io::Read, records: usize) {
    let key = signer().public_key();
    let summary = verify_car(car, Some(&key)).expect("our export verifies");
    assert_eq!(summary.records, records as u64);
}

async fn car_figures_100k() {
    let (store, commit) = stored_repo(N).await;
    let start = Instant::now();
    let (car, _) = export_car(&store, &commit, Vec::new())
        .await
        .expect("export");
    let secs = start.elapsed().as_secs_f64();
    let mb = car.len() as f64 / MB;
    report("export_100k", secs, "s");
    report("export_100k_rate", mb / secs, "MB/s");
    drop(store);
    let start = Instant::now();
    import_verify(car.as_slice(), N);
    let secs = start.elapsed().as_secs_f64();
    report("import_verify_100k", secs, "s");
    report("import_verify_100k_rate", mb / secs, "MB/s");
    report("car_100k_size", mb, "MB");
}

/// `VmRSS` and `VmHWM` of this process, in MB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0), so that the next peak is this phase's own.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Child process: build the 1M store, export it to `path`.
async fn phase_export(path: &Path) {
    let (store, commit) = stored_repo(BIG).await;
    let before = rss().0;
    report("rss_1m_store", before, "MB");
    reset_peak();
    let file = std::fs::File::create(path).expect("create the CAR file");
    let start = Instant::now();
    let (out, stats) = export_car(&store, &commit, BufWriter::with_capacity(1 << 20, file))
        .await
        .expect("export");
    drop(out.into_inner().expect("flush"));
    let secs = start.elapsed().as_secs_f64();
    let peak = rss().1;
    report("export_1m", secs, "s");
    report("export_1m_rate", stats.bytes as f64 / MB / secs, "MB/s");
    report("car_1m_size", stats.bytes as f64 / MB, "MB");
    report("peak_rss_1m_export", peak, "MB");
    report("rss_1m_export_extra", peak - before, "MB");
}

/// Child process: stage the CAR at `path` (streaming from the file), then verify it.
async fn phase_import(path: &Path) {
    let size = std::fs::metadata(path).expect("the CAR file").len() as f64 / MB;
    let file = std::fs::File::open(path).expect("open the CAR file");
    let store = MemoryBlockStore::new();
    let start = Instant::now();
    let staged = stage_car(file, &store, &rev()).await.expect("stage");
    let (staged_rss, staging_peak) = rss();
    reset_peak();
    let key = signer().public_key();
    let summary = verify_repo(&store, &staged.root().expect("one root"), Some(&key))
        .await
        .expect("our export verifies");
    assert_eq!(summary.records, BIG as u64);
    let secs = start.elapsed().as_secs_f64();
    let verify_peak = rss().1;
    report("import_verify_1m", secs, "s");
    report("import_verify_1m_rate", size / secs, "MB/s");
    report("rss_1m_staged", staged_rss, "MB");
    report(
        "peak_rss_1m_import_verify",
        staging_peak.max(verify_peak),
        "MB",
    );
    report("rss_1m_verify_extra", verify_peak - staged_rss, "MB");
}

fn run_phase(phase: &str, path: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    match phase {
        "export" => runtime.block_on(phase_export(path)),
        "import" => runtime.block_on(phase_import(path)),
        other => eprintln!("unknown phase {other}"),
    }
}

fn big_figures() {
    let dir = std::env::temp_dir().join(format!("atp-repo-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("1m.car");
    let exe = std::env::current_exe().expect("this binary");
    for phase in ["export", "import"] {
        let status = Command::new(&exe)
            .args(["--phase", phase])
            .arg(&path)
            .status()
            .expect("run a phase");
        assert!(status.success(), "phase {phase} failed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--phase") {
        let (phase, path) = (&args[i + 1], Path::new(&args[i + 2]));
        return run_phase(phase, path);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let entries = entries(N);
    runtime.block_on(insert_figure(&entries));
    runtime.block_on(diff_figure(&entries));
    runtime.block_on(car_figures_100k());
    if std::env::var("REPO_BENCH_1M").as_deref() != Ok("0") {
        big_figures();
    }
}
