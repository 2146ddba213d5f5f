//! Account migration, both directions, except the repository import (`repo_import.rs`) and
//! activation (`status.rs`, which re-signs an imported head).
//!
//! Inbound: `createAccount` with an existing DID, authorized by a service-auth token the old
//! host minted (`iss` = the DID, `aud` = our service DID, `lxm` = createAccount, not expired,
//! signed with the DID's current signing key); the account starts deactivated, with an empty
//! repository signed by a new key of ours (the one reserved for the DID, if any).
//! `getRecommendedDidCredentials` tells the old host what to sign; `submitPlcOperation` forwards
//! an operation to the PLC directory only if it hands the DID to this server (our endpoint, our
//! signing key for the account, our rotation key, the account's handle).
//!
//! Outbound: `signPlcOperation` signs, with this server's PLC rotation key, an update of the
//! DID's last operation with the fields the user asks to change, once the one-time email token
//! (purpose `plc_operation`) checks out.

use std::collections::BTreeMap;

use atp_crypto::{Curve, Keypair, PublicKey};
use atp_identity::Resolver;
use atp_identity::did_doc::{ATPROTO_KEY_ID, ATPROTO_PDS_ID, ATPROTO_PDS_TYPE};
use atp_identity::plc::{PlcData, PlcOp, PlcService, SignedOp, UnsignedOp};
use atp_identity::service_auth::{AuthError, ExpectedClaims, decode_unverified};
use atp_syntax::{Did, Handle};
use axum::http::StatusCode;
use chrono::Utc;
use pds_store::{EmailTokenPurpose, EventKind, NewAccount, RepoCommit};
use serde_json::{Value, json};

use crate::api::error::XrpcError;
use crate::service::account::{self, AccountError, Session, event};
use crate::service::email_tokens;
use crate::service::status::plc_last_op;
use crate::state::{AppState, PlcSubmitError};

/// The method a service-auth token must be bound to for an incoming account.
pub const CREATE_ACCOUNT_LXM: &str = "com.atproto.server.createAccount";

/// 401 with the reference's name for a refused service-auth token.
fn auth_error(e: &AuthError) -> XrpcError {
    XrpcError::new(StatusCode::UNAUTHORIZED, e.error_name(), e.to_string())
}

/// The current `atproto` signing key of `did` (`did:plc` from our PLC directory, `did:web`
/// through the resolver, bypassing its cache when `fresh`).
pub async fn did_signing_key(
    state: &AppState,
    did: &Did,
    fresh: bool,
) -> Result<PublicKey, XrpcError> {
    let unresolvable =
        |why: String| XrpcError::invalid_request(format!("Could not resolve {did}: {why}"));
    let did_key = match did.method() {
        "plc" => {
            let data = plc_data(state, did).await?;
            data.atproto_key()
                .ok_or_else(|| unresolvable("no atproto signing key".into()))?
                .to_owned()
        }
        "web" => {
            let resolver = state
                .resolver()
                .ok_or_else(|| unresolvable("no identity resolver".into()))?;
            let doc = if fresh {
                resolver.refresh_did(did).await
            } else {
                resolver.resolve_did(did).await
            }
            .map_err(|e| unresolvable(e.to_string()))?;
            return doc.signing_key().map_err(|e| unresolvable(e.to_string()));
        }
        other => return Err(unresolvable(format!("unsupported DID method {other}"))),
    };
    PublicKey::from_did_key(&did_key).map_err(|e| unresolvable(e.to_string()))
}

/// The current PLC state of `did` (an error for a tombstoned DID).
pub async fn plc_data(state: &AppState, did: &Did) -> Result<PlcData, XrpcError> {
    let (op, _) = plc_last_op(state, did).await.map_err(|e| match e {
        AccountError::Internal(m) => {
            XrpcError::invalid_request(format!("Could not resolve {did}: {m}"))
        }
        other => other.into(),
    })?;
    PlcData::from_op(did, &op.op)
        .ok_or_else(|| XrpcError::invalid_request(format!("{did} is tombstoned")))
}

/// Verifies a service-auth token for `lxm` addressed to this server; returns its issuer.
pub async fn verify_service_auth(
    state: &AppState,
    token: &str,
    lxm: &str,
) -> Result<Did, XrpcError> {
    let token = decode_unverified(token).map_err(|e| auth_error(&e))?;
    let lxm = lxm
        .parse()
        .map_err(|_| XrpcError::internal(format!("bad lxm {lxm}")))?;
    let expected = ExpectedClaims::new(state.config().service_did()).with_lxm(lxm);
    token
        .check_claims(&expected, Utc::now())
        .map_err(|e| auth_error(&e))?;
    let iss = token.claims().iss.did.clone();
    let key = did_signing_key(state, &iss, false).await?;
    if let Err(first) = token.check_signature(&key) {
        // The key may have just been rotated: look again once, bypassing caches.
        let fresh = did_signing_key(state, &iss, true).await?;
        if fresh == key {
            return Err(auth_error(&first));
        }
        token.check_signature(&fresh).map_err(|e| auth_error(&e))?;
    }
    Ok(iss)
}

/// createAccount's input for an account that brings its DID.
#[derive(Debug, Clone)]
pub struct IncomingAccount {
    /// The DID.
    pub did: Did,
    /// Requested handle.
    pub handle: String,
    /// Email address.
    pub email: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Invite code.
    pub invite_code: Option<String>,
}

/// A handle under one of our domains, or one that resolves to `did` already.
async fn incoming_handle(
    state: &AppState,
    did: &Did,
    requested: &str,
) -> Result<Handle, XrpcError> {
    let domains = &state.config().service_handle_domains;
    let normalized = requested.trim().to_ascii_lowercase();
    if domains.iter().any(|d| normalized.ends_with(d.as_str())) {
        return Ok(account::check_handle(requested, domains)?);
    }
    let handle: Handle = normalized.parse().map_err(|e| {
        XrpcError::invalid_request(format!("Invalid handle: {e}")).named("InvalidHandle")
    })?;
    let resolved = match state.resolver() {
        Some(resolver) => resolver.resolve_handle(&handle).await.ok(),
        None => None,
    };
    if resolved.as_ref() != Some(did) {
        return Err(XrpcError::invalid_request(format!(
            "External handle {handle} did not resolve to {did}"
        ))
        .named("InvalidHandle"));
    }
    Ok(handle)
}

/// Creates a deactivated account for an existing DID (see the module docs) and logs it in.
/// `requester` is the issuer of the verified service-auth token, if any.
pub async fn create_incoming_account(
    state: &AppState,
    requester: Option<Did>,
    req: IncomingAccount,
) -> Result<Session, XrpcError> {
    let did = req.did;
    if requester.as_ref() != Some(&did) {
        return Err(XrpcError::auth_required(format!(
            "Missing auth to create account with did: {did}"
        )));
    }
    let config = state.config();
    if config.invite_required && req.invite_code.is_none() {
        return Err(AccountError::InvalidInviteCode("No invite code provided".into()).into());
    }
    let email = req
        .email
        .ok_or_else(|| XrpcError::invalid_request("Email is required"))?;
    account::check_email(&email)?;
    let password = req
        .password
        .ok_or_else(|| XrpcError::invalid_request("Password is required"))?;
    let handle = incoming_handle(state, &did, &req.handle).await?;
    if state.store().get_account(&did).await?.is_some() {
        return Err(XrpcError::invalid_request(format!(
            "An account with {did} already exists on this server"
        )));
    }
    account::precheck(state, &handle, &email, req.invite_code.as_deref()).await?;
    let password_hash = account::hash_blocking(password).await?;

    let keys = state.writer().keys();
    let key = match keys.load_reserved(did.as_str()) {
        Ok(Some(key)) => key,
        Ok(None) => Keypair::generate(Curve::K256),
        Err(e) => return Err(XrpcError::internal(format!("reserved key: {e}"))),
    };
    keys.save(&did, &key)
        .map_err(|e| XrpcError::internal(format!("saving the signing key: {e}")))?;
    let tid = state.writer().next_tid();
    let genesis =
        atp_repo::format_genesis(&did, Vec::new(), &key, &tid).map_err(XrpcError::internal)?;
    let account = NewAccount {
        did: did.clone(),
        handle: handle.clone(),
        email: Some(email.clone()),
        password_hash: Some(password_hash),
        invite_code: req.invite_code,
        deactivated: true,
    };
    // A deactivated account announces nothing: activation emits #identity, #account and #sync.
    state
        .store()
        .create_account(account, RepoCommit::new(genesis), Vec::new(), Utc::now())
        .await?;
    let session = account::start_session(
        state,
        did,
        handle,
        Some(email),
        crate::auth::Scope::Access,
        None,
    )
    .await?;
    Ok(Session {
        status: Some("deactivated"),
        ..session
    })
}

/// The local account `did` and its repository signing key.
async fn account_and_key(
    state: &AppState,
    did: &Did,
) -> Result<(pds_store::Account, Keypair), XrpcError> {
    let account = state
        .store()
        .get_account(did)
        .await?
        .ok_or_else(|| XrpcError::invalid_request(format!("Could not find account: {did}")))?;
    let key = state
        .writer()
        .keys()
        .load(did)
        .map_err(|e| XrpcError::internal(format!("signing key: {e}")))?;
    Ok((account, key))
}

/// `getRecommendedDidCredentials`: what the DID document should say for this server to host
/// `did`.
pub async fn recommended_credentials(state: &AppState, did: &Did) -> Result<Value, XrpcError> {
    let (account, key) = account_and_key(state, did).await?;
    Ok(json!({
        "alsoKnownAs": [format!("at://{}", account.handle)],
        "verificationMethods": {ATPROTO_KEY_ID: key.public_key().did_key()},
        "rotationKeys": [state.secrets().plc_rotation_key.public_key().did_key()],
        "services": {
            ATPROTO_PDS_ID: {"type": ATPROTO_PDS_TYPE, "endpoint": state.config().public_url()},
        },
    }))
}

/// Refuses an operation that would not hand `did` to this server (the reference's checks and
/// messages).
fn check_points_here(
    state: &AppState,
    op: &PlcOp,
    signing_key: &str,
    handle: &Handle,
) -> Result<(), XrpcError> {
    let rotation = state.secrets().plc_rotation_key.public_key().did_key();
    if !op.rotation_keys.contains(&rotation) {
        return Err(XrpcError::invalid_request(
            "Rotation keys do not include server's rotation key",
        ));
    }
    let pds = op.services.get(ATPROTO_PDS_ID);
    if pds.map(|s| s.service_type.as_str()) != Some(ATPROTO_PDS_TYPE) {
        return Err(XrpcError::invalid_request(
            "Incorrect type on atproto_pds service",
        ));
    }
    if pds.map(|s| s.endpoint.as_str()) != Some(state.config().public_url().as_str()) {
        return Err(XrpcError::invalid_request(
            "Incorrect endpoint on atproto_pds service",
        ));
    }
    if op
        .verification_methods
        .get(ATPROTO_KEY_ID)
        .map(String::as_str)
        != Some(signing_key)
    {
        return Err(XrpcError::invalid_request("Incorrect signing key"));
    }
    if op.also_known_as.first() != Some(&format!("at://{handle}")) {
        return Err(XrpcError::invalid_request(
            "Incorrect handle in alsoKnownAs",
        ));
    }
    Ok(())
}

fn submit_error(e: PlcSubmitError) -> XrpcError {
    match e {
        PlcSubmitError::Rejected(m) => XrpcError::invalid_request(m),
        PlcSubmitError::Unavailable(m) => XrpcError::internal(m),
    }
}

/// `submitPlcOperation`: checks that `operation` hands `did` to this server, forwards it to the
/// PLC directory, and announces the change with `#identity`.
pub async fn submit_plc_operation(
    state: &AppState,
    did: &Did,
    operation: Value,
) -> Result<(), XrpcError> {
    let signed = SignedOp::from_json(operation)
        .map_err(|e| XrpcError::invalid_request(format!("Invalid operation: {e}")))?;
    let UnsignedOp::Operation(op) = &signed.op else {
        return Err(XrpcError::invalid_request(
            "Invalid operation: only plc_operation is accepted",
        ));
    };
    let (account, key) = account_and_key(state, did).await?;
    check_points_here(state, op, &key.public_key().did_key(), &account.handle)?;
    state
        .plc()
        .submit(did, &signed)
        .await
        .map_err(submit_error)?;
    if let Some(resolver) = state.resolver() {
        resolver.invalidate_did(did);
    }
    let identity = event(
        EventKind::Identity,
        vec![
            ("did", atp_data::Value::from(did.as_str())),
            ("handle", atp_data::Value::from(account.handle.as_str())),
        ],
    );
    state
        .store()
        .append_event(did, identity, Utc::now())
        .await?;
    Ok(())
}

/// signPlcOperation's input.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignPlcRequest {
    /// The one-time token from requestPlcOperationSignature.
    pub token: Option<String>,
    /// New rotation keys.
    pub rotation_keys: Option<Vec<String>>,
    /// New `alsoKnownAs`.
    pub also_known_as: Option<Vec<String>>,
    /// New verification methods (`{name: did:key}`).
    pub verification_methods: Option<Value>,
    /// New services (`{name: {type, endpoint}}`).
    pub services: Option<Value>,
}

fn did_keys(field: &str, keys: &[String]) -> Result<(), XrpcError> {
    match keys.iter().find(|k| PublicKey::from_did_key(k).is_err()) {
        Some(bad) => Err(XrpcError::invalid_request(format!(
            "{field}: {bad:?} is not a did:key"
        ))),
        None => Ok(()),
    }
}

/// The update of `last` that `req` asks for.
fn requested_update(
    last: &PlcData,
    prev: &atp_data::Cid,
    req: SignPlcRequest,
) -> Result<PlcOp, XrpcError> {
    let mut op = PlcOp::update_of(last, prev);
    if let Some(keys) = req.rotation_keys {
        did_keys("rotationKeys", &keys)?;
        op.rotation_keys = keys;
    }
    if let Some(aka) = req.also_known_as {
        op.also_known_as = aka;
    }
    if let Some(methods) = req.verification_methods {
        let methods: BTreeMap<String, String> = serde_json::from_value(methods)
            .map_err(|e| XrpcError::invalid_request(format!("verificationMethods: {e}")))?;
        did_keys(
            "verificationMethods",
            &methods.values().cloned().collect::<Vec<_>>(),
        )?;
        op.verification_methods = methods;
    }
    if let Some(services) = req.services {
        op.services = serde_json::from_value::<BTreeMap<String, PlcService>>(services)
            .map_err(|e| XrpcError::invalid_request(format!("services: {e}")))?;
    }
    Ok(op)
}

/// `signPlcOperation`: an update of `did`'s last PLC operation with the requested fields,
/// signed with this server's rotation key (returned as JSON, not submitted).
pub async fn sign_plc_operation(
    state: &AppState,
    did: &Did,
    req: SignPlcRequest,
) -> Result<Value, XrpcError> {
    let token = req.token.clone().ok_or_else(|| {
        XrpcError::invalid_request("email confirmation token required to sign PLC operations")
    })?;
    let (last, prev) = plc_last_op(state, did).await?;
    let data = PlcData::from_op(did, &last.op)
        .ok_or_else(|| XrpcError::invalid_request("Did is tombstoned"))?;
    let rotation = &state.secrets().plc_rotation_key;
    if !data
        .rotation_keys
        .contains(&rotation.public_key().did_key())
    {
        return Err(XrpcError::invalid_request(
            "This server's rotation key is not among the DID's rotation keys: it cannot sign \
             an operation for it",
        ));
    }
    let op = requested_update(&data, &prev, req)?;
    email_tokens::consume(state, did, EmailTokenPurpose::PlcOperation, &token).await?;
    let signed = UnsignedOp::Operation(op)
        .sign(rotation)
        .map_err(|e| XrpcError::internal(format!("signing the PLC operation: {e}")))?;
    Ok(json!({ "operation": signed.to_json() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> PlcData {
        let key = Keypair::generate(Curve::K256).public_key();
        let handle: Handle = "alice.test".parse().unwrap();
        let op = PlcOp::atproto(
            &key,
            &handle,
            "https://old.example",
            vec![key.did_key()],
            None,
        );
        PlcData::from_op(
            &"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap(),
            &UnsignedOp::Operation(op),
        )
        .unwrap()
    }

    #[test]
    fn updates_change_only_the_requested_fields() {
        let last = data();
        let prev = atp_data::cid::cid_for_cbor(b"\xa0");
        let same = requested_update(&last, &prev, SignPlcRequest::default()).unwrap();
        assert_eq!(same.rotation_keys, last.rotation_keys);
        assert_eq!(same.services, last.services);
        assert_eq!(same.prev, Some(prev.to_string()));
        let new_key = Keypair::generate(Curve::K256).public_key().did_key();
        let req = SignPlcRequest {
            verification_methods: Some(json!({"atproto": new_key})),
            services: Some(
                json!({"atproto_pds": {"type": ATPROTO_PDS_TYPE, "endpoint": "https://new.example"}}),
            ),
            ..Default::default()
        };
        let changed = requested_update(&last, &prev, req).unwrap();
        assert_eq!(changed.verification_methods["atproto"], new_key);
        assert_eq!(
            changed.services["atproto_pds"].endpoint,
            "https://new.example"
        );
        assert_eq!(changed.rotation_keys, last.rotation_keys);
        assert_eq!(changed.also_known_as, last.also_known_as);
        let bad = SignPlcRequest {
            rotation_keys: Some(vec!["not-a-key".into()]),
            ..Default::default()
        };
        assert!(requested_update(&last, &prev, bad).is_err());
    }
}
