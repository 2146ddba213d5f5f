//! Handle changes (`com.atproto.identity.updateHandle`): validation against the service
//! domains or the network, the PLC update signed with the rotation key, the account row and the
//! `#identity` event.
//!
//! The account row and the `#identity` event are written in one transaction (also when the
//! handle is already the account's: the event then re-announces it, as the reference does).

use atp_data::Value;
use atp_identity::Resolver;
use atp_identity::plc::{PlcData, PlcOp, UnsignedOp};
use atp_syntax::{Did, Handle};
use chrono::Utc;
use pds_store::EventKind;

use crate::service::account::{AccountError, check_handle, event};
use crate::service::status::plc_last_op;
use crate::state::AppState;

/// Checks `requested` for `did`: under a service domain, the service rules; elsewhere, the
/// handle must resolve to `did` through the network resolver.
pub async fn validate_handle(
    state: &AppState,
    did: &Did,
    requested: &str,
) -> Result<Handle, AccountError> {
    let normalized = requested.trim().to_ascii_lowercase();
    let domains = &state.config().service_handle_domains;
    if domains.iter().any(|d| normalized.ends_with(d.as_str())) {
        return check_handle(&normalized, domains);
    }
    let handle: Handle = normalized
        .parse()
        .map_err(|e| AccountError::InvalidHandle(format!("Invalid handle: {e}")))?;
    let resolved = match state.resolver() {
        Some(resolver) => resolver.resolve_handle(&handle).await.ok(),
        None => None,
    };
    if resolved.as_ref() != Some(did) {
        return Err(AccountError::InvalidRequest(
            "External handle did not resolve to DID".into(),
        ));
    }
    Ok(handle)
}

/// Points `did`'s PLC document at `handle` with an operation signed by the rotation key.
async fn update_plc_handle(
    state: &AppState,
    did: &Did,
    handle: &Handle,
) -> Result<(), AccountError> {
    let (last, cid) = plc_last_op(state, did).await?;
    let data = PlcData::from_op(did, &last.op)
        .ok_or_else(|| AccountError::InvalidRequest(format!("{did} is tombstoned")))?;
    let mut op = PlcOp::update_of(&data, &cid);
    op.set_handle(handle);
    let signed = UnsignedOp::Operation(op)
        .sign(&state.secrets().plc_rotation_key)
        .map_err(|e| AccountError::Internal(format!("signing the PLC operation: {e}")))?;
    state
        .plc()
        .submit(did, &signed)
        .await
        .map_err(|e| AccountError::Internal(e.to_string()))
}

/// Changes `did`'s handle to `requested` (see the module docs).
pub async fn update_handle(
    state: &AppState,
    did: &Did,
    requested: &str,
) -> Result<Handle, AccountError> {
    let handle = validate_handle(state, did, requested).await?;
    let store = state.store();
    match store.get_account_by_handle(&handle).await? {
        Some(other) if &other.did != did => {
            return Err(AccountError::InvalidRequest(format!(
                "Handle already taken: {handle}"
            )));
        }
        Some(_) => {}
        None => {
            if did.method() == "plc" {
                update_plc_handle(state, did, &handle).await?;
            }
        }
    }
    let ev = event(
        EventKind::Identity,
        vec![
            ("did", Value::from(did.as_str())),
            ("handle", Value::from(handle.as_str())),
        ],
    );
    store
        .update_handle(did, &handle, vec![ev], Utc::now())
        .await?;
    Ok(handle)
}
