//! Files kept beside the database: account signing keys (`<data>/keys/<did>.key`, hex, 0600)
//! and blob bytes (`<blobs>/tmp/<key>` until a record references them, then
//! `<blobs>/<did>/<cid>`, or `<blobs>/quarantine/<did>/<cid>` while the blob is taken down).

use std::path::{Path, PathBuf};

use atp_crypto::{Curve, Keypair};
use atp_data::Cid;
use atp_syntax::Did;

use crate::state::write_private_file;

/// Where account signing keys live.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    dir: PathBuf,
}

/// A file name for a DID (`:` is not portable in file names).
fn did_file_name(did: &Did) -> String {
    did.as_str().replace(':', "_")
}

impl KeyFiles {
    /// Keys under `<data_dir>/keys`.
    pub fn new(data_dir: &Path) -> KeyFiles {
        KeyFiles {
            dir: data_dir.join("keys"),
        }
    }

    /// The file holding `did`'s signing key.
    pub fn key_path(&self, did: &Did) -> PathBuf {
        self.dir.join(format!("{}.key", did_file_name(did)))
    }

    /// Stores `did`'s signing key (0600).
    pub fn save(&self, did: &Did, key: &Keypair) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("{}.key", did_file_name(did)));
        write_private_file(&path, key.private_hex().as_bytes())
    }

    fn reserved_path(&self, owner: &str) -> PathBuf {
        self.dir
            .join("reserved")
            .join(format!("{}.key", owner.replace(':', "_")))
    }

    /// Stores a reserved key under `owner` (a DID, or the key's own `did:key`) (0600).
    pub fn save_reserved(&self, owner: &str, key: &Keypair) -> std::io::Result<()> {
        let path = self.reserved_path(owner);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        write_private_file(&path, key.private_hex().as_bytes())
    }

    /// The key reserved under `owner`, if any.
    pub fn load_reserved(&self, owner: &str) -> std::io::Result<Option<Keypair>> {
        let hex = match std::fs::read_to_string(self.reserved_path(owner)) {
            Ok(hex) => zeroize::Zeroizing::new(hex),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Keypair::from_private_hex(Curve::K256, hex.trim())
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }

    /// Deletes `did`'s signing key file (missing is fine).
    pub fn delete(&self, did: &Did) -> std::io::Result<()> {
        let path = self.dir.join(format!("{}.key", did_file_name(did)));
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Loads `did`'s signing key.
    pub fn load(&self, did: &Did) -> std::io::Result<Keypair> {
        let path = self.dir.join(format!("{}.key", did_file_name(did)));
        let hex = zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
        Keypair::from_private_hex(Curve::K256, hex.trim())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}

/// Where blob bytes live.
#[derive(Debug, Clone)]
pub struct BlobFiles {
    dir: PathBuf,
}

impl BlobFiles {
    /// Blobs under `dir`.
    pub fn new(dir: &Path) -> BlobFiles {
        BlobFiles {
            dir: dir.to_owned(),
        }
    }

    /// The temporary file for upload `key`.
    pub fn temp_path(&self, key: &str) -> PathBuf {
        self.dir.join("tmp").join(key)
    }

    /// The temporary directory (created if needed).
    pub fn temp_dir(&self) -> std::io::Result<PathBuf> {
        let dir = self.dir.join("tmp");
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// The permanent file of `did`'s blob `cid`.
    pub fn permanent_path(&self, did: &Did, cid: &Cid) -> PathBuf {
        self.dir.join(did_file_name(did)).join(cid.to_string())
    }

    /// Where the file of `did`'s taken-down blob `cid` waits, out of the served location.
    pub fn quarantine_path(&self, did: &Did, cid: &Cid) -> PathBuf {
        self.dir
            .join("quarantine")
            .join(did_file_name(did))
            .join(cid.to_string())
    }

    /// Moves the file of `did`'s permanent blob `cid` into quarantine (`quarantine`) or back to
    /// the served location. Idempotent: a file already where it goes is done; returns `false`
    /// when the file is in neither place.
    pub async fn set_quarantined(
        &self,
        did: &Did,
        cid: &Cid,
        quarantine: bool,
    ) -> std::io::Result<bool> {
        let (served, quarantined) = (
            self.permanent_path(did, cid),
            self.quarantine_path(did, cid),
        );
        let (from, to) = if quarantine {
            (served, quarantined)
        } else {
            (quarantined, served)
        };
        if let Some(parent) = to.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        match tokio::fs::rename(&from, &to).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => tokio::fs::try_exists(&to).await,
            Err(e) => Err(e),
        }
    }

    /// Moves a temporary upload to permanent storage.
    pub async fn promote(&self, did: &Did, cid: &Cid, temp_key: &str) -> std::io::Result<()> {
        let to = self.permanent_path(did, cid);
        if let Some(parent) = to.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(self.temp_path(temp_key), to).await
    }

    /// Deletes `did`'s directories of permanent and quarantined blob files if they are empty
    /// (missing is fine).
    pub async fn remove_account_dir(&self, did: &Did) -> std::io::Result<()> {
        let name = did_file_name(did);
        for dir in [
            self.dir.join(&name),
            self.dir.join("quarantine").join(&name),
        ] {
            match tokio::fs::remove_dir(dir).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Deletes a temporary upload file (missing is fine).
    pub async fn delete_temp(&self, key: &str) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.temp_path(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Deletes a permanent blob's file, served or quarantined (missing is fine).
    pub async fn delete(&self, did: &Did, cid: &Cid) -> std::io::Result<()> {
        for path in [
            self.permanent_path(did, cid),
            self.quarantine_path(did, cid),
        ] {
            match tokio::fs::remove_file(path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}
