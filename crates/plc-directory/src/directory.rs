//! [`PlcDirectory`]: the in-process API over the store, for the HTTP server and for the PDS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use atp_data::Cid;
use atp_identity::plc::{LogEntry, PlcState, SignedOp};
use atp_syntax::Did;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::Mutex;

use crate::error::DirectoryError;
use crate::store::{self, Role};

/// Most entries one [`PlcDirectory::export`] call returns (the reference's page limit).
pub const MAX_EXPORT_COUNT: usize = 1000;

/// What the directory stored for an accepted operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The operation's CID.
    pub cid: Cid,
    /// Its `createdAt`: the submission time truncated to milliseconds, moved forward if needed so
    /// that `createdAt` strictly increases across the directory.
    pub created_at: DateTime<Utc>,
    /// The operations it nullified (a recovery), oldest first; usually empty.
    pub nullified: Vec<Cid>,
    /// The DID's state after it.
    pub state: PlcState,
}

/// An embedded `did:plc` directory over one SQLite file.
///
/// Cheap to clone (shared handles). Writes go through one writer connection behind an async
/// mutex, so operations are accepted one at a time; reads use a second, read-only connection.
/// Every database call runs on tokio's blocking pool, so the async methods need a tokio runtime.
#[derive(Clone)]
pub struct PlcDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for PlcDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlcDirectory")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl PlcDirectory {
    /// Opens (creating it if needed) the directory database at `path` and migrates its schema.
    ///
    /// Blocking (file I/O and migrations): call it at startup, or from a blocking task.
    pub fn open(path: impl AsRef<Path>) -> Result<PlcDirectory, DirectoryError> {
        let path = path.as_ref().to_path_buf();
        let mut writer = store::open_connection(&path, Role::Writer)?;
        store::migrate(&mut writer)?;
        let reader = store::open_connection(&path, Role::Reader)?;
        Ok(PlcDirectory {
            inner: Arc::new(Inner {
                path,
                writer: Arc::new(Mutex::new(writer)),
                reader: Arc::new(Mutex::new(reader)),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Submits a signed operation for `did`, accepted at `now` (its `createdAt`).
    ///
    /// The operation is checked with `atp_identity::plc::validate_new_op` against the stored log
    /// (policy for new operations, signature, `prev`, recovery window, tombstones; an empty log
    /// needs a genesis operation deriving `did`). If it is accepted, it is stored and the
    /// operations it displaces are marked nullified, in one transaction. If it is refused, the
    /// error is [`DirectoryError::Rejected`] and nothing changes.
    pub async fn submit(
        &self,
        did: &Did,
        op: &SignedOp,
        now: DateTime<Utc>,
    ) -> Result<Submitted, DirectoryError> {
        let (did, op) = (did.clone(), op.clone());
        let submitted = self
            .write(move |conn| store::submit(conn, &did, &op, now))
            .await;
        match &submitted {
            Ok(s) => {
                tracing::info!(cid = %s.cid, nullified = s.nullified.len(), "accepted PLC operation")
            }
            Err(e) if e.is_rejection() => tracing::debug!(error = %e, "refused PLC operation"),
            Err(e) => tracing::error!(error = %e, "storing a PLC operation failed"),
        }
        submitted
    }

    /// The DID's current state; `None` if it is not registered.
    ///
    /// The state is that of the last operation that is not nullified: active data, or
    /// [`PlcState::Tombstoned`].
    pub async fn resolve(&self, did: &Did) -> Result<Option<PlcState>, DirectoryError> {
        let did = did.clone();
        self.read(move |conn| {
            let last = store::last_entry(conn, &did)?;
            Ok(last.map(|entry| PlcState::after(&did, &entry.operation.op)))
        })
        .await
    }

    /// Every operation of the DID, nullified ones included, in order (`/<did>/log/audit`);
    /// empty if it is not registered.
    pub async fn audit_log(&self, did: &Did) -> Result<Vec<LogEntry>, DirectoryError> {
        let did = did.clone();
        self.read(move |conn| store::log_entries(conn, &did, true))
            .await
    }

    /// The operations in effect (not nullified), in order (`/<did>/log`); empty if the DID is not
    /// registered.
    pub async fn op_log(&self, did: &Did) -> Result<Vec<SignedOp>, DirectoryError> {
        let did = did.clone();
        let entries = self
            .read(move |conn| store::log_entries(conn, &did, false))
            .await?;
        Ok(entries.into_iter().map(|e| e.operation).collect())
    }

    /// The last operation in effect (`/<did>/log/last`), with its log entry; `None` if the DID is
    /// not registered.
    pub async fn last_op(&self, did: &Did) -> Result<Option<LogEntry>, DirectoryError> {
        let did = did.clone();
        self.read(move |conn| store::last_entry(conn, &did)).await
    }

    /// Up to `count` (at most [`MAX_EXPORT_COUNT`]) operations of all DIDs with a `createdAt`
    /// strictly after `after`, oldest first (`/export`).
    pub async fn export(
        &self,
        after: Option<DateTime<Utc>>,
        count: usize,
    ) -> Result<Vec<LogEntry>, DirectoryError> {
        let count = count.min(MAX_EXPORT_COUNT);
        self.read(move |conn| store::export(conn, after, count))
            .await
    }

    /// Checks that the database answers.
    pub async fn health_check(&self) -> Result<(), DirectoryError> {
        self.read(|conn| {
            store::schema_version(conn)?;
            Ok(())
        })
        .await
    }

    async fn read<T, F>(&self, f: F) -> Result<T, DirectoryError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DirectoryError> + Send + 'static,
    {
        let conn = Arc::clone(&self.inner.reader).lock_owned().await;
        tokio::task::spawn_blocking(move || f(&conn))
            .await
            .map_err(|_| DirectoryError::TaskFailed)?
    }

    async fn write<T, F>(&self, f: F) -> Result<T, DirectoryError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DirectoryError> + Send + 'static,
    {
        let mut conn = Arc::clone(&self.inner.writer).lock_owned().await;
        tokio::task::spawn_blocking(move || f(&mut conn))
            .await
            .map_err(|_| DirectoryError::TaskFailed)?
    }
}

#[cfg(test)]
mod tests {
    use atp_crypto::{Curve, Keypair};
    use atp_identity::plc::{NewOpError, PlcOp, UnsignedOp};
    use atp_syntax::Handle;
    use chrono::TimeDelta;

    use super::*;

    fn key(seed: u8) -> Keypair {
        Keypair::from_private_bytes(Curve::K256, &[seed; 32]).unwrap()
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn genesis(rotation: &[&Keypair], signer: &Keypair) -> (Did, SignedOp) {
        let handle: Handle = "alice.test".parse().unwrap();
        let keys = rotation.iter().map(|k| k.public_key().did_key()).collect();
        let op = PlcOp::atproto(
            &key(9).public_key(),
            &handle,
            "https://pds.test",
            keys,
            None,
        );
        let signed = UnsignedOp::Operation(op).sign(signer).unwrap();
        (signed.did().unwrap(), signed)
    }

    fn update(prev: &SignedOp, handle: &str, signer: &Keypair) -> SignedOp {
        let mut op = prev.op.normalize().unwrap();
        op.prev = Some(prev.cid().to_string());
        op.set_handle(&handle.parse().unwrap());
        UnsignedOp::Operation(op).sign(signer).unwrap()
    }

    fn open() -> (tempfile::TempDir, PlcDirectory) {
        let dir = tempfile::tempdir().unwrap();
        let plc = PlcDirectory::open(dir.path().join("plc.sqlite")).unwrap();
        (dir, plc)
    }

    #[tokio::test]
    async fn create_update_and_reopen() {
        let (dir, plc) = open();
        let (k0, k1) = (key(1), key(2));
        let (did, g) = genesis(&[&k0, &k1], &k0);
        assert_eq!(plc.resolve(&did).await.unwrap(), None);
        let s = plc.submit(&did, &g, t0()).await.unwrap();
        assert_eq!((s.cid, s.created_at, s.nullified.len()), (g.cid(), t0(), 0));
        let u = update(&g, "bob.test", &k1);
        plc.submit(&did, &u, t0() + TimeDelta::seconds(1))
            .await
            .unwrap();
        drop(plc);

        let plc = PlcDirectory::open(dir.path().join("plc.sqlite")).unwrap();
        let state = plc.resolve(&did).await.unwrap().unwrap();
        assert_eq!(state.data().unwrap().also_known_as, ["at://bob.test"]);
        assert_eq!(plc.op_log(&did).await.unwrap(), [g.clone(), u.clone()]);
        let last = plc.last_op(&did).await.unwrap().unwrap();
        assert_eq!((last.operation, last.cid), (u.clone(), u.cid()));
        let audit = plc.audit_log(&did).await.unwrap();
        atp_identity::plc::validate_audit_log(&did, &audit).unwrap();
        plc.health_check().await.unwrap();
    }

    #[tokio::test]
    async fn recovery_nullifies_in_the_same_transaction() {
        let (_dir, plc) = open();
        let (k0, k1) = (key(1), key(2));
        let (did, g) = genesis(&[&k0, &k1], &k0);
        plc.submit(&did, &g, t0()).await.unwrap();
        let hijack = update(&g, "mallory.test", &k1);
        plc.submit(&did, &hijack, t0() + TimeDelta::hours(1))
            .await
            .unwrap();
        let after_hijack = update(&hijack, "mallory2.test", &k1);
        plc.submit(&did, &after_hijack, t0() + TimeDelta::hours(2))
            .await
            .unwrap();
        let recovery = update(&g, "alice2.test", &k0);
        let s = plc
            .submit(&did, &recovery, t0() + TimeDelta::hours(3))
            .await
            .unwrap();
        assert_eq!(s.nullified, [hijack.cid(), after_hijack.cid()]);
        let audit = plc.audit_log(&did).await.unwrap();
        let flags: Vec<bool> = audit.iter().map(|e| e.nullified).collect();
        assert_eq!(flags, [false, true, true, false]);
        atp_identity::plc::validate_audit_log(&did, &audit).unwrap();
        assert_eq!(plc.op_log(&did).await.unwrap(), [g, recovery]);
    }

    #[tokio::test]
    async fn refused_operations_change_nothing() {
        let (_dir, plc) = open();
        let (k0, k1) = (key(1), key(2));
        let (did, g) = genesis(&[&k0, &k1], &k0);
        plc.submit(&did, &g, t0()).await.unwrap();
        let before = plc.audit_log(&did).await.unwrap();
        let forged = update(&g, "eve.test", &key(7));
        let err = plc
            .submit(&did, &forged, t0() + TimeDelta::seconds(1))
            .await;
        assert!(
            matches!(&err, Err(DirectoryError::Rejected(e)) if matches!(**e, NewOpError::Rejected(_))),
            "{err:?}"
        );
        assert_eq!(plc.audit_log(&did).await.unwrap(), before);
        // The same genesis twice is a duplicate, and a genesis for another DID is refused.
        assert!(
            plc.submit(&did, &g, t0() + TimeDelta::seconds(2))
                .await
                .is_err()
        );
        let other: Did = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb".parse().unwrap();
        assert!(plc.submit(&other, &g, t0()).await.is_err());
        assert_eq!(plc.resolve(&other).await.unwrap(), None);
        assert_eq!(plc.audit_log(&did).await.unwrap(), before);
    }

    #[tokio::test]
    async fn export_pages_in_order() {
        let (_dir, plc) = open();
        let mut cids = Vec::new();
        for seed in 1..=3u8 {
            let k = key(seed);
            let (did, g) = genesis(&[&k], &k);
            // All at the same instant: createdAt still increases by 1 ms each.
            plc.submit(&did, &g, t0()).await.unwrap();
            cids.push(g.cid());
        }
        let all = plc.export(None, 10).await.unwrap();
        assert_eq!(all.iter().map(|e| e.cid).collect::<Vec<_>>(), cids);
        let page = plc.export(Some(all[0].created_at), 1).await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].cid, cids[1]);
        let rest = plc.export(Some(all[2].created_at), 10).await.unwrap();
        assert!(rest.is_empty());
    }
}
