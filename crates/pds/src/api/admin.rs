//! `com.atproto.admin.*` (HTTP basic auth `admin:<PDS_ADMIN_PASSWORD>`, see [`AdminAuth`]):
//! account views and search, invite codes, handle and password changes, takedowns
//! (`updateSubjectStatus` / `getSubjectStatus` for accounts, records and blobs) and deletion.
//!
//! An unknown account answers `400 NotFound` ("Account not found"), as the reference's
//! getAccountInfo does; disabling or enabling the invites of an unknown account, or taking down
//! a record or blob that does not exist, changes nothing and succeeds, as in the reference.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use atp_syntax::{AtUri, Did};
use pds_store::{InviteCode, InviteSort, StoreError};

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcJson, XrpcQuery, page_limit, parse_param};
pub use crate::api::server::AdminAuth;
use crate::service::account::AccountError;
use crate::service::admin::{self, AccountInfo, StatusAttr, Subject};
use crate::service::{account_delete, handle};
use crate::state::AppState;

const REPO_REF: &str = "com.atproto.admin.defs#repoRef";
const STRONG_REF: &str = "com.atproto.repo.strongRef";
const REPO_BLOB_REF: &str = "com.atproto.admin.defs#repoBlobRef";

fn datetime(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn account_not_found() -> XrpcError {
    XrpcError::invalid_request("Account not found").named("NotFound")
}

/// Maps "no such account" to `NotFound`, everything else as usual.
fn admin_error(e: AccountError) -> XrpcError {
    match e {
        AccountError::Store(StoreError::AccountNotFound { .. }) => account_not_found(),
        other => other.into(),
    }
}

/// A `com.atproto.server.defs#inviteCode`.
pub(crate) fn invite_code_json(c: &InviteCode) -> Value {
    let uses: Vec<Value> = c
        .uses
        .iter()
        .map(|u| json!({"usedBy": u.used_by, "usedAt": datetime(&u.used_at)}))
        .collect();
    json!({
        "code": c.code,
        "available": c.available_uses,
        "disabled": c.disabled,
        "forAccount": c.for_account,
        "createdBy": c.created_by,
        "createdAt": datetime(&c.created_at),
        "uses": uses,
    })
}

/// A `com.atproto.admin.defs#accountView`.
fn account_view(info: &AccountInfo) -> Value {
    let a = &info.account;
    let mut view = Map::new();
    view.insert("did".into(), json!(a.did.as_str()));
    view.insert("handle".into(), json!(a.handle.as_str()));
    if let Some(email) = &a.email {
        view.insert("email".into(), json!(email));
    }
    view.insert("indexedAt".into(), json!(datetime(&a.created_at)));
    if let Some(t) = &a.email_confirmed_at {
        view.insert("emailConfirmedAt".into(), json!(datetime(t)));
    }
    if let Some(code) = &info.invited_by {
        view.insert("invitedBy".into(), invite_code_json(code));
    }
    let invites: Vec<Value> = info.invites.iter().map(invite_code_json).collect();
    view.insert("invites".into(), Value::Array(invites));
    view.insert("invitesDisabled".into(), json!(a.invites_disabled));
    if let Some(t) = &a.deactivated_at {
        view.insert("deactivatedAt".into(), json!(datetime(t)));
    }
    Value::Object(view)
}

/// Parameters of the queries that take one `did`.
#[derive(Debug, Deserialize)]
pub struct DidParams {
    did: String,
}

/// `com.atproto.admin.getAccountInfo`.
pub async fn get_account_info(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcQuery(p): XrpcQuery<DidParams>,
) -> Result<Json<Value>, XrpcError> {
    let did: Did = parse_param("did", &p.did)?;
    let info = admin::account_info(&state, &did)
        .await?
        .ok_or_else(account_not_found)?;
    Ok(Json(account_view(&info)))
}

/// `com.atproto.admin.getAccountInfos`: the accounts that exist among `dids` (repeated).
pub async fn get_account_infos(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcQuery(pairs): XrpcQuery<Vec<(String, String)>>,
) -> Result<Json<Value>, XrpcError> {
    let dids = pairs
        .iter()
        .filter(|(name, _)| name == "dids")
        .map(|(_, value)| parse_param::<Did>("dids", value))
        .collect::<Result<Vec<_>, _>>()?;
    if dids.is_empty() {
        return Err(XrpcError::invalid_request(
            "Error: Params must have the property \"dids\"",
        ));
    }
    let infos = admin::account_infos(&state, &dids).await?;
    let infos: Vec<Value> = infos.iter().map(account_view).collect();
    Ok(Json(json!({ "infos": infos })))
}

/// searchAccounts parameters.
#[derive(Debug, Deserialize)]
pub struct SearchAccountsParams {
    email: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// `com.atproto.admin.searchAccounts`: accounts ordered by DID, optionally those whose email
/// contains `email`; the cursor is the last DID of a full page.
pub async fn search_accounts(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcQuery(p): XrpcQuery<SearchAccountsParams>,
) -> Result<Json<Value>, XrpcError> {
    let limit = page_limit(p.limit, 50, 100)?;
    let after: Option<Did> = p
        .cursor
        .as_deref()
        .map(|c| parse_param("cursor", c))
        .transpose()?;
    let email = p.email.as_deref().filter(|e| !e.is_empty());
    let infos = admin::search_accounts(&state, email, after.as_ref(), limit).await?;
    let mut out = json!({ "accounts": infos.iter().map(account_view).collect::<Vec<_>>() });
    if infos.len() == limit
        && let Some(last) = infos.last()
    {
        out["cursor"] = json!(last.account.did.as_str());
    }
    Ok(Json(out))
}

/// getInviteCodes parameters.
#[derive(Debug, Deserialize)]
pub struct GetInviteCodesParams {
    sort: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `com.atproto.admin.getInviteCodes`: every code, newest (`recent`) or most used (`usage`)
/// first.
pub async fn get_invite_codes(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcQuery(p): XrpcQuery<GetInviteCodesParams>,
) -> Result<Json<Value>, XrpcError> {
    let sort = match p.sort.as_deref().unwrap_or("recent") {
        "recent" => InviteSort::Recent,
        "usage" => InviteSort::Usage,
        other => {
            return Err(XrpcError::invalid_request(format!(
                "unknown sort method: {other}"
            )));
        }
    };
    let limit = page_limit(p.limit, 100, 500)?;
    let (codes, cursor) =
        admin::list_invite_codes(&state, sort, p.cursor.as_deref(), limit).await?;
    let mut out = json!({ "codes": codes.iter().map(invite_code_json).collect::<Vec<_>>() });
    if let Some(cursor) = cursor {
        out["cursor"] = json!(cursor);
    }
    Ok(Json(out))
}

/// disableInviteCodes input.
#[derive(Debug, Deserialize)]
pub struct DisableInviteCodesInput {
    #[serde(default)]
    codes: Vec<String>,
    #[serde(default)]
    accounts: Vec<String>,
}

/// `com.atproto.admin.disableInviteCodes`.
pub async fn disable_invite_codes(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcJson(input): XrpcJson<DisableInviteCodesInput>,
) -> Result<(), XrpcError> {
    admin::disable_invite_codes(&state, input.codes, input.accounts).await?;
    Ok(())
}

/// disableAccountInvites / enableAccountInvites input.
#[derive(Debug, Deserialize)]
pub struct AccountInvitesInput {
    account: String,
    /// Accepted and ignored, as the reference does.
    #[allow(dead_code)]
    note: Option<String>,
}

/// `com.atproto.admin.disableAccountInvites`.
pub async fn disable_account_invites(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcJson(input): XrpcJson<AccountInvitesInput>,
) -> Result<(), XrpcError> {
    let did: Did = parse_param("account", &input.account)?;
    admin::set_invites_disabled(&state, &did, true).await?;
    Ok(())
}

/// `com.atproto.admin.enableAccountInvites`.
pub async fn enable_account_invites(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcJson(input): XrpcJson<AccountInvitesInput>,
) -> Result<(), XrpcError> {
    let did: Did = parse_param("account", &input.account)?;
    admin::set_invites_disabled(&state, &did, false).await?;
    Ok(())
}

/// updateAccountHandle input.
#[derive(Debug, Deserialize)]
pub struct UpdateAccountHandleInput {
    did: String,
    handle: String,
}

/// `com.atproto.admin.updateAccountHandle`: as `identity.updateHandle` for the account (PLC
/// update, `#identity`).
pub async fn update_account_handle(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcJson(input): XrpcJson<UpdateAccountHandleInput>,
) -> Result<(), XrpcError> {
    let did: Did = parse_param("did", &input.did)?;
    if state.store().get_account(&did).await?.is_none() {
        return Err(account_not_found());
    }
    handle::update_handle(&state, &did, &input.handle)
        .await
        .map_err(admin_error)?;
    Ok(())
}

/// updateAccountPassword input.
#[derive(Debug, Deserialize)]
pub struct UpdateAccountPasswordInput {
    did: String,
    password: String,
}

/// `com.atproto.admin.updateAccountPassword`: also revokes the account's sessions.
pub async fn update_account_password(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcJson(input): XrpcJson<UpdateAccountPasswordInput>,
) -> Result<(), XrpcError> {
    let did: Did = parse_param("did", &input.did)?;
    if input.password.is_empty() {
        return Err(XrpcError::invalid_request("Password must not be empty"));
    }
    admin::update_password(&state, &did, input.password)
        .await
        .map_err(admin_error)?;
    Ok(())
}

/// deleteAccount input.
#[derive(Debug, Deserialize)]
pub struct DeleteAccountInput {
    did: String,
}

/// `com.atproto.admin.deleteAccount`.
pub async fn delete_account(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcJson(input): XrpcJson<DeleteAccountInput>,
) -> Result<(), XrpcError> {
    let did: Did = parse_param("did", &input.did)?;
    account_delete::delete_account(&state, &did)
        .await
        .map_err(admin_error)?;
    Ok(())
}

/// A `statusAttr` as sent.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusAttrInput {
    applied: bool,
    #[serde(rename = "ref")]
    reference: Option<String>,
}

impl StatusAttrInput {
    fn to_attr(&self) -> StatusAttr {
        StatusAttr {
            applied: self.applied,
            reference: self.reference.clone(),
        }
    }
}

fn status_attr_json(attr: &StatusAttr) -> Value {
    let mut out = json!({"applied": attr.applied});
    if let Some(r) = &attr.reference {
        out["ref"] = json!(r);
    }
    out
}

fn string_field<'a>(subject: &'a Value, name: &str) -> Result<&'a str, XrpcError> {
    subject[name].as_str().ok_or_else(|| {
        XrpcError::invalid_request(format!("subject must have the property \"{name}\""))
    })
}

fn parse_cid(name: &str, value: &str) -> Result<atp_data::Cid, XrpcError> {
    atp_data::cid::parse(value)
        .map_err(|e| XrpcError::invalid_request(format!("Invalid {name}: {e}")))
}

/// The subject of an updateSubjectStatus input, by its `$type`.
async fn parse_subject(state: &AppState, subject: &Value) -> Result<Subject, XrpcError> {
    match subject["$type"].as_str() {
        Some(REPO_REF) => Ok(Subject::Repo(parse_param(
            "did",
            string_field(subject, "did")?,
        )?)),
        Some(STRONG_REF) => {
            let uri: AtUri = parse_param("uri", string_field(subject, "uri")?)?;
            parse_cid("cid", string_field(subject, "cid")?)?;
            Ok(Subject::record(state, &uri).await?)
        }
        Some(REPO_BLOB_REF) => Ok(Subject::Blob {
            did: parse_param("did", string_field(subject, "did")?)?,
            cid: parse_cid("cid", string_field(subject, "cid")?)?,
        }),
        _ => Err(XrpcError::invalid_request("Invalid subject")),
    }
}

/// updateSubjectStatus input.
#[derive(Debug, Deserialize)]
pub struct UpdateSubjectStatusInput {
    subject: Value,
    takedown: Option<StatusAttrInput>,
    deactivated: Option<StatusAttrInput>,
}

/// `com.atproto.admin.updateSubjectStatus`: takedowns of accounts, records and blobs, and
/// (de)activation of accounts; answers with the subject and takedown as given.
pub async fn update_subject_status(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcJson(input): XrpcJson<UpdateSubjectStatusInput>,
) -> Result<Json<Value>, XrpcError> {
    let subject = parse_subject(&state, &input.subject).await?;
    let takedown = input.takedown.as_ref().map(StatusAttrInput::to_attr);
    let deactivated = input.deactivated.as_ref().map(StatusAttrInput::to_attr);
    admin::update_subject_status(&state, &subject, takedown.as_ref(), deactivated.as_ref())
        .await
        .map_err(admin_error)?;
    let mut out = json!({ "subject": input.subject });
    if let Some(t) = &takedown {
        out["takedown"] = status_attr_json(t);
    }
    Ok(Json(out))
}

/// getSubjectStatus parameters.
#[derive(Debug, Deserialize)]
pub struct GetSubjectStatusParams {
    did: Option<String>,
    uri: Option<String>,
    blob: Option<String>,
}

/// `com.atproto.admin.getSubjectStatus`: a blob (with `did`), a record (`uri`) or an account
/// (`did`), in that order of precedence, as the reference.
pub async fn get_subject_status(
    State(state): State<AppState>,
    _admin: AdminAuth,
    XrpcQuery(p): XrpcQuery<GetSubjectStatusParams>,
) -> Result<Json<Value>, XrpcError> {
    let did: Option<Did> = p
        .did
        .as_deref()
        .map(|d| parse_param("did", d))
        .transpose()?;
    let (subject, mut subject_json) = match (&p.blob, &p.uri, did) {
        (Some(blob), _, did) => {
            let did = did.ok_or_else(|| {
                XrpcError::invalid_request("Must provide a did to request blob state")
            })?;
            let cid = parse_cid("blob", blob)?;
            let json = json!({"$type": REPO_BLOB_REF, "did": did.as_str(), "cid": cid.to_string()});
            (Subject::Blob { did, cid }, json)
        }
        (None, Some(uri), _) => {
            let uri: AtUri = parse_param("uri", uri)?;
            let subject = Subject::record(&state, &uri).await?;
            let json = json!({"$type": STRONG_REF, "uri": uri.as_str()});
            (subject, json)
        }
        (None, None, Some(did)) => {
            let json = json!({"$type": REPO_REF, "did": did.as_str()});
            (Subject::Repo(did), json)
        }
        (None, None, None) => return Err(XrpcError::invalid_request("No provided subject")),
    };
    let status = admin::subject_status(&state, &subject)
        .await?
        .ok_or_else(|| XrpcError::invalid_request("Subject not found").named("NotFound"))?;
    if let Some(cid) = &status.record_cid {
        subject_json["cid"] = json!(cid.to_string());
    }
    let mut out = json!({
        "subject": subject_json,
        "takedown": status_attr_json(&status.takedown),
    });
    if let Some(d) = &status.deactivated {
        out["deactivated"] = status_attr_json(d);
    }
    Ok(Json(out))
}
