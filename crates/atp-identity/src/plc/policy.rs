//! Limits a directory enforces on *new* operations, beyond what makes a log valid.
//!
//! Our policy, and where each rule comes from:
//! - the DAG-CBOR of the signed operation is at most [`MAX_OP_BYTES`] (7500, the current spec);
//! - no legacy `create` operations (the spec: "do not use the deprecated/legacy operation format
//!   for new DID creations"; the reference directory only accepts `plc_operation` and
//!   `plc_tombstone`);
//! - 1 to [`MAX_ROTATION_KEYS`] rotation keys, each a k256/p256 `did:key`, **no duplicates** (the
//!   spec says "at least 1 key and at most 5 keys, with no duplication"; the reference directory
//!   only checks the maximum, which is how `log_duplicate_rotation_keys` and
//!   `log_empty_rotation_keys` got into real logs, so those still audit as valid history). An
//!   empty list would freeze the DID forever; deactivation is what tombstones are for;
//! - at most [`MAX_VERIFICATION_METHODS`] verification methods (spec v0.2), names of at most
//!   [`MAX_ID_LEN`] characters without `#` (the spec: "should not include a `#` prefix"), values
//!   syntactically valid `did:key`s of any key type (spec v0.2);
//! - at most [`MAX_ALSO_KNOWN_AS`] `alsoKnownAs` entries of at most [`MAX_ALSO_KNOWN_AS_LEN`]
//!   characters, no duplicates; at most [`MAX_SERVICES`] services with names of at most
//!   [`MAX_ID_LEN`] characters (no `#`), types of at most [`MAX_SERVICE_TYPE_LEN`] and endpoints
//!   of at most [`MAX_SERVICE_ENDPOINT_LEN`] (all as the reference directory's `constraints.ts`).
//!
//! Tombstones are only size-checked.

use std::collections::BTreeSet;

use atp_crypto::{KeyError, PublicKey};

use super::operation::{SignedOp, UnsignedOp};

/// Largest accepted DAG-CBOR encoding of a signed operation, in bytes.
pub const MAX_OP_BYTES: usize = 7500;
/// Most rotation keys an operation may list.
pub const MAX_ROTATION_KEYS: usize = 5;
/// Most verification methods an operation may declare.
pub const MAX_VERIFICATION_METHODS: usize = 10;
/// Most `alsoKnownAs` entries.
pub const MAX_ALSO_KNOWN_AS: usize = 10;
/// Longest `alsoKnownAs` entry, in characters.
pub const MAX_ALSO_KNOWN_AS_LEN: usize = 256;
/// Most services.
pub const MAX_SERVICES: usize = 10;
/// Longest verification-method or service name, in characters.
pub const MAX_ID_LEN: usize = 32;
/// Longest service type, in characters.
pub const MAX_SERVICE_TYPE_LEN: usize = 256;
/// Longest service endpoint, in characters.
pub const MAX_SERVICE_ENDPOINT_LEN: usize = 512;

/// A limit a new operation breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The signed operation encodes to more than [`MAX_OP_BYTES`].
    #[error("operation is {size} bytes of DAG-CBOR (max {MAX_OP_BYTES})")]
    TooLarge {
        /// Encoded size.
        size: usize,
    },
    /// New operations may not use the legacy `create` format.
    #[error("the legacy create format is not accepted for new operations")]
    LegacyCreate,
    /// The operation lists no rotation keys.
    #[error("at least one rotation key is required")]
    NoRotationKeys,
    /// More than [`MAX_ROTATION_KEYS`] rotation keys.
    #[error("{count} rotation keys (max {MAX_ROTATION_KEYS})")]
    TooManyRotationKeys {
        /// How many were given.
        count: usize,
    },
    /// A rotation key is listed twice.
    #[error("duplicate rotation key {key}")]
    DuplicateRotationKey {
        /// The key.
        key: String,
    },
    /// A rotation key is not a k256/p256 `did:key`.
    #[error("invalid rotation key {key:?}: {source}")]
    InvalidRotationKey {
        /// The key as written.
        key: String,
        /// Why it was refused.
        #[source]
        source: KeyError,
    },
    /// More than [`MAX_VERIFICATION_METHODS`] verification methods.
    #[error("{count} verification methods (max {MAX_VERIFICATION_METHODS})")]
    TooManyVerificationMethods {
        /// How many were given.
        count: usize,
    },
    /// A verification-method or service name is too long or contains `#`.
    #[error("invalid name {name:?} (at most {MAX_ID_LEN} characters, no '#')")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A verification method value is not a syntactically valid `did:key`.
    #[error("verification method {name:?} is not a did:key")]
    InvalidVerificationMethod {
        /// The method's name.
        name: String,
    },
    /// More than [`MAX_ALSO_KNOWN_AS`] entries.
    #[error("{count} alsoKnownAs entries (max {MAX_ALSO_KNOWN_AS})")]
    TooManyAlsoKnownAs {
        /// How many were given.
        count: usize,
    },
    /// An `alsoKnownAs` entry is too long.
    #[error("alsoKnownAs entry longer than {MAX_ALSO_KNOWN_AS_LEN} characters")]
    AlsoKnownAsTooLong,
    /// An `alsoKnownAs` entry appears twice.
    #[error("duplicate alsoKnownAs entry {entry:?}")]
    DuplicateAlsoKnownAs {
        /// The entry.
        entry: String,
    },
    /// More than [`MAX_SERVICES`] services.
    #[error("{count} services (max {MAX_SERVICES})")]
    TooManyServices {
        /// How many were given.
        count: usize,
    },
    /// A service type or endpoint is too long.
    #[error("service {name:?} has a type or endpoint that is too long")]
    ServiceTooLong {
        /// The service's name.
        name: String,
    },
}

/// Checks a proposed operation against the limits above.
pub fn check_new_op(op: &SignedOp) -> Result<(), PolicyError> {
    let size = op.to_cbor().len();
    if size > MAX_OP_BYTES {
        return Err(PolicyError::TooLarge { size });
    }
    let plc = match &op.op {
        UnsignedOp::Operation(plc) => plc,
        UnsignedOp::Tombstone { .. } => return Ok(()),
        UnsignedOp::LegacyCreate(_) => return Err(PolicyError::LegacyCreate),
    };
    check_rotation_keys(&plc.rotation_keys)?;
    let count = plc.verification_methods.len();
    if count > MAX_VERIFICATION_METHODS {
        return Err(PolicyError::TooManyVerificationMethods { count });
    }
    for (name, key) in &plc.verification_methods {
        check_name(name)?;
        if !is_did_key_syntax(key) {
            return Err(PolicyError::InvalidVerificationMethod { name: name.clone() });
        }
    }
    check_also_known_as(&plc.also_known_as)?;
    let count = plc.services.len();
    if count > MAX_SERVICES {
        return Err(PolicyError::TooManyServices { count });
    }
    for (name, service) in &plc.services {
        check_name(name)?;
        if char_len(&service.service_type) > MAX_SERVICE_TYPE_LEN
            || char_len(&service.endpoint) > MAX_SERVICE_ENDPOINT_LEN
        {
            return Err(PolicyError::ServiceTooLong { name: name.clone() });
        }
    }
    Ok(())
}

fn check_rotation_keys(keys: &[String]) -> Result<(), PolicyError> {
    if keys.is_empty() {
        return Err(PolicyError::NoRotationKeys);
    }
    if keys.len() > MAX_ROTATION_KEYS {
        return Err(PolicyError::TooManyRotationKeys { count: keys.len() });
    }
    let mut seen = BTreeSet::new();
    for key in keys {
        PublicKey::from_did_key(key).map_err(|source| PolicyError::InvalidRotationKey {
            key: key.clone(),
            source,
        })?;
        if !seen.insert(key.as_str()) {
            return Err(PolicyError::DuplicateRotationKey { key: key.clone() });
        }
    }
    Ok(())
}

fn check_also_known_as(entries: &[String]) -> Result<(), PolicyError> {
    if entries.len() > MAX_ALSO_KNOWN_AS {
        return Err(PolicyError::TooManyAlsoKnownAs {
            count: entries.len(),
        });
    }
    let mut seen = BTreeSet::new();
    for entry in entries {
        if char_len(entry) > MAX_ALSO_KNOWN_AS_LEN {
            return Err(PolicyError::AlsoKnownAsTooLong);
        }
        if !seen.insert(entry.as_str()) {
            return Err(PolicyError::DuplicateAlsoKnownAs {
                entry: entry.clone(),
            });
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), PolicyError> {
    if name.is_empty() || char_len(name) > MAX_ID_LEN || name.contains('#') {
        return Err(PolicyError::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Lengths as the reference counts them: JavaScript string length, in UTF-16 code units.
fn char_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// `did:key:z` followed by base58btc characters: the syntax any `did:key` has, whatever its key
/// type (PLC v0.2 allows any key type in `verificationMethods`).
pub fn is_did_key_syntax(s: &str) -> bool {
    const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    match s.strip_prefix("did:key:z") {
        Some(rest) => !rest.is_empty() && rest.bytes().all(|b| BASE58.contains(&b)),
        None => false,
    }
}
