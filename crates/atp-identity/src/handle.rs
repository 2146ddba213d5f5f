//! Handle resolution, the parts that need no network, and the [`Resolver`] seam.
//!
//! Spec: <https://atproto.com/specs/handle>. A handle resolves to a DID in one of two ways:
//! - DNS: a TXT record on `_atproto.<handle>` with the value `did=<DID>` ([`parse_dns_txt`]);
//! - HTTPS: `GET https://<handle>/.well-known/atproto-did`, whose body is the DID
//!   ([`parse_well_known`]).
//!
//! Either way the result is only trusted once the DID's document claims the handle back
//! ([`verify_bidirectional`]); handles compare case-insensitively.
//!
//! Tricky bits:
//! - DNS answers may hold unrelated TXT records; only those starting with `did=` count, and there
//!   must be exactly one (two, even with the same DID, is a failure, as in the reference).
//! - A TXT record may arrive as several character-strings; join them before calling
//!   [`parse_dns_txt`].

use std::future::Future;

use atp_syntax::{Did, Handle, SyntaxError};

use crate::did_doc::{DidDocError, DidDocument};

/// Prefix of the DNS TXT value.
pub const DNS_TXT_PREFIX: &str = "did=";
/// Path of the HTTPS resolution endpoint.
pub const WELL_KNOWN_PATH: &str = "/.well-known/atproto-did";

/// Why a handle does not resolve, or does not verify.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// No TXT record starts with `did=`.
    #[error("no did= TXT record")]
    NoDidRecord,
    /// More than one TXT record starts with `did=`.
    #[error("{count} did= TXT records (exactly one allowed)")]
    MultipleDidRecords {
        /// How many there were.
        count: usize,
    },
    /// The record or body is not a valid DID.
    #[error("invalid DID {value:?}: {source}")]
    InvalidDid {
        /// The offending value (trimmed).
        value: String,
        /// Why it was refused.
        #[source]
        source: SyntaxError,
    },
    /// The DID document is for another DID than the handle resolved to.
    #[error("DID document does not match: {0}")]
    Document(#[from] DidDocError),
    /// The DID document does not claim this handle (first `at://` entry of `alsoKnownAs`).
    #[error("DID document does not claim handle {handle} (claims {claimed:?})")]
    NotClaimed {
        /// The handle being verified.
        handle: Handle,
        /// The handle the document claims, if any.
        claimed: Option<String>,
    },
}

/// The DNS name to query for TXT records: `_atproto.<handle>` (lower-cased).
pub fn dns_txt_name(handle: &Handle) -> String {
    format!("_atproto.{}", handle.as_str().to_ascii_lowercase())
}

/// The URL of the HTTPS resolution endpoint for `handle`.
pub fn well_known_url(handle: &Handle) -> String {
    format!(
        "https://{}{WELL_KNOWN_PATH}",
        handle.as_str().to_ascii_lowercase()
    )
}

/// The DID from the TXT records of `_atproto.<handle>`: exactly one must start with `did=`, and
/// the rest of it must be a valid DID. Other records are ignored.
pub fn parse_dns_txt<S: AsRef<str>>(records: &[S]) -> Result<Did, HandleError> {
    let mut values = records
        .iter()
        .filter_map(|r| r.as_ref().strip_prefix(DNS_TXT_PREFIX));
    let value = values.next().ok_or(HandleError::NoDidRecord)?;
    let extra = values.count();
    if extra > 0 {
        return Err(HandleError::MultipleDidRecords { count: extra + 1 });
    }
    parse_did(value)
}

/// The DID from a `/.well-known/atproto-did` body: surrounding whitespace (a trailing newline) is
/// ignored; anything else must be exactly one valid DID.
pub fn parse_well_known(body: &str) -> Result<Did, HandleError> {
    parse_did(body.trim())
}

fn parse_did(value: &str) -> Result<Did, HandleError> {
    Did::try_from(value).map_err(|source| HandleError::InvalidDid {
        value: value.to_owned(),
        source,
    })
}

/// Checks the reverse direction: `doc` is the document of `did` (which `handle` resolved to), and
/// it claims `handle` (case-insensitive).
pub fn verify_bidirectional(
    handle: &Handle,
    did: &Did,
    doc: &DidDocument,
) -> Result<(), HandleError> {
    doc.ensure_id(did)?;
    let claimed = doc.handle().ok();
    if claimed
        .as_ref()
        .is_some_and(|c| c.as_str().eq_ignore_ascii_case(handle.as_str()))
    {
        Ok(())
    } else {
        Err(HandleError::NotClaimed {
            handle: handle.clone(),
            claimed: claimed.map(String::from),
        })
    }
}

/// Why resolution failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The DID method is not supported (atproto blesses `plc` and `web`).
    #[error("unsupported DID method {method:?}")]
    UnsupportedMethod {
        /// The method.
        method: String,
    },
    /// The DID's method-specific part cannot be resolved (a `did:web` with a path, or with a
    /// port outside dev mode).
    #[error("cannot resolve {did}: {reason}")]
    UnsupportedDid {
        /// The DID.
        did: Did,
        /// Why.
        reason: String,
    },
    /// The DID has no document (404, or tombstoned).
    #[error("DID not found: {did}")]
    DidNotFound {
        /// The DID.
        did: Did,
    },
    /// Neither DNS nor HTTPS yields a DID for the handle.
    #[error("handle does not resolve: {handle}")]
    HandleNotFound {
        /// The handle.
        handle: Handle,
    },
    /// The document could not be used.
    #[error(transparent)]
    Document(#[from] DidDocError),
    /// A DNS or HTTPS answer was malformed, or the bidirectional check failed.
    #[error(transparent)]
    Handle(#[from] HandleError),
    /// The network or the remote server failed.
    #[error("resolution failed: {reason}")]
    Unavailable {
        /// A human-readable reason.
        reason: String,
    },
}

/// DID and handle resolution: the seam between identity logic and the network.
///
/// The `http` feature provides the real implementation; tests use in-memory ones. Implementations
/// return the document of exactly the DID asked for (callers may still [`DidDocument::ensure_id`]).
pub trait Resolver: Send + Sync {
    /// Fetches the DID document of `did`.
    fn resolve_did(
        &self,
        did: &Did,
    ) -> impl Future<Output = Result<DidDocument, ResolveError>> + Send;

    /// Resolves `handle` to a DID (DNS, then HTTPS), *without* the bidirectional check.
    fn resolve_handle(
        &self,
        handle: &Handle,
    ) -> impl Future<Output = Result<Did, ResolveError>> + Send;
}

/// Resolves `handle` to a DID and checks that the DID's document claims it back.
pub async fn resolve_verified<R: Resolver + ?Sized>(
    resolver: &R,
    handle: &Handle,
) -> Result<(Did, DidDocument), ResolveError> {
    let did = resolver.resolve_handle(handle).await?;
    let doc = resolver.resolve_did(&did).await?;
    verify_bidirectional(handle, &did, &doc)?;
    Ok((did, doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

    fn doc(aka: &[&str]) -> DidDocument {
        DidDocument::from_json(serde_json::json!({"id": DID, "alsoKnownAs": aka})).unwrap()
    }

    #[test]
    fn dns_txt() {
        let did: Did = DID.parse().unwrap();
        assert_eq!(parse_dns_txt(&[format!("did={DID}")]).unwrap(), did);
        assert_eq!(
            parse_dns_txt(&["v=spf1 -all".to_owned(), format!("did={DID}")]).unwrap(),
            did
        );
        assert_eq!(parse_dns_txt::<String>(&[]), Err(HandleError::NoDidRecord));
        assert_eq!(parse_dns_txt(&["v=spf1"]), Err(HandleError::NoDidRecord));
        let twice = [format!("did={DID}"), format!("did={DID}")];
        assert_eq!(
            parse_dns_txt(&twice),
            Err(HandleError::MultipleDidRecords { count: 2 })
        );
        assert!(matches!(
            parse_dns_txt(&["did=not a did"]),
            Err(HandleError::InvalidDid { .. })
        ));
        assert!(matches!(
            parse_dns_txt(&[format!("DID={DID}")]),
            Err(HandleError::NoDidRecord)
        ));
    }

    #[test]
    fn well_known_body() {
        let did: Did = DID.parse().unwrap();
        assert_eq!(parse_well_known(&format!("{DID}\n")).unwrap(), did);
        assert_eq!(parse_well_known(&format!("  {DID}  ")).unwrap(), did);
        assert!(parse_well_known("").is_err());
        assert!(parse_well_known(&format!("{DID}\n{DID}")).is_err());
        assert!(parse_well_known("<html>").is_err());
    }

    #[test]
    fn bidirectional_is_case_insensitive() {
        let did: Did = DID.parse().unwrap();
        let handle: Handle = "Alice.Example.COM".parse().unwrap();
        assert!(verify_bidirectional(&handle, &did, &doc(&["at://alice.example.com"])).is_ok());
        let other = doc(&["at://bob.example.com", "at://alice.example.com"]);
        assert!(matches!(
            verify_bidirectional(&handle, &did, &other),
            Err(HandleError::NotClaimed {
                claimed: Some(_),
                ..
            })
        ));
        assert!(matches!(
            verify_bidirectional(&handle, &did, &doc(&[])),
            Err(HandleError::NotClaimed { claimed: None, .. })
        ));
        let wrong_did: Did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap();
        assert!(matches!(
            verify_bidirectional(&handle, &wrong_did, &doc(&["at://alice.example.com"])),
            Err(HandleError::Document(DidDocError::DidMismatch { .. }))
        ));
    }

    #[test]
    fn names() {
        let handle: Handle = "Alice.Example.com".parse().unwrap();
        assert_eq!(dns_txt_name(&handle), "_atproto.alice.example.com");
        assert_eq!(
            well_known_url(&handle),
            "https://alice.example.com/.well-known/atproto-did"
        );
    }

    struct Fixed(DidDocument);

    impl Resolver for Fixed {
        async fn resolve_did(&self, did: &Did) -> Result<DidDocument, ResolveError> {
            if did == &self.0.id {
                Ok(self.0.clone())
            } else {
                Err(ResolveError::DidNotFound { did: did.clone() })
            }
        }

        async fn resolve_handle(&self, _handle: &Handle) -> Result<Did, ResolveError> {
            Ok(self.0.id.clone())
        }
    }

    fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    #[test]
    fn resolve_verified_checks_both_ways() {
        let resolver = Fixed(doc(&["at://alice.example.com"]));
        let good: Handle = "alice.example.com".parse().unwrap();
        let (did, _) = block_on(resolve_verified(&resolver, &good)).unwrap();
        assert_eq!(did.as_str(), DID);
        let bad: Handle = "mallory.example.com".parse().unwrap();
        assert!(matches!(
            block_on(resolve_verified(&resolver, &bad)),
            Err(ResolveError::Handle(HandleError::NotClaimed { .. }))
        ));
    }
}
