//! Deterministic keys and signature tweaks shared by the unit tests.

use atp_crypto::{Curve, Keypair};

/// A fixed keypair: the private scalar is `[seed; 32]` (valid on both curves for small seeds).
pub(crate) fn keypair(curve: Curve, seed: u8) -> Keypair {
    Keypair::from_private_bytes(curve, &[seed; 32]).expect("[seed; 32] is a valid scalar")
}

fn order(curve: Curve) -> [u8; 32] {
    let hex = match curve {
        Curve::K256 => "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
        Curve::P256 => "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551",
    };
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex constant");
    }
    out
}

/// The same signature with `s` replaced by `n - s`: still valid ECDSA, but high-S.
pub(crate) fn to_high_s(curve: Curve, sig: &[u8; 64]) -> [u8; 64] {
    let n = order(curve);
    let mut out = *sig;
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(n[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[32 + i] = d as u8;
    }
    out
}
