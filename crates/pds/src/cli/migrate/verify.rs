//! Snapshots of an account (head commit and its data CID, record set, blob set, preferences)
//! and the end-of-migration checks.
//!
//! Sets are compared by count and an order-independent digest (the wrapping sum of the SHA-256 of
//! each member), computed page by page, so memory does not grow with the repository.

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::host::{Host, method};
use super::state::SourceSnapshot;

/// An order-independent digest of a set of strings.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SetDigest {
    count: u64,
    lanes: [u64; 4],
}

impl SetDigest {
    pub(crate) fn add(&mut self, item: &str) {
        let hash = Sha256::digest(item.as_bytes());
        for (lane, chunk) in self.lanes.iter_mut().zip(hash.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *lane = lane.wrapping_add(u64::from_be_bytes(word));
        }
        self.count += 1;
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn hex(&self) -> String {
        self.lanes.iter().map(|l| format!("{l:016x}")).collect()
    }
}

/// The head commit of `did` on `host` and its data CID (`getLatestCommit`, then the commit
/// block by `getBlocks`).
pub(crate) async fn head(host: &Host, did: &str) -> anyhow::Result<(String, String)> {
    #[derive(Deserialize)]
    struct Latest {
        cid: String,
    }
    let latest: Latest = host
        .query("com.atproto.sync.getLatestCommit", &json!({"did": did}))
        .await
        .with_context(|| format!("getLatestCommit on the {}", host.label))?;
    let (_, mut stream) = host
        .authed()
        .await?
        .query_stream(
            &method("com.atproto.sync.getBlocks"),
            &json!({"did": did, "cids": [latest.cid.clone()]}),
        )
        .await
        .with_context(|| format!("getBlocks of the head commit on the {}", host.label))?;
    let mut car = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if car.len() + chunk.len() > 1024 * 1024 {
            bail!(
                "the {}'s getBlocks answer for one commit is too large",
                host.label
            );
        }
        car.extend_from_slice(&chunk);
    }
    let mut reader = atp_data::car::CarReader::new(car.as_slice())
        .map_err(|e| anyhow!("the {}'s commit CAR: {e}", host.label))?;
    while let Some((cid, bytes)) = reader
        .next_block()
        .map_err(|e| anyhow!("the {}'s commit CAR: {e}", host.label))?
    {
        if cid.to_string() != latest.cid {
            continue;
        }
        let commit = atp_data::cbor::from_slice(&bytes)
            .map_err(|e| anyhow!("the {}'s commit block: {e}", host.label))?;
        let data = commit
            .get("data")
            .and_then(|d| d.as_link())
            .ok_or_else(|| anyhow!("the {}'s commit has no data CID", host.label))?;
        return Ok((latest.cid, data.to_string()));
    }
    bail!("the {} did not return the head commit block", host.label)
}

/// The record set of `did` on `host` (every collection, `listRecords` page by page).
pub(crate) async fn records(host: &Host, did: &str) -> anyhow::Result<SetDigest> {
    #[derive(Deserialize)]
    struct Described {
        collections: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        cursor: Option<String>,
        records: Vec<Rec>,
    }
    #[derive(Deserialize)]
    struct Rec {
        uri: String,
        cid: String,
    }
    let described: Described = host
        .query("com.atproto.repo.describeRepo", &json!({"repo": did}))
        .await
        .with_context(|| format!("describeRepo on the {}", host.label))?;
    let mut digest = SetDigest::default();
    for collection in &described.collections {
        let mut cursor: Option<String> = None;
        loop {
            let page: Page = host
                .query(
                    "com.atproto.repo.listRecords",
                    &json!({"repo": did, "collection": collection, "limit": 100, "cursor": cursor}),
                )
                .await
                .with_context(|| format!("listRecords {collection} on the {}", host.label))?;
            for r in &page.records {
                // at://<did>/<collection>/<rkey>: the path, whatever authority the host wrote.
                let path = r
                    .uri
                    .strip_prefix("at://")
                    .and_then(|rest| rest.split_once('/'))
                    .map_or(r.uri.as_str(), |(_, path)| path);
                digest.add(&format!("{path} {}", r.cid));
            }
            match page.cursor {
                Some(c) if !page.records.is_empty() && cursor.as_deref() != Some(c.as_str()) => {
                    cursor = Some(c);
                }
                _ => break,
            }
        }
    }
    Ok(digest)
}

/// The blob set of `did` on `host` (`sync.listBlobs` page by page).
pub(crate) async fn blobs(host: &Host, did: &str) -> anyhow::Result<SetDigest> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        cursor: Option<String>,
        cids: Vec<String>,
    }
    let mut digest = SetDigest::default();
    let mut cursor: Option<String> = None;
    loop {
        let page: Page = host
            .query(
                "com.atproto.sync.listBlobs",
                &json!({"did": did, "limit": 1000, "cursor": cursor}),
            )
            .await
            .with_context(|| format!("listBlobs on the {}", host.label))?;
        for cid in &page.cids {
            digest.add(cid);
        }
        match page.cursor {
            Some(c) if !page.cids.is_empty() && cursor.as_deref() != Some(c.as_str()) => {
                cursor = Some(c);
            }
            _ => break,
        }
    }
    Ok(digest)
}

/// The preferences of the account on `host`.
pub(crate) async fn preferences(host: &Host) -> anyhow::Result<Value> {
    let out: Value = host
        .query("app.bsky.actor.getPreferences", &())
        .await
        .with_context(|| format!("getPreferences on the {}", host.label))?;
    Ok(out.get("preferences").cloned().unwrap_or(json!([])))
}

/// Count and SHA-256 of preferences, with object keys sorted.
pub(crate) fn preferences_digest(prefs: &Value) -> (u64, String) {
    let count = prefs.as_array().map_or(0, |a| a.len() as u64);
    let bytes = serde_json::to_vec(&sorted(prefs)).unwrap_or_default();
    (count, hex::encode(Sha256::digest(&bytes)))
}

/// `value` with every object's keys in sorted order (whatever the map type keeps).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Everything the source account holds, read from `host`.
pub(crate) async fn snapshot(host: &Host, did: &str) -> anyhow::Result<SourceSnapshot> {
    let (commit, data) = head(host, did).await?;
    let records = records(host, did).await?;
    let blobs = blobs(host, did).await?;
    let (preferences, preferences_digest) = preferences_digest(&preferences(host).await?);
    Ok(SourceSnapshot {
        commit,
        data,
        records: records.count(),
        records_digest: records.hex(),
        blobs: blobs.count(),
        blobs_digest: blobs.hex(),
        preferences,
        preferences_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_digest_ignores_order_and_sees_members() {
        let mut a = SetDigest::default();
        let mut b = SetDigest::default();
        for s in ["x", "y", "z"] {
            a.add(s);
        }
        for s in ["z", "x", "y"] {
            b.add(s);
        }
        assert_eq!(a, b);
        assert_eq!(a.count(), 3);
        let mut c = SetDigest::default();
        for s in ["x", "y", "w"] {
            c.add(s);
        }
        assert_ne!(a.hex(), c.hex());
    }

    #[test]
    fn preferences_digest_ignores_key_order() {
        let a = json!([{"$type": "a", "x": 1, "y": 2}]);
        let b: Value = serde_json::from_str(r#"[{"y": 2, "x": 1, "$type": "a"}]"#).unwrap();
        assert_eq!(preferences_digest(&a), preferences_digest(&b));
    }
}
