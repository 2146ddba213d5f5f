//! The local state file of `pds migrate`: which steps finished, and what they produced that a
//! later step needs (the imported commit, the source snapshot, the signed PLC operation).
//!
//! It holds no password or session token. It is written after every step, atomically (a
//! temporary file in the same directory, fsync, rename, fsync of the directory), so a run killed
//! at any moment finds either the old or the new state, never a torn one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The state file's format version.
const VERSION: u32 = 1;

/// What the source account held, recorded while it was still active (compared at the end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SourceSnapshot {
    /// The old host's head commit when the snapshot was taken.
    pub commit: String,
    /// That commit's MST root (the data CID).
    pub data: String,
    /// The record set: count and order-independent digest of `collection/rkey cid` lines.
    pub records: u64,
    /// See `records`.
    pub records_digest: String,
    /// The blob set: count and digest of the CIDs `sync.listBlobs` lists.
    pub blobs: u64,
    /// See `blobs`.
    pub blobs_digest: String,
    /// The number of preferences and the SHA-256 of their JSON (sorted keys).
    pub preferences: u64,
    /// See `preferences`.
    pub preferences_digest: String,
}

/// The state of one migration (one DID from one host to another).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct MigrationState {
    /// Format version.
    pub version: u32,
    /// The account's DID.
    pub did: String,
    /// The old host's URL as given.
    pub from: String,
    /// The new host's URL as given.
    pub to: String,
    /// The handle on the new host.
    pub new_handle: String,
    /// The new host's service DID (the `aud` of the service-auth token).
    pub new_service_did: Option<String>,
    /// Step create-account: the account exists on the new host.
    pub account_created: bool,
    /// Step import-repo: the commit CID the new host holds after the import.
    pub imported_commit: Option<String>,
    /// Step blobs: no blob is missing on the new host.
    pub blobs_done: bool,
    /// Blobs moved so far, over all runs.
    pub blobs_moved: u64,
    /// Blob bytes moved so far, over all runs.
    pub blob_bytes_moved: u64,
    /// Step preferences: copied.
    pub preferences_done: bool,
    /// Step snapshot: the source account as it was just before the handover.
    pub source: Option<SourceSnapshot>,
    /// Step plc-request: when the old host was asked to mail the PLC token (unix seconds).
    pub plc_requested_at: Option<i64>,
    /// Step plc-sign: the operation the old host signed (public data: it goes to the directory).
    pub plc_operation: Option<Value>,
    /// Step plc-submit: the DID document now names the new host.
    pub plc_submitted: bool,
    /// Step activate: the new account is active.
    pub activated: bool,
    /// Step deactivate-old: the old account is deactivated.
    pub old_deactivated: bool,
    /// The old host's head just before the deactivation (compared with the snapshot's).
    pub old_final_commit: Option<String>,
    /// Every check of the last verification passed.
    pub verified: bool,
    /// Last update (RFC 3339).
    pub updated_at: String,
}

/// A state file on disk.
pub(crate) struct StateFile {
    path: PathBuf,
    /// The current state.
    pub state: MigrationState,
    /// Whether the file existed when opened (a resumed run).
    pub resumed: bool,
}

impl StateFile {
    /// Opens `path`, or starts a new state for `did` from `from` to `to` if it does not exist.
    /// A file for another DID or other hosts is refused (the message says what to do).
    pub(crate) fn open(path: &Path, did: &str, from: &str, to: &str) -> anyhow::Result<StateFile> {
        match fs::read(path) {
            Ok(bytes) => {
                let state: MigrationState = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "the state file {} is not a pds migrate state file; move it away or pass \
                         another --state-file",
                        path.display()
                    )
                })?;
                if state.version != VERSION {
                    bail!(
                        "the state file {} has version {}, this pds reads version {VERSION}",
                        path.display(),
                        state.version
                    );
                }
                if state.did != did || !same_url(&state.from, from) || !same_url(&state.to, to) {
                    bail!(
                        "the state file {} is for {} from {} to {}, not {did} from {from} to {to}: \
                         pass another --state-file, or remove it to start over",
                        path.display(),
                        state.did,
                        state.from,
                        state.to
                    );
                }
                Ok(StateFile {
                    path: path.to_owned(),
                    state,
                    resumed: true,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StateFile {
                path: path.to_owned(),
                state: MigrationState {
                    version: VERSION,
                    did: did.to_owned(),
                    from: from.to_owned(),
                    to: to.to_owned(),
                    ..MigrationState::default()
                },
                resumed: false,
            }),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the state atomically.
    pub(crate) fn save(&mut self) -> anyhow::Result<()> {
        self.state.updated_at = chrono::Utc::now().to_rfc3339();
        let bytes = serde_json::to_vec_pretty(&self.state)?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pds-migrate.json".to_owned());
        let tmp = dir.join(format!(".{name}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            // The rename is durable once the directory is synced (best effort).
            if let Ok(d) = fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().with_context(|| format!("writing the state file {}", self.path.display()))
    }
}

/// URLs compared without a trailing slash.
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The default state file for `did`: `./pds-migrate-<did with ':' as '_'>.json`.
pub(crate) fn default_path(did: &str) -> PathBuf {
    PathBuf::from(format!("pds-migrate-{}.json", did.replace([':', '/'], "_")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let mut file = StateFile::open(&path, "did:plc:abc", "http://a", "http://b").unwrap();
        assert!(!file.resumed);
        file.state.account_created = true;
        file.state.imported_commit = Some("bafy".into());
        file.save().unwrap();
        let again = StateFile::open(&path, "did:plc:abc", "http://a/", "http://b").unwrap();
        assert!(again.resumed);
        assert!(again.state.account_created);
        assert_eq!(again.state.imported_commit.as_deref(), Some("bafy"));
        // Another DID or other hosts: refused.
        assert!(StateFile::open(&path, "did:plc:xyz", "http://a", "http://b").is_err());
        assert!(StateFile::open(&path, "did:plc:abc", "http://a", "http://c").is_err());
    }

    #[test]
    fn default_path_has_no_colons() {
        assert_eq!(
            default_path("did:plc:abc").to_str(),
            Some("pds-migrate-did_plc_abc.json")
        );
    }
}
