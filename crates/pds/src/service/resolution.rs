//! Identity resolution for the `com.atproto.identity.*` queries (resolveHandle, resolveDid,
//! resolveIdentity, refreshIdentity).
//!
//! - Handles: an account hosted here answers from the store; a handle under one of our service
//!   domains that no account holds is definitely not found (the reference PDS's rule: it would be
//!   in our database); anything else goes to the network resolver (DNS TXT, then HTTPS), whose
//!   SSRF guards apply.
//! - DIDs: always through the network resolver (PLC directory or `did:web`), with its cache.
//!   A `did:plc` the directory reports as tombstoned is `DidDeactivated`, not `DidNotFound`.
//! - Identity info: the DID document plus the handle it claims, but only when that handle
//!   resolves back to the same DID; otherwise the handle is `handle.invalid`. Starting from a
//!   handle, a document that does not claim it back is an error (`HandleNotFound`), as in the
//!   reference identity resolver.
//! - Refresh: the cached document (and handle answer) are dropped and fetched again.

use std::sync::Arc;

use atp_identity::resolve::{
    BuildError, HickoryDns, IdentityResolver, PlcError, ResolverConfig, TxtLookup,
};
use atp_identity::{DidDocument, ResolveError, Resolver};
use atp_syntax::{Did, Handle};
use pds_store::StoreError;

use crate::state::AppState;

/// The handle reported when the bidirectional check fails.
pub const HANDLE_INVALID: &str = "handle.invalid";

/// Why an identity could not be resolved. Each variant is one XRPC error.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The handle resolves to no DID, or to a DID whose document does not claim it.
    #[error("{0}")]
    HandleNotFound(String),
    /// The DID has no document.
    #[error("DID not found: {0}")]
    DidNotFound(Did),
    /// The DID existed but is deactivated (a tombstoned `did:plc`).
    #[error("DID deactivated: {0}")]
    DidDeactivated(Did),
    /// The DID cannot be resolved here (method other than `plc` and `web`, `did:web` with a
    /// path, ...).
    #[error("{0}")]
    Unsupported(String),
    /// The network or the remote service failed, or answered with an unusable document.
    #[error("{0}")]
    Upstream(String),
    /// Our own store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A resolved identity (`com.atproto.identity.defs#identityInfo`).
#[derive(Debug, Clone)]
pub struct IdentityInfo {
    /// The DID.
    pub did: Did,
    /// The verified handle (lower-case), or [`HANDLE_INVALID`].
    pub handle: String,
    /// The DID document.
    pub doc: DidDocument,
}

impl IdentityInfo {
    /// The lexicon's JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "did": self.did.as_str(),
            "handle": self.handle,
            "didDoc": self.doc.to_json(),
        })
    }
}

/// The network resolver for `config`: TXT records from `PDS_DNS_NAMESERVERS` (else the
/// system's name servers), `PDS_HANDLE_BACKUP_NAMESERVERS` asked last for handles, addresses
/// always from the system.
pub fn build_resolver(
    config: &crate::config::Config,
    resolver_config: ResolverConfig,
) -> Result<IdentityResolver, BuildError> {
    let mut builder = IdentityResolver::builder(resolver_config);
    if !config.dns_nameservers.is_empty() {
        let dns = HickoryDns::with_nameservers(&config.dns_nameservers)?;
        builder = builder.txt_lookup(Arc::new(dns) as Arc<dyn TxtLookup>);
    }
    if !config.handle_backup_nameservers.is_empty() {
        let dns = HickoryDns::with_nameservers(&config.handle_backup_nameservers)?;
        builder = builder.backup_txt_lookup(Arc::new(dns));
    }
    builder.build()
}

fn resolver(state: &AppState) -> Result<&IdentityResolver, IdentityError> {
    state
        .resolver()
        .ok_or_else(|| IdentityError::Upstream("identity resolution is not available".into()))
}

/// Whether `handle` is under one of the service domains (or is a domain itself).
fn is_service_handle(state: &AppState, handle: &Handle) -> bool {
    let name = handle.as_str().to_ascii_lowercase();
    state
        .config()
        .service_handle_domains
        .iter()
        .any(|d| name.ends_with(d.as_str()) || d.strip_prefix('.') == Some(name.as_str()))
}

fn handle_not_found() -> IdentityError {
    IdentityError::HandleNotFound("Unable to resolve handle".into())
}

/// Resolves `handle` to a DID (see the module docs), without the bidirectional check. With
/// `fresh`, a cached network answer is dropped first.
pub async fn resolve_handle(
    state: &AppState,
    handle: &Handle,
    fresh: bool,
) -> Result<Did, IdentityError> {
    let lower: Handle = handle
        .as_str()
        .to_ascii_lowercase()
        .parse()
        .map_err(|_| handle_not_found())?;
    if let Some(account) = state.store().get_account_by_handle(&lower).await? {
        return Ok(account.did);
    }
    if is_service_handle(state, &lower) {
        return Err(handle_not_found());
    }
    let resolver = resolver(state)?;
    if fresh {
        resolver.invalidate_handle(&lower);
    }
    match resolver.resolve_handle(&lower).await {
        Ok(did) => Ok(did),
        Err(ResolveError::Unavailable { reason }) => Err(IdentityError::Upstream(format!(
            "Unable to resolve handle: {reason}"
        ))),
        Err(_) => Err(handle_not_found()),
    }
}

/// The document of `did` (cached unless `fresh`).
pub async fn resolve_did(
    state: &AppState,
    did: &Did,
    fresh: bool,
) -> Result<DidDocument, IdentityError> {
    let resolver = resolver(state)?;
    let result = if fresh {
        resolver.refresh_did(did).await
    } else {
        resolver.resolve_did(did).await
    };
    match result {
        Ok(doc) => Ok(doc),
        Err(ResolveError::DidNotFound { .. }) => {
            if did.method() == "plc"
                && matches!(
                    resolver.plc().did_document(did).await,
                    Err(PlcError::Tombstoned { .. })
                )
            {
                Err(IdentityError::DidDeactivated(did.clone()))
            } else {
                Err(IdentityError::DidNotFound(did.clone()))
            }
        }
        Err(e @ (ResolveError::UnsupportedMethod { .. } | ResolveError::UnsupportedDid { .. })) => {
            Err(IdentityError::Unsupported(format!(
                "Cannot resolve DID: {e}"
            )))
        }
        Err(e) => Err(IdentityError::Upstream(format!(
            "Could not resolve DID {did}: {e}"
        ))),
    }
}

/// `did`'s identity; the handle its document claims is checked by resolving it back.
pub async fn identity_from_did(
    state: &AppState,
    did: &Did,
    fresh: bool,
) -> Result<IdentityInfo, IdentityError> {
    let doc = resolve_did(state, did, fresh).await?;
    let handle = match doc.handle() {
        Ok(claimed) => match resolve_handle(state, &claimed, fresh).await {
            Ok(back) if &back == did => claimed.as_str().to_ascii_lowercase(),
            Err(IdentityError::Store(e)) => return Err(e.into()),
            _ => HANDLE_INVALID.to_owned(),
        },
        Err(_) => HANDLE_INVALID.to_owned(),
    };
    Ok(IdentityInfo {
        did: did.clone(),
        handle,
        doc,
    })
}

/// `handle`'s identity: the DID it resolves to, whose document must claim the handle back.
pub async fn identity_from_handle(
    state: &AppState,
    handle: &Handle,
    fresh: bool,
) -> Result<IdentityInfo, IdentityError> {
    let did = resolve_handle(state, handle, fresh).await?;
    let doc = resolve_did(state, &did, fresh).await?;
    let claimed = doc.handle().ok();
    if !claimed
        .as_ref()
        .is_some_and(|c| c.as_str().eq_ignore_ascii_case(handle.as_str()))
    {
        return Err(IdentityError::HandleNotFound(format!(
            "DID document for {did} does not include the handle {}",
            handle.as_str().to_ascii_lowercase()
        )));
    }
    Ok(IdentityInfo {
        did,
        handle: handle.as_str().to_ascii_lowercase(),
        doc,
    })
}
