//! Text encodings of public keys: `did:key`, multikey, and the legacy `publicKeyMultibase`.
//!
//! Terminology:
//! - *multikey*: `z` ‖ base58btc(multicodec varint ‖ compressed point). The multicodec is
//!   `secp256k1-pub` (0xe7, varint `e7 01`) or `p256-pub` (0x1200, varint `80 24`).
//! - *did:key*: `did:key:` ‖ multikey.
//! - *legacy multibase*: `z` ‖ base58btc(point) with no multicodec; the curve comes from the
//!   verification method's `type` in the DID document. Old documents hold uncompressed points.
//!
//! Parsing accepts uncompressed points after the multicodec too (some old documents have them);
//! formatting always emits the compressed form, so such input does not round-trip byte for byte.

use crate::{Curve, KeyError, PublicKey};

/// The `did:key` method prefix.
const DID_KEY_PREFIX: &str = "did:key:";

/// The multibase code for base58btc.
const BASE58BTC: char = 'z';

/// Longest accepted multibase string: a 65-byte point plus a 9-byte varint is 74 bytes, which
/// base58 encodes in at most 102 characters. The cap keeps the quadratic base58 decoder cheap.
const MAX_MULTIBASE_LEN: usize = 128;

impl PublicKey {
    /// Parses a `did:key:z…` string (K-256 `zQ3s…` or P-256 `zDna…`).
    pub fn from_did_key(did: &str) -> Result<PublicKey, KeyError> {
        let multikey = did
            .strip_prefix(DID_KEY_PREFIX)
            .ok_or(KeyError::NotDidKey)?;
        PublicKey::from_multikey(multikey)
    }

    /// The `did:key` of this key (compressed point).
    pub fn did_key(&self) -> String {
        format!("{DID_KEY_PREFIX}{}", self.multikey())
    }

    /// Parses a multikey: `z` ‖ base58btc(multicodec varint ‖ point), as in a DID document's
    /// `Multikey` verification method.
    pub fn from_multikey(multikey: &str) -> Result<PublicKey, KeyError> {
        let bytes = decode_base58btc(multikey)?;
        let (code, used) = decode_varint(&bytes).ok_or(KeyError::MalformedMulticodec)?;
        let curve = Curve::from_multicodec(code).ok_or(KeyError::UnsupportedMulticodec { code })?;
        let point = bytes.get(used..).unwrap_or_default();
        PublicKey::from_sec1_bytes(curve, point)
    }

    /// The multikey of this key: `z` ‖ base58btc(multicodec varint ‖ compressed point).
    pub fn multikey(&self) -> String {
        let mut bytes = encode_varint(self.curve().multicodec());
        bytes.extend_from_slice(&self.to_compressed());
        encode_base58btc(&bytes)
    }

    /// Parses a legacy `publicKeyMultibase` (`z` ‖ base58btc(point), no multicodec) for a
    /// curve known from the verification method's `type`. The point may be compressed or
    /// uncompressed.
    pub fn from_legacy_multibase(curve: Curve, multibase: &str) -> Result<PublicKey, KeyError> {
        let bytes = decode_base58btc(multibase)?;
        PublicKey::from_sec1_bytes(curve, &bytes)
    }

    /// The legacy `publicKeyMultibase` of this key: `z` ‖ base58btc(compressed point).
    pub fn legacy_multibase(&self) -> String {
        encode_base58btc(&self.to_compressed())
    }
}

fn encode_base58btc(bytes: &[u8]) -> String {
    let mut out = String::from(BASE58BTC);
    out.push_str(&bs58::encode(bytes).into_string());
    out
}

fn decode_base58btc(text: &str) -> Result<Vec<u8>, KeyError> {
    if text.len() > MAX_MULTIBASE_LEN {
        return Err(KeyError::EncodingTooLong {
            len: text.len(),
            max: MAX_MULTIBASE_LEN,
        });
    }
    let payload = text
        .strip_prefix(BASE58BTC)
        .ok_or(KeyError::UnsupportedMultibase {
            found: text.chars().next(),
        })?;
    bs58::decode(payload)
        .into_vec()
        .map_err(|source| KeyError::Base58 { source })
}

/// Unsigned LEB128 as multiformats uses it.
fn encode_varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(3);
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return out;
        }
        out.push(low | 0x80);
    }
}

/// Decodes a multiformats unsigned varint: at most 9 bytes, minimally encoded. Returns the
/// value and the number of bytes used, or `None` if it is truncated, too long or not minimal.
fn decode_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (index, &byte) in bytes.iter().take(9).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            let minimal = index == 0 || byte != 0;
            return minimal.then_some((value, index + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_input_never_panics(text in "(did:key:)?z?[1-9A-Za-z]{0,60}", bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = PublicKey::from_did_key(&text);
            let _ = PublicKey::from_multikey(&text);
            for curve in Curve::ALL {
                let _ = PublicKey::from_legacy_multibase(curve, &text);
                if let Ok(key) = PublicKey::from_sec1_bytes(curve, &bytes) {
                    prop_assert_eq!(PublicKey::from_did_key(&key.did_key()), Ok(key));
                }
            }
        }
    }

    #[test]
    fn multicodec_varints_match_the_spec() {
        assert_eq!(encode_varint(0xe7), [0xe7, 0x01]);
        assert_eq!(encode_varint(0x1200), [0x80, 0x24]);
        assert_eq!(decode_varint(&[0xe7, 0x01, 0xff]), Some((0xe7, 2)));
        assert_eq!(decode_varint(&[0x80, 0x24]), Some((0x1200, 2)));
        assert_eq!(decode_varint(&[0x00]), Some((0, 1)));
        assert_eq!(decode_varint(&[0xe7]), None, "truncated");
        assert_eq!(decode_varint(&[0xe7, 0x81, 0x00]), None, "not minimal");
        assert_eq!(decode_varint(&[0xff; 12]), None, "too long");
        assert_eq!(decode_varint(&[]), None);
    }

    #[test]
    fn prefixes_are_the_familiar_ones() {
        let k = Keypair::from_private_bytes(Curve::K256, &[7; 32]).unwrap();
        let p = Keypair::from_private_bytes(Curve::P256, &[7; 32]).unwrap();
        assert!(k.public_key().did_key().starts_with("did:key:zQ3s"));
        assert!(p.public_key().did_key().starts_with("did:key:zDna"));
    }

    #[test]
    fn encodings_round_trip() {
        for curve in Curve::ALL {
            let key = Keypair::from_private_bytes(curve, &[9; 32])
                .unwrap()
                .public_key();
            assert_eq!(PublicKey::from_did_key(&key.did_key()).unwrap(), key);
            assert_eq!(PublicKey::from_multikey(&key.multikey()).unwrap(), key);
            let legacy = key.legacy_multibase();
            assert_eq!(
                PublicKey::from_legacy_multibase(curve, &legacy).unwrap(),
                key
            );
            let uncompressed = encode_base58btc(&key.to_uncompressed());
            assert_eq!(
                PublicKey::from_legacy_multibase(curve, &uncompressed).unwrap(),
                key
            );
            let mut prefixed = encode_varint(curve.multicodec());
            prefixed.extend_from_slice(&key.to_uncompressed());
            assert_eq!(
                PublicKey::from_multikey(&encode_base58btc(&prefixed)).unwrap(),
                key
            );
        }
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let key = Keypair::from_private_bytes(Curve::K256, &[3; 32])
            .unwrap()
            .public_key();
        let multikey = key.multikey();
        assert_eq!(PublicKey::from_did_key(&multikey), Err(KeyError::NotDidKey));
        assert_eq!(
            PublicKey::from_multikey(&multikey[1..]),
            Err(KeyError::UnsupportedMultibase {
                found: multikey[1..].chars().next()
            })
        );
        assert_eq!(
            PublicKey::from_multikey(""),
            Err(KeyError::UnsupportedMultibase { found: None })
        );
        assert!(matches!(
            PublicKey::from_multikey("z0OIl"),
            Err(KeyError::Base58 { .. })
        ));
        assert_eq!(
            PublicKey::from_multikey("z"),
            Err(KeyError::MalformedMulticodec)
        );
        let ed25519 = encode_base58btc(&[0xed, 0x01, 1, 2, 3]);
        assert_eq!(
            PublicKey::from_multikey(&ed25519),
            Err(KeyError::UnsupportedMulticodec { code: 0xed })
        );
        // Right prefix, truncated point.
        let mut short = encode_varint(0xe7);
        short.extend_from_slice(&key.to_compressed()[..32]);
        assert_eq!(
            PublicKey::from_multikey(&encode_base58btc(&short)),
            Err(KeyError::InvalidPointEncoding {
                curve: Curve::K256,
                len: 32
            })
        );
        // Points off the curve: a wrong y, and x values with no y at all.
        for curve in Curve::ALL {
            let good = Keypair::from_private_bytes(curve, &[3; 32])
                .unwrap()
                .public_key();
            let mut bad_y = good.to_uncompressed();
            bad_y[64] ^= 1;
            assert_eq!(
                PublicKey::from_sec1_bytes(curve, &bad_y),
                Err(KeyError::InvalidPoint { curve })
            );
            let rejected_x = (1u8..=40).filter(|&x| {
                let mut point = [0u8; 33];
                point[0] = 0x02;
                point[32] = x;
                PublicKey::from_sec1_bytes(curve, &point) == Err(KeyError::InvalidPoint { curve })
            });
            assert!(rejected_x.count() > 0, "{curve}: some small x has no point");
            let identity = [0u8; 1];
            assert!(PublicKey::from_sec1_bytes(curve, &identity).is_err());
            let mut hybrid = good.to_uncompressed();
            hybrid[0] = 0x06;
            assert!(PublicKey::from_sec1_bytes(curve, &hybrid).is_err());
        }
        let long = format!("z{}", "2".repeat(500));
        assert!(matches!(
            PublicKey::from_multikey(&long),
            Err(KeyError::EncodingTooLong { .. })
        ));
    }
}
