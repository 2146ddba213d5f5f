//! Commit objects: the signed root of a repository version.
//!
//! Wire form (v3): `{did, version: 3, data, rev, prev: link|null, sig}`. The signature covers the
//! DAG-CBOR encoding of the same map without `sig`. Version 2 commits (no `rev`) are read and
//! verified too; this crate only writes version 3, with `prev` null as the reference
//! implementation does.
//!
//! Spec: <https://atproto.com/specs/repository#commit-objects>.

use atp_crypto::{PublicKey, SignError, Signer, VerifyError};
use atp_data::cbor::{Encoder, from_slice};
use atp_data::{Cid, Value};
use atp_syntax::{Did, Tid};

/// Why a commit could not be read, signed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The bytes are not a well-formed commit object.
    #[error("malformed commit: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The commit's `version` is not 2 or 3.
    #[error("unsupported commit version {version}")]
    UnsupportedVersion {
        /// The version found.
        version: i64,
    },
    /// The signer failed.
    #[error("signing the commit failed: {0}")]
    Sign(#[from] SignError),
    /// The signature does not verify against the key.
    #[error("commit signature does not verify: {0}")]
    BadSignature(#[from] VerifyError),
}

/// A commit without its signature: what gets signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedCommit {
    /// The account.
    pub did: Did,
    /// Repository format version: 3 (written) or 2 (read only).
    pub version: u8,
    /// Root CID of the MST.
    pub data: Cid,
    /// Revision; always present in version 3, absent in version 2.
    pub rev: Option<Tid>,
    /// The previous commit (a v2 relic; null in commits written here).
    pub prev: Option<Cid>,
}

/// A commit with its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCommit {
    /// The signed fields.
    pub commit: UnsignedCommit,
    /// 64-byte `r ‖ s` signature over [`UnsignedCommit::to_cbor`].
    pub sig: Vec<u8>,
}

impl UnsignedCommit {
    /// A version 3 commit with `prev` null.
    pub fn v3(did: Did, data: Cid, rev: Tid) -> UnsignedCommit {
        UnsignedCommit {
            did,
            version: 3,
            data,
            rev: Some(rev),
            prev: None,
        }
    }

    /// The bytes that are signed: DAG-CBOR of the commit without `sig`.
    pub fn to_cbor(&self) -> Vec<u8> {
        self.encode(None)
    }

    /// Signs the commit.
    pub fn sign<S: Signer + ?Sized>(self, signer: &S) -> Result<SignedCommit, CommitError> {
        let sig = signer.sign(&self.to_cbor())?;
        Ok(SignedCommit {
            commit: self,
            sig: sig.to_vec(),
        })
    }

    fn encode(&self, sig: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        let mut enc = Encoder::new(&mut out);
        let fields = 3 + usize::from(self.rev.is_some()) + 1 + usize::from(sig.is_some());
        // DAG-CBOR order: did, rev, sig (3 bytes), data, prev (4), version (7).
        enc.map(fields).str("did").str(self.did.as_str());
        if let Some(rev) = &self.rev {
            enc.str("rev").str(rev.as_str());
        }
        if let Some(sig) = sig {
            enc.str("sig").bytes(sig);
        }
        enc.str("data").link(&self.data).str("prev");
        match &self.prev {
            Some(prev) => enc.link(prev),
            None => enc.null(),
        };
        enc.str("version").uint(u64::from(self.version));
        out
    }
}

impl SignedCommit {
    /// The account DID.
    pub fn did(&self) -> &Did {
        &self.commit.did
    }

    /// The MST root.
    pub fn data(&self) -> &Cid {
        &self.commit.data
    }

    /// The revision (`None` only for version 2 commits).
    pub fn rev(&self) -> Option<&Tid> {
        self.commit.rev.as_ref()
    }

    /// The block bytes.
    pub fn to_cbor(&self) -> Vec<u8> {
        self.commit.encode(Some(&self.sig))
    }

    /// The commit's CID.
    pub fn cid(&self) -> Cid {
        atp_data::cid::cid_for_cbor(&self.to_cbor())
    }

    /// Verifies the signature (strict: 64 bytes, low-S).
    pub fn verify(&self, key: &PublicKey) -> Result<(), CommitError> {
        key.verify(&self.commit.to_cbor(), &self.sig)?;
        Ok(())
    }

    /// Parses a commit block. Exactly the fields of the version must be present (v3: `did`,
    /// `version`, `data`, `rev`, `prev`, `sig`; v2: the same without `rev`), so that re-encoding
    /// without `sig` gives the signed bytes.
    pub fn from_cbor(bytes: &[u8]) -> Result<SignedCommit, CommitError> {
        let value = from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        let map = value.as_map().ok_or_else(|| malformed("not a map"))?;
        let field = |name: &str| {
            map.get(name)
                .ok_or_else(|| malformed(format!("missing {name}")))
        };
        let version = field("version")?
            .as_i64()
            .ok_or_else(|| malformed("version must be an integer"))?;
        let expected_fields = match version {
            3 => 6,
            2 => 5 + usize::from(map.contains_key("rev")),
            _ => return Err(CommitError::UnsupportedVersion { version }),
        };
        if map.len() != expected_fields {
            return Err(malformed("unexpected fields"));
        }
        let did = field("did")?
            .as_str()
            .ok_or_else(|| malformed("did must be a string"))?
            .parse::<Did>()
            .map_err(|e| malformed(format!("did: {e}")))?;
        let data = *field("data")?
            .as_link()
            .ok_or_else(|| malformed("data must be a link"))?;
        let rev = match map.get("rev") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or_else(|| malformed("rev must be a string"))?
                    .parse::<Tid>()
                    .map_err(|e| malformed(format!("rev: {e}")))?,
            ),
        };
        let prev = match field("prev")? {
            Value::Null => None,
            Value::Link(cid) => Some(*cid),
            _ => return Err(malformed("prev must be a link or null")),
        };
        let sig = field("sig")?
            .as_bytes()
            .ok_or_else(|| malformed("sig must be bytes"))?
            .to_vec();
        Ok(SignedCommit {
            commit: UnsignedCommit {
                did,
                version: version as u8,
                data,
                rev,
                prev,
            },
            sig,
        })
    }
}

fn malformed(reason: impl Into<String>) -> CommitError {
    CommitError::Malformed {
        reason: reason.into(),
    }
}

/// The next revision: the clock's TID, or one past `last` if the clock is not ahead of it, so that
/// revisions only increase. `None` only if `last` is the largest TID.
pub fn next_rev(last: Option<&Tid>, clock: &Tid) -> Option<Tid> {
    match last {
        Some(last) if last >= clock => {
            let next = last.to_u64().checked_add(1).filter(|n| n >> 63 == 0)?;
            Some(Tid::from_u64(next))
        }
        _ => Some(clock.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atp_crypto::{Curve, Keypair};

    fn sample() -> UnsignedCommit {
        UnsignedCommit::v3(
            "did:plc:44ybard66vv44zksje25o7dz".parse().unwrap(),
            atp_data::cid::cid_for_cbor(b"\xa0"),
            "3lmxjza3nva27".parse().unwrap(),
        )
    }

    #[test]
    fn sign_round_trip_verify() {
        let key = Keypair::generate(Curve::K256);
        let signed = sample().sign(&key).unwrap();
        let bytes = signed.to_cbor();
        let back = SignedCommit::from_cbor(&bytes).unwrap();
        assert_eq!(back, signed);
        assert_eq!(atp_data::cbor::to_vec(&from_slice(&bytes).unwrap()), bytes);
        back.verify(&key.public_key()).unwrap();
        let other = Keypair::generate(Curve::K256);
        assert!(back.verify(&other.public_key()).is_err());
        let mut tampered = back.clone();
        tampered.commit.data = atp_data::cid::cid_for_cbor(b"\x80");
        assert!(tampered.verify(&key.public_key()).is_err());
    }

    #[test]
    fn reads_v2_and_rejects_others() {
        let mut v2 = sample();
        v2.version = 2;
        v2.rev = None;
        let signed = SignedCommit {
            commit: v2,
            sig: vec![0; 64],
        };
        let back = SignedCommit::from_cbor(&signed.to_cbor()).unwrap();
        assert_eq!(back.rev(), None);
        let mut v4 = signed.clone();
        v4.commit.version = 4;
        assert!(matches!(
            SignedCommit::from_cbor(&v4.to_cbor()),
            Err(CommitError::UnsupportedVersion { version: 4 })
        ));
        let mut v3_without_rev = signed;
        v3_without_rev.commit.version = 3;
        assert!(SignedCommit::from_cbor(&v3_without_rev.to_cbor()).is_err());
    }

    #[test]
    fn revs_only_increase() {
        let clock: Tid = "3lmxjza3nva27".parse().unwrap();
        let older: Tid = "3lmxjza3nva22".parse().unwrap();
        assert_eq!(next_rev(None, &clock), Some(clock.clone()));
        assert_eq!(next_rev(Some(&older), &clock), Some(clock.clone()));
        let next = next_rev(Some(&clock), &older).unwrap();
        assert!(next > clock);
        assert_eq!(next.to_u64(), clock.to_u64() + 1);
    }
}
