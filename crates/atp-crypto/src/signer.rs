//! The signing seam: code that signs (commits, PLC operations, service JWTs) takes a
//! [`Signer`], so a remote signer can stand in for an in-memory [`Keypair`].

use std::sync::Arc;

use crate::{Keypair, PublicKey, SignError};

/// Something that produces atproto signatures: SHA-256 inside ECDSA, 64 bytes `r ‖ s`, low-S.
pub trait Signer: Send + Sync {
    /// The public key that verifies this signer's signatures.
    fn public_key(&self) -> PublicKey;

    /// Signs `msg` (the bytes themselves, not a hash), returning a low-S `r ‖ s` signature.
    fn sign(&self, msg: &[u8]) -> Result<[u8; 64], SignError>;
}

impl Signer for Keypair {
    fn public_key(&self) -> PublicKey {
        Keypair::public_key(self)
    }

    /// Never fails.
    fn sign(&self, msg: &[u8]) -> Result<[u8; 64], SignError> {
        Ok(Keypair::sign(self, msg))
    }
}

impl<T: Signer + ?Sized> Signer for Arc<T> {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }

    fn sign(&self, msg: &[u8]) -> Result<[u8; 64], SignError> {
        (**self).sign(msg)
    }
}

impl<T: Signer + ?Sized> Signer for Box<T> {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }

    fn sign(&self, msg: &[u8]) -> Result<[u8; 64], SignError> {
        (**self).sign(msg)
    }
}

impl<T: Signer + ?Sized> Signer for &T {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }

    fn sign(&self, msg: &[u8]) -> Result<[u8; 64], SignError> {
        (**self).sign(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Curve;

    fn sign_through(signer: &dyn Signer, msg: &[u8]) -> Result<(), crate::VerifyError> {
        let sig = signer.sign(msg).unwrap();
        signer.public_key().verify(msg, &sig)
    }

    #[test]
    fn wrappers_delegate() {
        let key = Keypair::generate(Curve::K256);
        assert_eq!(sign_through(&key, b"a"), Ok(()));
        assert_eq!(sign_through(&&key, b"b"), Ok(()));
        let shared: Arc<dyn Signer> = Arc::new(Keypair::generate(Curve::P256));
        assert_eq!(sign_through(&shared, b"c"), Ok(()));
        let boxed: Box<dyn Signer> = Box::new(key);
        assert_eq!(sign_through(&boxed, b"d"), Ok(()));
    }
}
