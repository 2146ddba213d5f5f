//! The two elliptic curves atproto supports, and the names each one goes by.

use std::fmt;
use std::str::FromStr;

use crate::KeyError;

/// An elliptic curve supported by atproto.
///
/// `Display` prints the short atproto names `k256` / `p256`; `FromStr` accepts those and the
/// aliases `secp256k1`, `p-256` and `secp256r1`, ignoring ASCII case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Curve {
    /// secp256k1 ("K-256"): the default for new atproto keys. JWT `alg` ES256K.
    K256,
    /// NIST P-256 (secp256r1, prime256v1). JWT `alg` ES256.
    P256,
}

impl Curve {
    /// Both curves, K-256 first.
    pub const ALL: [Curve; 2] = [Curve::K256, Curve::P256];

    /// The short atproto name: `"k256"` or `"p256"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Curve::K256 => "k256",
            Curve::P256 => "p256",
        }
    }

    /// The JWT / JWS `alg` for ECDSA with SHA-256 on this curve: `"ES256K"` or `"ES256"`.
    pub const fn jwt_alg(self) -> &'static str {
        match self {
            Curve::K256 => "ES256K",
            Curve::P256 => "ES256",
        }
    }

    /// The curve for a JWT `alg` (`"ES256K"` / `"ES256"`, exact case); other algorithms → `None`.
    pub fn from_jwt_alg(alg: &str) -> Option<Curve> {
        match alg {
            "ES256K" => Some(Curve::K256),
            "ES256" => Some(Curve::P256),
            _ => None,
        }
    }

    /// The multicodec code of this curve's compressed public key: `secp256k1-pub` (0xe7) or
    /// `p256-pub` (0x1200).
    pub const fn multicodec(self) -> u64 {
        match self {
            Curve::K256 => 0xe7,
            Curve::P256 => 0x1200,
        }
    }

    /// The curve whose public-key multicodec is `code`; unknown codes → `None`.
    pub fn from_multicodec(code: u64) -> Option<Curve> {
        Curve::ALL.into_iter().find(|c| c.multicodec() == code)
    }

    /// The legacy DID-document verification method `type` for this curve
    /// (`EcdsaSecp256k1VerificationKey2019` / `EcdsaSecp256r1VerificationKey2019`), whose
    /// `publicKeyMultibase` is read by [`crate::PublicKey::from_legacy_multibase`].
    pub const fn legacy_key_type(self) -> &'static str {
        match self {
            Curve::K256 => "EcdsaSecp256k1VerificationKey2019",
            Curve::P256 => "EcdsaSecp256r1VerificationKey2019",
        }
    }

    /// The curve for a legacy verification method `type` (exact match); anything else → `None`.
    pub fn from_legacy_key_type(key_type: &str) -> Option<Curve> {
        Curve::ALL
            .into_iter()
            .find(|c| c.legacy_key_type() == key_type)
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Curve {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "k256" | "secp256k1" => Ok(Curve::K256),
            "p256" | "p-256" | "secp256r1" => Ok(Curve::P256),
            _ => Err(KeyError::UnknownCurve { name: s.to_owned() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for curve in Curve::ALL {
            assert_eq!(curve.to_string().parse::<Curve>().unwrap(), curve);
            assert_eq!(Curve::from_jwt_alg(curve.jwt_alg()), Some(curve));
            assert_eq!(Curve::from_multicodec(curve.multicodec()), Some(curve));
            assert_eq!(
                Curve::from_legacy_key_type(curve.legacy_key_type()),
                Some(curve)
            );
        }
    }

    #[test]
    fn aliases_and_unknown_names() {
        assert_eq!("secp256k1".parse::<Curve>().unwrap(), Curve::K256);
        assert_eq!("P-256".parse::<Curve>().unwrap(), Curve::P256);
        assert_eq!("secp256r1".parse::<Curve>().unwrap(), Curve::P256);
        assert!(matches!(
            "ed25519".parse::<Curve>(),
            Err(KeyError::UnknownCurve { name }) if name == "ed25519"
        ));
        assert_eq!(Curve::from_jwt_alg("es256k"), None);
        assert_eq!(Curve::from_multicodec(0xed), None);
    }
}
