//! PLC operations: the three shapes, their JSON and DAG-CBOR forms, signing and verification,
//! CIDs and DID derivation.

use std::collections::BTreeMap;

use atp_crypto::{KeyError, PublicKey, SignError, Signer, VerifyError};
use atp_data::{Cid, Value};
use atp_syntax::{Did, Handle};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

use crate::b64url;
use crate::did_doc::{ATPROTO_KEY_ID, ATPROTO_PDS_ID, ATPROTO_PDS_TYPE};

/// `type` of a regular operation.
pub const TYPE_OPERATION: &str = "plc_operation";
/// `type` of a tombstone.
pub const TYPE_TOMBSTONE: &str = "plc_tombstone";
/// `type` of the legacy genesis operation.
pub const TYPE_LEGACY_CREATE: &str = "create";

/// A `services` entry of a PLC operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlcService {
    /// Service type, e.g. `AtprotoPersonalDataServer`.
    #[serde(rename = "type")]
    pub service_type: String,
    /// Service URL.
    pub endpoint: String,
}

impl PlcService {
    fn to_value(&self) -> Value {
        Value::Map(BTreeMap::from([
            ("type".to_owned(), Value::from(self.service_type.as_str())),
            ("endpoint".to_owned(), Value::from(self.endpoint.as_str())),
        ]))
    }
}

/// The fields of a regular `plc_operation` (all but `type` and `sig`).
///
/// Keys are `did:key` strings and `prev` a CID string, kept exactly as written: they are signed as
/// text, so re-spelling them would break the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlcOp {
    /// Keys allowed to sign the next operation, most powerful first.
    pub rotation_keys: Vec<String>,
    /// Named signing keys (`atproto` for the repo signing key), `did:key` strings.
    pub verification_methods: BTreeMap<String, String>,
    /// URIs naming the subject; the handle is an `at://` entry.
    pub also_known_as: Vec<String>,
    /// Named service endpoints (`atproto_pds` for the PDS).
    pub services: BTreeMap<String, PlcService>,
    /// CID string of the previous operation; `None` for a genesis operation.
    pub prev: Option<String>,
}

/// The deprecated genesis format (`type: "create"`), still the first entry of old logs.
///
/// Its `prev` is always `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyCreate {
    /// The repo signing key, also the second rotation key.
    pub signing_key: String,
    /// The first (most powerful) rotation key.
    pub recovery_key: String,
    /// Bare handle, without `at://`.
    pub handle: String,
    /// PDS URL (an `https://` prefix is assumed when missing).
    pub service: String,
}

/// An operation without its signature: what gets signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsignedOp {
    /// A regular creation or update.
    Operation(PlcOp),
    /// Permanent deactivation of the DID; `prev` is the CID string of the operation it follows.
    Tombstone {
        /// CID string of the previous operation.
        prev: String,
    },
    /// The legacy genesis format.
    LegacyCreate(LegacyCreate),
}

/// A signed operation, as submitted to and served by a PLC directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireOp", into = "WireOp")]
pub struct SignedOp {
    /// The signed content.
    pub op: UnsignedOp,
    /// base64url (unpadded) of the 64-byte low-S `r ‖ s` signature over DAG-CBOR of `op`.
    pub sig: String,
}

/// Why an operation could not be read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// Not a well-formed operation (unknown `type`, missing or extra fields, wrong types).
    #[error("malformed PLC operation: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// The operation has a `prev`, so it derives no DID.
    #[error("not a genesis operation")]
    NotGenesis,
    /// `prev` is not a base32 CIDv1 string.
    #[error("prev {prev:?} is not a CID")]
    InvalidPrev {
        /// The value found.
        prev: String,
    },
}

/// Why an operation's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// `sig` is not canonical unpadded base64url (padding, line breaks, non-zero trailing bits).
    #[error("signature is not canonical unpadded base64url")]
    Base64,
    /// `sig` decodes to something other than 64 bytes (a DER signature lands here).
    #[error("signature must be 64 bytes r||s, got {len}")]
    Length {
        /// Number of bytes decoded.
        len: usize,
    },
    /// There were no keys to check against (e.g. the previous operation listed none).
    #[error("no rotation keys to verify against")]
    NoKeys,
    /// A rotation key is not a k256/p256 `did:key`.
    #[error("rotation key {index} ({key:?}) is invalid: {source}")]
    InvalidKey {
        /// Position in the list of allowed keys.
        index: usize,
        /// The key as written.
        key: String,
        /// Why it was refused.
        #[source]
        source: KeyError,
    },
    /// The signature is high-S (malleable), which PLC forbids.
    #[error("signature is high-S")]
    HighS,
    /// No allowed key verifies the signature.
    #[error("no allowed rotation key verifies the signature")]
    NoMatchingKey,
}

/// `at://` prefix as the reference adds it to a legacy handle (it also strips one `http://` and one
/// `https://`, wherever they are).
pub fn ensure_atproto_prefix(s: &str) -> String {
    if s.starts_with("at://") {
        return s.to_owned();
    }
    let stripped = s.replacen("http://", "", 1).replacen("https://", "", 1);
    format!("at://{stripped}")
}

/// `https://` prefix unless the string already starts with `http://` or `https://`.
pub fn ensure_http_prefix(s: &str) -> String {
    if s.starts_with("http://") || s.starts_with("https://") {
        s.to_owned()
    } else {
        format!("https://{s}")
    }
}

impl PlcOp {
    /// An operation with the standard atproto content: the `atproto` signing key, one handle, the
    /// `atproto_pds` service. `prev: None` makes it a genesis operation.
    pub fn atproto(
        signing_key: &PublicKey,
        handle: &Handle,
        pds_endpoint: &str,
        rotation_keys: Vec<String>,
        prev: Option<&Cid>,
    ) -> PlcOp {
        let mut op = PlcOp {
            rotation_keys,
            verification_methods: BTreeMap::new(),
            also_known_as: Vec::new(),
            services: BTreeMap::new(),
            prev: prev.map(Cid::to_string),
        };
        op.set_atproto_key(signing_key);
        op.set_handle(handle);
        op.set_pds_endpoint(pds_endpoint);
        op
    }

    /// An update carrying `data` over unchanged, to follow the operation `prev`.
    pub fn update_of(data: &super::PlcData, prev: &Cid) -> PlcOp {
        PlcOp {
            rotation_keys: data.rotation_keys.clone(),
            verification_methods: data.verification_methods.clone(),
            also_known_as: data.also_known_as.clone(),
            services: data.services.clone(),
            prev: Some(prev.to_string()),
        }
    }

    /// Sets the `atproto` verification method.
    pub fn set_atproto_key(&mut self, key: &PublicKey) {
        self.verification_methods
            .insert(ATPROTO_KEY_ID.to_owned(), key.did_key());
    }

    /// Replaces the first `at://` entry of `alsoKnownAs` with `at://<handle>`, or puts it first.
    pub fn set_handle(&mut self, handle: &Handle) {
        let uri = format!("at://{handle}");
        match self
            .also_known_as
            .iter_mut()
            .find(|a| a.starts_with("at://"))
        {
            Some(slot) => *slot = uri,
            None => self.also_known_as.insert(0, uri),
        }
    }

    /// Sets the `atproto_pds` service (adding `https://` when no scheme is given).
    pub fn set_pds_endpoint(&mut self, endpoint: &str) {
        self.services.insert(
            ATPROTO_PDS_ID.to_owned(),
            PlcService {
                service_type: ATPROTO_PDS_TYPE.to_owned(),
                endpoint: ensure_http_prefix(endpoint),
            },
        );
    }

    fn to_value(&self) -> Value {
        let strings =
            |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
        let methods = self
            .verification_methods
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        let services = self
            .services
            .iter()
            .map(|(k, v)| (k.clone(), v.to_value()))
            .collect();
        Value::Map(BTreeMap::from([
            ("type".to_owned(), Value::from(TYPE_OPERATION)),
            ("rotationKeys".to_owned(), strings(&self.rotation_keys)),
            ("verificationMethods".to_owned(), Value::Map(methods)),
            ("alsoKnownAs".to_owned(), strings(&self.also_known_as)),
            ("services".to_owned(), Value::Map(services)),
            ("prev".to_owned(), nullable(self.prev.as_deref())),
        ]))
    }
}

fn nullable(s: Option<&str>) -> Value {
    s.map_or(Value::Null, Value::from)
}

impl LegacyCreate {
    /// The modern form of this operation, as the reference's `normalizeOp` builds it:
    /// rotation keys `[recoveryKey, signingKey]`, `atproto` = signing key, `at://` handle,
    /// `atproto_pds` service.
    pub fn normalize(&self) -> PlcOp {
        PlcOp {
            rotation_keys: vec![self.recovery_key.clone(), self.signing_key.clone()],
            verification_methods: BTreeMap::from([(
                ATPROTO_KEY_ID.to_owned(),
                self.signing_key.clone(),
            )]),
            also_known_as: vec![ensure_atproto_prefix(&self.handle)],
            services: BTreeMap::from([(
                ATPROTO_PDS_ID.to_owned(),
                PlcService {
                    service_type: ATPROTO_PDS_TYPE.to_owned(),
                    endpoint: ensure_http_prefix(&self.service),
                },
            )]),
            prev: None,
        }
    }

    fn to_value(&self) -> Value {
        Value::Map(BTreeMap::from([
            ("type".to_owned(), Value::from(TYPE_LEGACY_CREATE)),
            (
                "signingKey".to_owned(),
                Value::from(self.signing_key.as_str()),
            ),
            (
                "recoveryKey".to_owned(),
                Value::from(self.recovery_key.as_str()),
            ),
            ("handle".to_owned(), Value::from(self.handle.as_str())),
            ("service".to_owned(), Value::from(self.service.as_str())),
            ("prev".to_owned(), Value::Null),
        ]))
    }
}

impl UnsignedOp {
    /// A tombstone following the operation `prev`.
    pub fn tombstone(prev: &Cid) -> UnsignedOp {
        UnsignedOp::Tombstone {
            prev: prev.to_string(),
        }
    }

    /// The `prev` CID string; `None` for a genesis operation.
    pub fn prev(&self) -> Option<&str> {
        match self {
            UnsignedOp::Operation(op) => op.prev.as_deref(),
            UnsignedOp::Tombstone { prev } => Some(prev),
            UnsignedOp::LegacyCreate(_) => None,
        }
    }

    /// `prev` parsed as a CID; `Ok(None)` for a genesis operation.
    pub fn prev_cid(&self) -> Result<Option<Cid>, OpError> {
        self.prev()
            .map(|p| {
                atp_data::cid::parse(p).map_err(|_| OpError::InvalidPrev { prev: p.to_owned() })
            })
            .transpose()
    }

    /// Whether this is a genesis (creation) operation.
    pub fn is_genesis(&self) -> bool {
        self.prev().is_none()
    }

    /// Whether this is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        matches!(self, UnsignedOp::Tombstone { .. })
    }

    /// The rotation keys this operation grants, most powerful first: `rotationKeys`,
    /// `[recoveryKey, signingKey]` for a legacy create, none for a tombstone.
    pub fn rotation_keys(&self) -> Vec<String> {
        match self {
            UnsignedOp::Operation(op) => op.rotation_keys.clone(),
            UnsignedOp::Tombstone { .. } => Vec::new(),
            UnsignedOp::LegacyCreate(c) => vec![c.recovery_key.clone(), c.signing_key.clone()],
        }
    }

    /// The operation in modern form (legacy creates converted); `None` for a tombstone.
    pub fn normalize(&self) -> Option<PlcOp> {
        match self {
            UnsignedOp::Operation(op) => Some(op.clone()),
            UnsignedOp::Tombstone { .. } => None,
            UnsignedOp::LegacyCreate(c) => Some(c.normalize()),
        }
    }

    /// The data-model value (no `sig`); its DAG-CBOR is what gets signed.
    pub fn to_value(&self) -> Value {
        match self {
            UnsignedOp::Operation(op) => op.to_value(),
            UnsignedOp::Tombstone { prev } => Value::Map(BTreeMap::from([
                ("type".to_owned(), Value::from(TYPE_TOMBSTONE)),
                ("prev".to_owned(), Value::from(prev.as_str())),
            ])),
            UnsignedOp::LegacyCreate(c) => c.to_value(),
        }
    }

    /// The bytes that get signed.
    pub fn to_cbor(&self) -> Vec<u8> {
        atp_data::cbor::to_vec(&self.to_value())
    }

    /// Signs with a rotation key.
    pub fn sign<S: Signer + ?Sized>(self, signer: &S) -> Result<SignedOp, SignError> {
        let sig = signer.sign(&self.to_cbor())?;
        Ok(SignedOp {
            op: self,
            sig: b64url::encode(&sig),
        })
    }
}

impl SignedOp {
    /// Parses the JSON form.
    pub fn from_json(json: serde_json::Value) -> Result<SignedOp, OpError> {
        serde_json::from_value(json).map_err(|e| OpError::Malformed {
            reason: e.to_string(),
        })
    }

    /// The JSON form.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The data-model value, `sig` included.
    pub fn to_value(&self) -> Value {
        let mut value = self.op.to_value();
        if let Value::Map(map) = &mut value {
            map.insert("sig".to_owned(), Value::from(self.sig.as_str()));
        }
        value
    }

    /// DAG-CBOR of the signed operation.
    pub fn to_cbor(&self) -> Vec<u8> {
        atp_data::cbor::to_vec(&self.to_value())
    }

    /// The operation's CID (dag-cbor, sha2-256 of the signed operation): what `prev` points at.
    pub fn cid(&self) -> Cid {
        atp_data::cid::cid_for_cbor(&self.to_cbor())
    }

    /// The DID a genesis operation creates: `did:plc:` + the first 24 characters of
    /// base32-lower(sha256(DAG-CBOR of the signed operation)).
    pub fn did(&self) -> Result<Did, OpError> {
        if !self.op.is_genesis() {
            return Err(OpError::NotGenesis);
        }
        let digest = Sha256::digest(self.to_cbor());
        let encoded = data_encoding::BASE32_NOPAD
            .encode(&digest)
            .to_ascii_lowercase();
        let id = encoded.get(..24).unwrap_or(&encoded);
        Did::try_from(format!("did:plc:{id}")).map_err(|e| OpError::Malformed {
            reason: e.to_string(),
        })
    }

    /// The signature bytes, decoded strictly: canonical unpadded base64url of exactly 64 bytes.
    pub fn signature_bytes(&self) -> Result<[u8; 64], SignatureError> {
        let bytes = b64url::decode_strict(&self.sig).map_err(|_| SignatureError::Base64)?;
        <[u8; 64]>::try_from(bytes.as_slice())
            .map_err(|_| SignatureError::Length { len: bytes.len() })
    }

    /// Verifies the signature against `keys` (`did:key` strings) in order, strictly (low-S only),
    /// and returns the index of the first key that verifies.
    ///
    /// A key that does not parse is an error when reached, as in the reference implementation.
    pub fn verify(&self, keys: &[String]) -> Result<usize, SignatureError> {
        let sig = self.signature_bytes()?;
        if keys.is_empty() {
            return Err(SignatureError::NoKeys);
        }
        let msg = self.op.to_cbor();
        for (index, key) in keys.iter().enumerate() {
            let public =
                PublicKey::from_did_key(key).map_err(|source| SignatureError::InvalidKey {
                    index,
                    key: key.clone(),
                    source,
                })?;
            match public.verify(&msg, &sig) {
                Ok(()) => return Ok(index),
                Err(VerifyError::HighS { .. }) => return Err(SignatureError::HighS),
                Err(_) => {}
            }
        }
        Err(SignatureError::NoMatchingKey)
    }
}

/// The JSON shape shared by all operation kinds, tagged by `type`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum WireOp {
    #[serde(rename = "plc_operation", rename_all = "camelCase")]
    Operation {
        rotation_keys: Vec<String>,
        verification_methods: BTreeMap<String, String>,
        also_known_as: Vec<String>,
        services: BTreeMap<String, PlcService>,
        #[serde(deserialize_with = "present_nullable")]
        prev: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sig: Option<String>,
    },
    #[serde(rename = "plc_tombstone")]
    Tombstone {
        prev: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sig: Option<String>,
    },
    #[serde(rename = "create", rename_all = "camelCase")]
    LegacyCreate {
        signing_key: String,
        recovery_key: String,
        handle: String,
        service: String,
        #[serde(deserialize_with = "present_nullable")]
        prev: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sig: Option<String>,
    },
}

/// `prev` must be present, even when `null`.
fn present_nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

impl WireOp {
    fn split(self) -> Result<(UnsignedOp, Option<String>), OpError> {
        Ok(match self {
            WireOp::Operation {
                rotation_keys,
                verification_methods,
                also_known_as,
                services,
                prev,
                sig,
            } => {
                let op = PlcOp {
                    rotation_keys,
                    verification_methods,
                    also_known_as,
                    services,
                    prev,
                };
                (UnsignedOp::Operation(op), sig)
            }
            WireOp::Tombstone { prev, sig } => (UnsignedOp::Tombstone { prev }, sig),
            WireOp::LegacyCreate {
                signing_key,
                recovery_key,
                handle,
                service,
                prev,
                sig,
            } => {
                if prev.is_some() {
                    return Err(OpError::Malformed {
                        reason: "a legacy create operation must have a null prev".to_owned(),
                    });
                }
                let create = LegacyCreate {
                    signing_key,
                    recovery_key,
                    handle,
                    service,
                };
                (UnsignedOp::LegacyCreate(create), sig)
            }
        })
    }

    fn join(op: UnsignedOp, sig: Option<String>) -> WireOp {
        match op {
            UnsignedOp::Operation(op) => WireOp::Operation {
                rotation_keys: op.rotation_keys,
                verification_methods: op.verification_methods,
                also_known_as: op.also_known_as,
                services: op.services,
                prev: op.prev,
                sig,
            },
            UnsignedOp::Tombstone { prev } => WireOp::Tombstone { prev, sig },
            UnsignedOp::LegacyCreate(c) => WireOp::LegacyCreate {
                signing_key: c.signing_key,
                recovery_key: c.recovery_key,
                handle: c.handle,
                service: c.service,
                prev: None,
                sig,
            },
        }
    }
}

impl TryFrom<WireOp> for SignedOp {
    type Error = OpError;

    fn try_from(wire: WireOp) -> Result<SignedOp, OpError> {
        match wire.split()? {
            (op, Some(sig)) => Ok(SignedOp { op, sig }),
            (_, None) => Err(OpError::Malformed {
                reason: "missing sig".to_owned(),
            }),
        }
    }
}

impl From<SignedOp> for WireOp {
    fn from(op: SignedOp) -> WireOp {
        WireOp::join(op.op, Some(op.sig))
    }
}

impl Serialize for UnsignedOp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOp::join(self.clone(), None).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for UnsignedOp {
    /// Refuses a `sig` field: an unsigned operation has none.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<UnsignedOp, D::Error> {
        match WireOp::deserialize(deserializer)?.split() {
            Ok((op, None)) => Ok(op),
            Ok((_, Some(_))) => Err(serde::de::Error::custom(
                "unexpected sig on an unsigned operation",
            )),
            Err(e) => Err(serde::de::Error::custom(e)),
        }
    }
}

#[cfg(test)]
mod tests;
