//! DID documents: parsing, the atproto data inside them, and rendering one from PLC data.
//!
//! atproto reads three things from a DID document, whatever the DID method
//! (<https://atproto.com/specs/did>):
//! - the account signing key: the verification method whose `id` is `#atproto` (relative) or
//!   `<did>#atproto` (absolute);
//! - the PDS endpoint: the service with id `#atproto_pds` and type `AtprotoPersonalDataServer`,
//!   an `http(s)` URL;
//! - the handle: the first `alsoKnownAs` entry starting with `at://`. It is only a claim until
//!   checked in the other direction (see [`crate::handle`]).
//!
//! Parsing is as lenient as the reference implementation: unknown fields are kept (and written
//! back out), missing or `null` arrays are empty, and a broken entry that atproto does not look at
//! is never an error. Only `id` (a DID) and the shape of `verificationMethod` / `service` entries
//! are required. Each extraction has its own typed error, so "this document has no atproto key"
//! ([`DidDocError::KeyNotDeclared`]) is distinguishable from "the key is garbage".
//!
//! Tricky bits:
//! - Entry lookup takes the *first* entry whose id matches, then checks its type; a later entry
//!   with the same id is never consulted (as in the reference).
//! - Keys come in two forms: `Multikey` (`z` + base58btc(multicodec ‖ compressed point)), and the
//!   legacy `EcdsaSecp256k1VerificationKey2019` / `EcdsaSecp256r1VerificationKey2019` (`z` +
//!   base58btc of the raw point, compressed or uncompressed, no multicodec).

use std::collections::BTreeMap;

use atp_crypto::{Curve, KeyError, PublicKey};
use atp_syntax::{Did, Handle, SyntaxError};
use serde::{Deserialize, Deserializer, Serialize};

use crate::plc::PlcData;

/// Fragment of the atproto signing key's verification method.
pub const ATPROTO_KEY_ID: &str = "atproto";
/// Fragment of the PDS service entry.
pub const ATPROTO_PDS_ID: &str = "atproto_pds";
/// Service type of the PDS service entry.
pub const ATPROTO_PDS_TYPE: &str = "AtprotoPersonalDataServer";
/// `type` of a current-style verification method.
pub const MULTIKEY_TYPE: &str = "Multikey";

/// The DID Core JSON-LD context.
pub const CONTEXT_DID_V1: &str = "https://www.w3.org/ns/did/v1";
/// The Multikey JSON-LD context.
pub const CONTEXT_MULTIKEY_V1: &str = "https://w3id.org/security/multikey/v1";
/// The context PLC adds for a secp256k1 key.
pub const CONTEXT_SECP256K1_2019: &str = "https://w3id.org/security/suites/secp256k1-2019/v1";
/// The context PLC adds for a P-256 key.
pub const CONTEXT_ECDSA_2019: &str = "https://w3id.org/security/suites/ecdsa-2019/v1";

/// Why a DID document, or a piece of atproto data from it, was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DidDocError {
    /// Not JSON, not an object, no valid `id`, or a `verificationMethod` / `service` entry without
    /// its string fields.
    #[error("malformed DID document: {reason}")]
    Malformed {
        /// The JSON parser's complaint.
        reason: String,
    },
    /// The document describes another DID than the one resolved.
    #[error("DID document is for {found}, expected {expected}")]
    DidMismatch {
        /// The DID that was resolved.
        expected: Did,
        /// The document's `id`.
        found: Did,
    },
    /// No verification method with this fragment, or one without `publicKeyMultibase`.
    #[error("DID document declares no #{fragment} key")]
    KeyNotDeclared {
        /// The fragment looked for, without `#`.
        fragment: String,
    },
    /// The verification method has a `type` this crate cannot read.
    #[error("#{fragment} key has unsupported type {key_type:?}")]
    UnsupportedKeyType {
        /// The fragment, without `#`.
        fragment: String,
        /// The method's `type`.
        key_type: String,
    },
    /// The key's `publicKeyMultibase` does not decode to a supported public key.
    #[error("#{fragment} key is invalid: {source}")]
    InvalidKey {
        /// The fragment, without `#`.
        fragment: String,
        /// Why the key was refused.
        #[source]
        source: KeyError,
    },
    /// No service entry with this fragment.
    #[error("DID document declares no #{fragment} service")]
    ServiceNotDeclared {
        /// The fragment, without `#`.
        fragment: String,
    },
    /// The service entry has another type than expected.
    #[error("#{fragment} service has type {found:?}, expected {expected:?}")]
    ServiceTypeMismatch {
        /// The fragment, without `#`.
        fragment: String,
        /// The type required.
        expected: String,
        /// The type found.
        found: String,
    },
    /// The service endpoint is not a string holding an `http`/`https` URL with a host.
    #[error("#{fragment} service endpoint is not an http(s) URL")]
    InvalidServiceEndpoint {
        /// The fragment, without `#`.
        fragment: String,
    },
    /// No `alsoKnownAs` entry starts with `at://`.
    #[error("DID document declares no at:// handle")]
    HandleNotDeclared,
    /// The first `at://` entry is not a syntactically valid handle.
    #[error("DID document declares an invalid handle {value:?}: {source}")]
    InvalidHandle {
        /// The entry without `at://`.
        value: String,
        /// Why the handle was refused.
        #[source]
        source: SyntaxError,
    },
}

/// A DID document, as served by a PLC directory or a `did:web` host.
///
/// Unknown top-level fields are kept in [`DidDocument::other`] and written back out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DidDocument {
    /// `@context`: a string, an array, or absent. Not interpreted.
    #[serde(rename = "@context", default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
    /// The DID the document describes.
    pub id: Did,
    /// Other names for the subject; atproto handles are `at://<handle>` entries.
    #[serde(rename = "alsoKnownAs", default, deserialize_with = "null_as_empty")]
    pub also_known_as: Vec<String>,
    /// Public keys.
    #[serde(
        rename = "verificationMethod",
        default,
        deserialize_with = "null_as_empty"
    )]
    pub verification_method: Vec<VerificationMethod>,
    /// Service endpoints.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub service: Vec<Service>,
    /// Every other top-level field, untouched.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// One `verificationMethod` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationMethod {
    /// `#fragment` or `<did>#fragment`.
    pub id: String,
    /// `Multikey`, or a legacy `Ecdsa…VerificationKey2019` type.
    #[serde(rename = "type")]
    pub key_type: String,
    /// The DID controlling the key (not checked by atproto).
    pub controller: String,
    /// The key, multibase-encoded; absent for key formats atproto does not use.
    #[serde(
        rename = "publicKeyMultibase",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub public_key_multibase: Option<String>,
    /// Every other field, untouched.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// One `service` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// `#fragment` or `<did>#fragment`.
    pub id: String,
    /// The service type, e.g. `AtprotoPersonalDataServer`.
    #[serde(rename = "type")]
    pub service_type: String,
    /// A URL string for atproto services; DID Core also allows maps and arrays.
    #[serde(rename = "serviceEndpoint")]
    pub service_endpoint: serde_json::Value,
    /// Every other field, untouched.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Whether an entry `id` names `fragment` of `did`, in relative (`#x`) or absolute (`did#x`) form.
fn id_matches(id: &str, did: &Did, fragment: &str) -> bool {
    let local = id.strip_prefix(did.as_str()).unwrap_or(id);
    local.strip_prefix('#') == Some(fragment)
}

impl DidDocument {
    /// Parses a document from JSON bytes.
    pub fn parse(json: &[u8]) -> Result<DidDocument, DidDocError> {
        serde_json::from_slice(json).map_err(|e| DidDocError::Malformed {
            reason: e.to_string(),
        })
    }

    /// Parses a document from an already-parsed JSON value.
    pub fn from_json(json: serde_json::Value) -> Result<DidDocument, DidDocError> {
        serde_json::from_value(json).map_err(|e| DidDocError::Malformed {
            reason: e.to_string(),
        })
    }

    /// The document as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Checks that the document describes `expected` (call this after every resolution).
    pub fn ensure_id(&self, expected: &Did) -> Result<(), DidDocError> {
        if &self.id == expected {
            Ok(())
        } else {
            Err(DidDocError::DidMismatch {
                expected: expected.clone(),
                found: self.id.clone(),
            })
        }
    }

    /// The first verification method whose id names `fragment` (without `#`); absent → `None`.
    pub fn verification_method(&self, fragment: &str) -> Option<&VerificationMethod> {
        self.verification_method
            .iter()
            .find(|vm| id_matches(&vm.id, &self.id, fragment))
    }

    /// The public key of the verification method `fragment` (without `#`).
    pub fn public_key(&self, fragment: &str) -> Result<PublicKey, DidDocError> {
        let not_declared = || DidDocError::KeyNotDeclared {
            fragment: fragment.to_owned(),
        };
        let vm = self
            .verification_method(fragment)
            .ok_or_else(not_declared)?;
        let multibase = vm
            .public_key_multibase
            .as_deref()
            .ok_or_else(not_declared)?;
        let parsed = if vm.key_type == MULTIKEY_TYPE {
            PublicKey::from_multikey(multibase)
        } else if let Some(curve) = Curve::from_legacy_key_type(&vm.key_type) {
            PublicKey::from_legacy_multibase(curve, multibase)
        } else {
            return Err(DidDocError::UnsupportedKeyType {
                fragment: fragment.to_owned(),
                key_type: vm.key_type.clone(),
            });
        };
        parsed.map_err(|source| DidDocError::InvalidKey {
            fragment: fragment.to_owned(),
            source,
        })
    }

    /// The atproto signing key (`#atproto`), used for repo commits and service-auth tokens.
    pub fn signing_key(&self) -> Result<PublicKey, DidDocError> {
        self.public_key(ATPROTO_KEY_ID)
    }

    /// The first service entry whose id names `fragment` (without `#`); absent → `None`.
    pub fn service(&self, fragment: &str) -> Option<&Service> {
        self.service
            .iter()
            .find(|s| id_matches(&s.id, &self.id, fragment))
    }

    /// The endpoint of service `fragment`, which must have type `service_type` and be an
    /// `http`/`https` URL with a host. Returned as written in the document.
    pub fn service_endpoint(
        &self,
        fragment: &str,
        service_type: &str,
    ) -> Result<&str, DidDocError> {
        let service = self
            .service(fragment)
            .ok_or_else(|| DidDocError::ServiceNotDeclared {
                fragment: fragment.to_owned(),
            })?;
        if service.service_type != service_type {
            return Err(DidDocError::ServiceTypeMismatch {
                fragment: fragment.to_owned(),
                expected: service_type.to_owned(),
                found: service.service_type.clone(),
            });
        }
        match service.service_endpoint.as_str() {
            Some(url) if is_http_url(url) => Ok(url),
            _ => Err(DidDocError::InvalidServiceEndpoint {
                fragment: fragment.to_owned(),
            }),
        }
    }

    /// The PDS endpoint (`#atproto_pds`, type `AtprotoPersonalDataServer`).
    pub fn pds_endpoint(&self) -> Result<&str, DidDocError> {
        self.service_endpoint(ATPROTO_PDS_ID, ATPROTO_PDS_TYPE)
    }

    /// The handle the document claims: the first `alsoKnownAs` entry starting with `at://`.
    ///
    /// This is a claim only: see [`crate::handle::verify_bidirectional`].
    pub fn handle(&self) -> Result<Handle, DidDocError> {
        let value = self
            .also_known_as
            .iter()
            .find_map(|aka| aka.strip_prefix("at://"))
            .ok_or(DidDocError::HandleNotDeclared)?;
        Handle::try_from(value).map_err(|source| DidDocError::InvalidHandle {
            value: value.to_owned(),
            source,
        })
    }

    /// Renders the document a PLC directory serves for `data` (as `plc.directory` does).
    ///
    /// Verification methods become `Multikey` entries with absolute ids (`<did>#<name>`), services
    /// get relative ids (`#<name>`), and the context lists the suite of each recognised key type.
    /// Keys that are not k256/p256 `did:key`s (allowed in `verificationMethods` since PLC v0.2)
    /// are copied without adding a context.
    pub fn from_plc_data(data: &PlcData) -> DidDocument {
        let mut context = vec![CONTEXT_DID_V1.to_owned(), CONTEXT_MULTIKEY_V1.to_owned()];
        let mut methods = Vec::with_capacity(data.verification_methods.len());
        for (name, did_key) in &data.verification_methods {
            let suite = match PublicKey::from_did_key(did_key).map(|k| k.curve()) {
                Ok(Curve::K256) => Some(CONTEXT_SECP256K1_2019),
                Ok(Curve::P256) => Some(CONTEXT_ECDSA_2019),
                _ => None,
            };
            if let Some(suite) = suite
                && !context.iter().any(|c| c == suite)
            {
                context.push(suite.to_owned());
            }
            methods.push(VerificationMethod {
                id: format!("{}#{name}", data.did),
                key_type: MULTIKEY_TYPE.to_owned(),
                controller: data.did.to_string(),
                public_key_multibase: Some(
                    did_key
                        .strip_prefix("did:key:")
                        .unwrap_or(did_key)
                        .to_owned(),
                ),
                other: BTreeMap::new(),
            });
        }
        let service = data
            .services
            .iter()
            .map(|(name, svc)| Service {
                id: format!("#{name}"),
                service_type: svc.service_type.clone(),
                service_endpoint: serde_json::Value::String(svc.endpoint.clone()),
                other: BTreeMap::new(),
            })
            .collect();
        DidDocument {
            context: Some(serde_json::Value::from(context)),
            id: data.did.clone(),
            also_known_as: data.also_known_as.clone(),
            verification_method: methods,
            service,
            other: BTreeMap::new(),
        }
    }
}

/// Whether `s` is an absolute `http`/`https` URL with a non-empty host and no whitespace.
///
/// Deliberately small (no URL crate): scheme, then an authority whose host is non-empty and whose
/// port, if any, is numeric. Guards against `javascript:`, `file:`, `https:///x` and the like.
pub(crate) fn is_http_url(s: &str) -> bool {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some(rest) =
        strip_prefix_ignore_case(s, "https://").or_else(|| strip_prefix_ignore_case(s, "http://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => return false,
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    !host.is_empty() && port_ok
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
    const K256_MULTIKEY: &str = "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF";

    fn doc(vm_id: &str, svc_id: &str, endpoint: &str) -> DidDocument {
        let json = serde_json::json!({
            "id": DID,
            "alsoKnownAs": ["https://example.com", "at://Alice.Example.com", "at://second.example.com"],
            "verificationMethod": [{
                "id": vm_id, "type": "Multikey", "controller": DID,
                "publicKeyMultibase": K256_MULTIKEY,
            }],
            "service": [{"id": svc_id, "type": "AtprotoPersonalDataServer", "serviceEndpoint": endpoint}],
        });
        DidDocument::from_json(json).unwrap()
    }

    #[test]
    fn relative_and_absolute_ids() {
        for (vm, svc) in [
            ("#atproto", "#atproto_pds"),
            (&*format!("{DID}#atproto"), &*format!("{DID}#atproto_pds")),
        ] {
            let d = doc(vm, svc, "https://pds.example.com");
            assert_eq!(d.signing_key().unwrap().multikey(), K256_MULTIKEY);
            assert_eq!(d.pds_endpoint().unwrap(), "https://pds.example.com");
        }
        let other_did = doc("did:plc:other#atproto", "#atproto_pds", "https://x.com");
        assert!(matches!(
            other_did.signing_key(),
            Err(DidDocError::KeyNotDeclared { .. })
        ));
    }

    #[test]
    fn handle_is_first_at_uri() {
        let d = doc("#atproto", "#atproto_pds", "https://x.com");
        assert_eq!(d.handle().unwrap().as_str(), "Alice.Example.com");
        let mut no_handle = d.clone();
        no_handle.also_known_as = vec!["https://example.com".into()];
        assert_eq!(no_handle.handle(), Err(DidDocError::HandleNotDeclared));
        let mut bad = d;
        bad.also_known_as = vec!["at://not a handle".into()];
        assert!(matches!(
            bad.handle(),
            Err(DidDocError::InvalidHandle { .. })
        ));
    }

    #[test]
    fn pds_endpoint_must_be_http_url() {
        for bad in [
            "ftp://x.com",
            "https://",
            "https:///path",
            "javascript:alert(1)",
            "https://x.com:port",
            "https://a b.com",
        ] {
            let d = doc("#atproto", "#atproto_pds", bad);
            assert!(
                matches!(
                    d.pds_endpoint(),
                    Err(DidDocError::InvalidServiceEndpoint { .. })
                ),
                "{bad}"
            );
        }
        for good in [
            "http://localhost:2583",
            "https://pds.example.com/",
            "HTTPS://X.COM",
            "http://[::1]:80",
        ] {
            assert!(
                doc("#atproto", "#atproto_pds", good).pds_endpoint().is_ok(),
                "{good}"
            );
        }
        let mut wrong_type = doc("#atproto", "#atproto_pds", "https://x.com");
        wrong_type.service[0].service_type = "BskyFeedGenerator".into();
        assert!(matches!(
            wrong_type.pds_endpoint(),
            Err(DidDocError::ServiceTypeMismatch { .. })
        ));
    }

    #[test]
    fn unsupported_key_type_and_bad_key() {
        let mut d = doc("#atproto", "#atproto_pds", "https://x.com");
        d.verification_method[0].key_type = "Ed25519VerificationKey2020".into();
        assert!(matches!(
            d.signing_key(),
            Err(DidDocError::UnsupportedKeyType { .. })
        ));
        d.verification_method[0].key_type = "Multikey".into();
        d.verification_method[0].public_key_multibase = Some("zzzz".into());
        assert!(matches!(
            d.signing_key(),
            Err(DidDocError::InvalidKey { .. })
        ));
        d.verification_method[0].public_key_multibase = None;
        assert!(matches!(
            d.signing_key(),
            Err(DidDocError::KeyNotDeclared { .. })
        ));
    }

    #[test]
    fn unknown_fields_round_trip_and_nulls_are_empty() {
        let json = serde_json::json!({
            "id": DID, "alsoKnownAs": null, "authentication": null, "verificationMethod": null,
            "custom": {"a": 1},
        });
        let d = DidDocument::from_json(json).unwrap();
        assert!(d.also_known_as.is_empty() && d.verification_method.is_empty());
        assert_eq!(d.to_json()["custom"]["a"], 1);
        assert_eq!(d.to_json()["authentication"], serde_json::Value::Null);
        assert!(DidDocument::parse(b"{\"id\": \"not a did\"}").is_err());
        assert!(DidDocument::parse(b"[]").is_err());
    }

    #[test]
    fn ensure_id() {
        let d = doc("#atproto", "#atproto_pds", "https://x.com");
        assert!(d.ensure_id(&DID.parse().unwrap()).is_ok());
        assert!(matches!(
            d.ensure_id(&"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap()),
            Err(DidDocError::DidMismatch { .. })
        ));
    }

    #[test]
    fn from_plc_data_renders_like_plc_directory() {
        use crate::plc::PlcService;
        let k256 = "did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF";
        let ed25519 = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
        let data = PlcData {
            did: DID.parse().unwrap(),
            verification_methods: BTreeMap::from([
                ("atproto".to_owned(), k256.to_owned()),
                ("other".to_owned(), ed25519.to_owned()),
            ]),
            rotation_keys: vec![k256.to_owned()],
            also_known_as: vec!["at://atproto.com".to_owned()],
            services: BTreeMap::from([(
                "atproto_pds".to_owned(),
                PlcService {
                    service_type: ATPROTO_PDS_TYPE.to_owned(),
                    endpoint: "https://bsky.social".to_owned(),
                },
            )]),
        };
        let doc = DidDocument::from_plc_data(&data);
        let json = doc.to_json();
        assert_eq!(
            json["@context"],
            serde_json::json!([CONTEXT_DID_V1, CONTEXT_MULTIKEY_V1, CONTEXT_SECP256K1_2019])
        );
        assert_eq!(
            json["verificationMethod"][0],
            serde_json::json!({
                "id": format!("{DID}#atproto"), "type": "Multikey", "controller": DID,
                "publicKeyMultibase": K256_MULTIKEY,
            })
        );
        assert_eq!(
            json["verificationMethod"][1]["publicKeyMultibase"],
            &ed25519[8..]
        );
        assert_eq!(
            json["service"],
            serde_json::json!([{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "https://bsky.social"}])
        );
        assert_eq!(json["alsoKnownAs"], serde_json::json!(["at://atproto.com"]));
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 5, "no other fields: {keys:?}");
        assert_eq!(doc.signing_key().unwrap().did_key(), k256);
        assert_eq!(doc.handle().unwrap().as_str(), "atproto.com");
        assert_eq!(doc.pds_endpoint().unwrap(), "https://bsky.social");
    }
}
