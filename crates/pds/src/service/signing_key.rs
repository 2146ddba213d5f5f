//! `reserveSigningKey`: a fresh k256 key kept for an incoming account (by DID) or unbound
//! (by its own `did:key`), until the account is created or imported.

use atp_crypto::{Curve, Keypair};
use atp_syntax::Did;

use crate::service::account::AccountError;
use crate::state::AppState;

/// The `did:key` of the key reserved for `did` (reusing an earlier reservation), or of a new
/// unbound key.
pub async fn reserve(state: &AppState, did: Option<&Did>) -> Result<String, AccountError> {
    let keys = state.writer().keys().clone();
    let did = did.cloned();
    tokio::task::spawn_blocking(move || {
        let internal = |e: std::io::Error| AccountError::Internal(format!("reserved key: {e}"));
        match did {
            Some(did) => {
                if let Some(key) = keys.load_reserved(did.as_str()).map_err(internal)? {
                    return Ok(key.public_key().did_key());
                }
                let key = Keypair::generate(Curve::K256);
                keys.save_reserved(did.as_str(), &key).map_err(internal)?;
                Ok(key.public_key().did_key())
            }
            None => {
                let key = Keypair::generate(Curve::K256);
                let did_key = key.public_key().did_key();
                keys.save_reserved(&did_key, &key).map_err(internal)?;
                Ok(did_key)
            }
        }
    })
    .await
    .map_err(|e| AccountError::Internal(e.to_string()))?
}
