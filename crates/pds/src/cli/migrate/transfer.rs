//! The data transfers: the repository (`sync.getRepo` streamed straight into `repo.importRepo`)
//! and the blobs the new host is missing (`sync.getBlob` streamed into `repo.uploadBlob`, a
//! bounded number at once). Nothing is buffered beyond the chunks in flight.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use xrpc_client::{Body, XrpcError};

use super::host::{Host, is_expired, method};
use super::progress::{Progress, human_bytes};

/// Content type of a repository CAR.
const CAR_MIME: &str = "application/vnd.ipld.car";
/// listMissingBlobs page size (the lexicon's maximum is 1000).
const MISSING_PAGE: u32 = 500;
/// Attempts per blob (transport errors and 5xx answers are retried).
const BLOB_ATTEMPTS: u32 = 3;

/// The first error of a download stream, kept so that a failed upload names its real cause.
type ErrorSlot = Arc<Mutex<Option<String>>>;

fn keep_first(slot: &ErrorSlot, message: String) {
    if let Ok(mut s) = slot.lock()
        && s.is_none()
    {
        *s = Some(message);
    }
}

fn take(slot: &ErrorSlot) -> Option<String> {
    slot.lock().ok().and_then(|mut s| s.take())
}

/// Streams the old host's repository into the new host's `importRepo`. Returns the bytes moved.
pub(crate) async fn transfer_repo(old: &Host, new: &Host, did: &str) -> anyhow::Result<u64> {
    let progress = Arc::new(Progress::bytes("repository"));
    for attempt in 1..=2 {
        let (_, download) = old
            .authed()
            .await?
            .query_stream(&method("com.atproto.sync.getRepo"), &json!({"did": did}))
            .await
            .map_err(|e| anyhow!(e).context("downloading the repository from the old host"))?;
        let failed: ErrorSlot = Arc::default();
        let (p, f) = (progress.clone(), failed.clone());
        let body = download.inspect(move |chunk| match chunk {
            Ok(bytes) => p.add_bytes(bytes.len() as u64),
            Err(e) => keep_first(&f, e.to_string()),
        });
        let used = new.access_token().await;
        let res: Result<Value, XrpcError> = new
            .authed()
            .await?
            .procedure_bytes(
                &method("com.atproto.repo.importRepo"),
                CAR_MIME,
                Body::wrap_stream(body),
            )
            .await;
        match res {
            Ok(_) => {
                progress.finish();
                return Ok(progress.byte_count());
            }
            Err(e) if is_expired(&e) && attempt == 1 => {
                new.renew(&used).await?;
                progress.println("  the session on the new host expired: importing again");
            }
            Err(e) => {
                if let Some(cause) = take(&failed) {
                    bail!("downloading the repository from the old host failed: {cause}");
                }
                return Err(anyhow!(e).context("the new host refused the repository import"));
            }
        }
    }
    bail!("the repository import failed twice")
}

#[derive(Debug, Deserialize)]
struct MissingPage {
    #[serde(default)]
    cursor: Option<String>,
    blobs: Vec<MissingBlob>,
}

#[derive(Debug, Deserialize)]
struct MissingBlob {
    cid: String,
}

/// One page of the new host's missing blobs.
async fn missing_page(new: &Host, cursor: Option<&str>) -> anyhow::Result<MissingPage> {
    new.query(
        "com.atproto.repo.listMissingBlobs",
        &json!({"limit": MISSING_PAGE, "cursor": cursor}),
    )
    .await
    .context("listing the blobs missing on the new host (listMissingBlobs)")
}

/// What the blob step did in this run.
pub(crate) struct BlobOutcome {
    pub moved: u64,
    pub bytes: u64,
}

/// Test hook: stop the process (exit 3) after this many blobs moved in this run.
fn stop_after_blobs() -> Option<u64> {
    std::env::var("PDS_MIGRATE_TEST_STOP_AFTER")
        .ok()?
        .strip_prefix("blobs:")?
        .parse()
        .ok()
}

/// Test hook: pause this long before each blob upload (so a test can kill the process while
/// blobs are in flight).
fn blob_delay() -> Option<Duration> {
    std::env::var("PDS_MIGRATE_TEST_BLOB_DELAY_MS")
        .ok()?
        .parse()
        .ok()
        .map(Duration::from_millis)
}

/// Moves every blob the new host lists as missing, `concurrency` at once, until the list is
/// empty. `total` is the number expected missing (for the bar).
pub(crate) async fn transfer_blobs(
    old: &Host,
    new: &Host,
    did: &str,
    total: u64,
    concurrency: usize,
) -> anyhow::Result<BlobOutcome> {
    let progress = Progress::items("blobs", total);
    let stop_after = stop_after_blobs();
    let delay = blob_delay();
    let mut failures: Vec<String> = Vec::new();
    for pass in 1..=3 {
        let mut cursor: Option<String> = None;
        let mut attempted = 0u64;
        let before = progress.item_count();
        failures.clear();
        loop {
            let page = missing_page(new, cursor.as_deref()).await?;
            if page.blobs.is_empty() {
                break;
            }
            attempted += page.blobs.len() as u64;
            let results: Vec<(String, anyhow::Result<u64>)> = futures::stream::iter(page.blobs)
                .map(|b| async {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    let res = transfer_blob_retrying(old, new, did, &b.cid, &progress).await;
                    if res.is_ok() {
                        progress.add_item();
                        if stop_after.is_some_and(|n| progress.item_count() >= n) {
                            progress.println(&format!(
                                "test hook: stopping after {} blobs",
                                progress.item_count()
                            ));
                            std::process::exit(3);
                        }
                    }
                    (b.cid, res)
                })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
            for (cid, res) in results {
                if let Err(e) = res {
                    failures.push(format!("{cid}: {e:#}"));
                }
            }
            cursor = page.cursor;
            if cursor.is_none() {
                break;
            }
        }
        let remaining = missing_page(new, None).await?;
        if remaining.blobs.is_empty() {
            progress.finish();
            return Ok(BlobOutcome {
                moved: progress.item_count(),
                bytes: progress.byte_count(),
            });
        }
        if progress.item_count() == before && attempted > 0 {
            break;
        }
        progress.println(&format!(
            "  pass {pass}: blobs are still missing on the new host; listing them again"
        ));
    }
    progress.finish();
    let shown: Vec<&str> = failures.iter().take(5).map(String::as_str).collect();
    bail!(
        "{} blob(s) could not be moved ({} moved in this run, {}); first failures:\n    {}",
        failures.len().max(1),
        progress.item_count(),
        human_bytes(progress.byte_count()),
        if shown.is_empty() {
            "(none reported: the new host still lists missing blobs)".to_owned()
        } else {
            shown.join("\n    ")
        }
    )
}

/// One blob, retried on transport errors, 5xx answers and expired sessions.
async fn transfer_blob_retrying(
    old: &Host,
    new: &Host,
    did: &str,
    cid: &str,
    progress: &Progress,
) -> anyhow::Result<u64> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match transfer_blob(old, new, did, cid, progress).await {
            Ok(n) => return Ok(n),
            Err(BlobError::Expired { host, used }) if attempt < BLOB_ATTEMPTS => {
                host_of(old, new, host).renew(&used).await?;
            }
            Err(BlobError::Retryable(e)) if attempt < BLOB_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                let _ = e;
            }
            Err(BlobError::Expired { .. }) => bail!("the session keeps expiring"),
            Err(BlobError::Retryable(e) | BlobError::Fatal(e)) => return Err(e),
        }
    }
}

#[derive(Clone, Copy)]
enum Side {
    Old,
    New,
}

fn host_of<'a>(old: &'a Host, new: &'a Host, side: Side) -> &'a Host {
    match side {
        Side::Old => old,
        Side::New => new,
    }
}

enum BlobError {
    Expired { host: Side, used: String },
    Retryable(anyhow::Error),
    Fatal(anyhow::Error),
}

fn classify(e: XrpcError, side: Side, used: &str, what: String) -> BlobError {
    if is_expired(&e) {
        return BlobError::Expired {
            host: side,
            used: used.to_owned(),
        };
    }
    let retry = match e.status() {
        None => true,
        Some(s) => s.is_server_error() || s.as_u16() == 429,
    };
    let e = anyhow!(e).context(what);
    if retry {
        BlobError::Retryable(e)
    } else {
        BlobError::Fatal(e)
    }
}

/// Streams one blob from the old host to the new one and checks the CID the new host computed.
async fn transfer_blob(
    old: &Host,
    new: &Host,
    did: &str,
    cid: &str,
    progress: &Progress,
) -> Result<u64, BlobError> {
    let used_old = old.access_token().await;
    let client = old.authed().await.map_err(|e| BlobError::Fatal(e.into()))?;
    let (headers, download) = client
        .query_stream(
            &method("com.atproto.sync.getBlob"),
            &json!({"did": did, "cid": cid}),
        )
        .await
        .map_err(|e| {
            classify(
                e,
                Side::Old,
                &used_old,
                "downloading from the old host".into(),
            )
        })?;
    let mime = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let failed: ErrorSlot = Arc::default();
    let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (f, c) = (failed.clone(), counted.clone());
    let body = download
        .inspect(move |chunk| match chunk {
            Ok(bytes) => {
                c.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) => keep_first(&f, e.to_string()),
        })
        .map_err(|e| std::io::Error::other(e.to_string()));
    let used_new = new.access_token().await;
    let client = new.authed().await.map_err(|e| BlobError::Fatal(e.into()))?;
    let out: Value = client
        .procedure_bytes(
            &method("com.atproto.repo.uploadBlob"),
            &mime,
            Body::wrap_stream(body),
        )
        .await
        .map_err(|e| {
            if let Some(cause) = take(&failed) {
                return BlobError::Retryable(anyhow!(
                    "downloading from the old host failed: {cause}"
                ));
            }
            classify(e, Side::New, &used_new, "uploading to the new host".into())
        })?;
    let got = out
        .pointer("/blob/ref/$link")
        .and_then(Value::as_str)
        .unwrap_or("");
    if got != cid {
        return Err(BlobError::Fatal(anyhow!(
            "the new host computed CID {got:?} for the bytes the old host served as {cid}"
        )));
    }
    let n = counted.load(std::sync::atomic::Ordering::Relaxed);
    progress.add_bytes(n);
    Ok(n)
}
