//! `com.atproto.repo.*`: record writes (all through the one writer), record reads, and blob
//! uploads.
//!
//! Reads treat a taken-down or deactivated account as the reference does: as not hosted here
//! for getRecord (forwarded to the app view when one is configured, else `Could not locate
//! record`) and listRecords (`Could not find repo`), and through `assertRepoAvailability` for
//! describeRepo (`RepoTakendown`, `RepoDeactivated`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use atp_data::Cid;
use atp_lexicon::RecordValidity;
use atp_syntax::{Did, Handle, Nsid, RecordKey};
use pds_store::ListRecords;

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcJson, XrpcQuery, parse_param};
use crate::api::lexicon::prepare_record;
use crate::api::proxy::{self, upstream};
use crate::api::sync::repo_availability;
use crate::auth::AccessAuth;
use crate::service::blob;
use crate::service::writer::{Applied, WriteOp};
use crate::state::AppState;

/// The local account of a repo given as a handle or DID, whatever its status.
async fn find_account(
    state: &AppState,
    repo: &str,
) -> Result<Option<pds_store::Account>, XrpcError> {
    let store = state.store();
    Ok(if repo.starts_with("did:") {
        store
            .get_account(&parse_param::<Did>("repo", repo)?)
            .await?
    } else {
        let handle: Handle = parse_param("repo", &repo.to_ascii_lowercase())?;
        store.get_account_by_handle(&handle).await?
    })
}

/// The local account of a repo given as a handle or DID.
async fn resolve_account(state: &AppState, repo: &str) -> Result<pds_store::Account, XrpcError> {
    find_account(state, repo).await?.ok_or_else(|| {
        XrpcError::invalid_request(format!("Could not find repo: {repo}")).named("RepoNotFound")
    })
}

/// The DID of a repo given as a handle or DID if it is hosted here and active, for record
/// reads; `None` for an unknown, taken-down or deactivated account (the reference's
/// `getDidForActor`).
async fn hosted_repo(state: &AppState, repo: &str) -> Result<Option<Did>, XrpcError> {
    Ok(find_account(state, repo)
        .await?
        .filter(pds_store::Account::is_active)
        .map(|a| a.did))
}

/// The DID of a repo the caller may write: their own, and active.
async fn writable_repo(state: &AppState, auth: &AccessAuth, repo: &str) -> Result<Did, XrpcError> {
    let account = resolve_account(state, repo).await?;
    if account.did != auth.did {
        return Err(XrpcError::new(
            StatusCode::UNAUTHORIZED,
            "AuthenticationRequired",
            "Not authorized to write to this repo",
        ));
    }
    if account.takedown_ref.is_some() {
        return Err(XrpcError::account_takedown());
    }
    if !account.is_active() {
        // The reference's `checkDeactivated`: refused at authorization, 401.
        return Err(XrpcError::new(
            StatusCode::UNAUTHORIZED,
            "AccountDeactivated",
            "Account is deactivated",
        ));
    }
    Ok(account.did)
}

fn cid_param(name: &str, v: Option<&str>) -> Result<Option<Cid>, XrpcError> {
    v.map(|s| {
        atp_data::cid::parse(s)
            .map_err(|e| XrpcError::invalid_request(format!("Invalid {name}: {e}")))
    })
    .transpose()
}

fn commit_meta(applied: &Applied) -> Value {
    json!({"cid": applied.commit.to_string(), "rev": applied.rev})
}

/// The output of createRecord and putRecord: the one written record, its commit, and its
/// `validationStatus` (absent when validation was skipped, as the reference does).
fn single_write_output(applied: &Applied, status: Option<RecordValidity>) -> Value {
    let result = &applied.results[0];
    let mut out = json!({
        "uri": result.uri,
        "cid": result.cid.map(|c| c.to_string()),
        "commit": commit_meta(applied),
    });
    if let Some(status) = status {
        out["validationStatus"] = Value::from(status.as_str());
    }
    out
}

/// createRecord input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRecordInput {
    repo: String,
    collection: String,
    rkey: Option<String>,
    validate: Option<bool>,
    record: Value,
    swap_commit: Option<String>,
}

/// `com.atproto.repo.createRecord`.
pub async fn create_record(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<CreateRecordInput>,
) -> Result<Json<Value>, XrpcError> {
    let did = writable_repo(&state, &auth, &input.repo).await?;
    let collection: Nsid = parse_param("collection", &input.collection)?;
    let rkey = input
        .rkey
        .as_deref()
        .map(|r| parse_param("rkey", r))
        .transpose()?;
    let (record, status) = prepare_record(&state, &collection, &input.record, input.validate)?;
    let op = WriteOp::Create {
        collection,
        rkey,
        record,
    };
    let swap = cid_param("swapCommit", input.swap_commit.as_deref())?;
    let applied = state.writer().apply(&did, vec![op], swap).await?;
    Ok(Json(single_write_output(&applied, status)))
}

/// putRecord input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutRecordInput {
    repo: String,
    collection: String,
    rkey: String,
    validate: Option<bool>,
    record: Value,
    /// Absent: no check. `null`: the record must not exist yet (the lexicon's nullable swap).
    /// A CID: the record must currently have it.
    #[serde(default, deserialize_with = "present_or_null")]
    swap_record: Option<Option<String>>,
    swap_commit: Option<String>,
}

/// Keeps "present but null" apart from "absent" (with `#[serde(default)]`): absent → `None`,
/// `null` → `Some(None)`, a value → `Some(Some(v))`.
fn present_or_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// `com.atproto.repo.putRecord`.
pub async fn put_record(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<PutRecordInput>,
) -> Result<Json<Value>, XrpcError> {
    let did = writable_repo(&state, &auth, &input.repo).await?;
    let collection: Nsid = parse_param("collection", &input.collection)?;
    let rkey = parse_param("rkey", &input.rkey)?;
    let (record, status) = prepare_record(&state, &collection, &input.record, input.validate)?;
    let op = WriteOp::Put {
        collection,
        rkey,
        record,
        swap_record: match &input.swap_record {
            None => None,
            Some(swap) => Some(cid_param("swapRecord", swap.as_deref())?),
        },
    };
    let swap = cid_param("swapCommit", input.swap_commit.as_deref())?;
    let applied = state.writer().apply(&did, vec![op], swap).await?;
    Ok(Json(single_write_output(&applied, status)))
}

/// deleteRecord input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRecordInput {
    repo: String,
    collection: String,
    rkey: String,
    swap_record: Option<String>,
    swap_commit: Option<String>,
}

/// `com.atproto.repo.deleteRecord`: deleting a missing record succeeds without a commit.
pub async fn delete_record(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<DeleteRecordInput>,
) -> Result<Json<Value>, XrpcError> {
    let did = writable_repo(&state, &auth, &input.repo).await?;
    let collection: Nsid = parse_param("collection", &input.collection)?;
    let rkey: RecordKey = parse_param("rkey", &input.rkey)?;
    let swap_record = cid_param("swapRecord", input.swap_record.as_deref())?;
    let swap = cid_param("swapCommit", input.swap_commit.as_deref())?;
    let exists = state
        .store()
        .get_record(&did, &collection, &rkey)
        .await?
        .is_some();
    if !exists && swap_record.is_none() && swap.is_none() {
        return Ok(Json(json!({})));
    }
    let op = WriteOp::Delete {
        collection,
        rkey,
        swap_record: swap_record.map(Some),
    };
    let applied = state.writer().apply(&did, vec![op], swap).await?;
    Ok(Json(json!({"commit": commit_meta(&applied)})))
}

/// One applyWrites entry.
#[derive(Debug, Deserialize)]
pub struct ApplyWrite {
    #[serde(rename = "$type")]
    kind: String,
    collection: String,
    rkey: Option<String>,
    value: Option<Value>,
}

/// applyWrites input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyWritesInput {
    repo: String,
    validate: Option<bool>,
    writes: Vec<ApplyWrite>,
    swap_commit: Option<String>,
}

/// Most writes in one applyWrites call (the reference's limit).
pub const MAX_APPLY_WRITES: usize = 200;

/// One applyWrites entry as a write, with the validation status of its record (none for deletes).
fn apply_write_op(
    state: &AppState,
    w: &ApplyWrite,
    validate: Option<bool>,
) -> Result<(WriteOp, Option<RecordValidity>), XrpcError> {
    let collection: Nsid = parse_param("collection", &w.collection)?;
    let rkey = w
        .rkey
        .as_deref()
        .map(|r| parse_param::<RecordKey>("rkey", r))
        .transpose()?;
    let value = || {
        w.value
            .as_ref()
            .ok_or_else(|| XrpcError::invalid_request("write is missing its value"))
            .and_then(|r| prepare_record(state, &collection, r, validate))
    };
    let need_rkey = || {
        rkey.clone()
            .ok_or_else(|| XrpcError::invalid_request("write is missing its rkey"))
    };
    Ok(match w.kind.as_str() {
        "com.atproto.repo.applyWrites#create" => {
            let (record, status) = value()?;
            let rkey = rkey.clone();
            (
                WriteOp::Create {
                    collection,
                    rkey,
                    record,
                },
                status,
            )
        }
        "com.atproto.repo.applyWrites#update" => {
            let (record, status) = value()?;
            let rkey = need_rkey()?;
            (
                WriteOp::Update {
                    collection,
                    rkey,
                    record,
                },
                status,
            )
        }
        "com.atproto.repo.applyWrites#delete" => {
            let rkey = need_rkey()?;
            let swap_record = None;
            (
                WriteOp::Delete {
                    collection,
                    rkey,
                    swap_record,
                },
                None,
            )
        }
        other => {
            return Err(XrpcError::invalid_request(format!(
                "unknown write type {other:?}"
            )));
        }
    })
}

/// `com.atproto.repo.applyWrites`.
pub async fn apply_writes(
    State(state): State<AppState>,
    auth: AccessAuth,
    XrpcJson(input): XrpcJson<ApplyWritesInput>,
) -> Result<Json<Value>, XrpcError> {
    let did = writable_repo(&state, &auth, &input.repo).await?;
    if input.writes.len() > MAX_APPLY_WRITES {
        return Err(XrpcError::invalid_request("Too many writes. Max: 200"));
    }
    // Every write is prepared (and validated) before any is applied: one refusal refuses all.
    let (ops, statuses): (Vec<WriteOp>, Vec<Option<RecordValidity>>) = input
        .writes
        .iter()
        .map(|w| apply_write_op(&state, w, input.validate))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();
    let swap = cid_param("swapCommit", input.swap_commit.as_deref())?;
    let applied = state.writer().apply(&did, ops, swap).await?;
    let results: Vec<Value> = applied
        .results
        .iter()
        .zip(statuses)
        .map(|(r, status)| match r.action {
            "delete" => json!({"$type": "com.atproto.repo.applyWrites#deleteResult"}),
            action => {
                let mut out = json!({
                    "$type": format!("com.atproto.repo.applyWrites#{action}Result"),
                    "uri": r.uri, "cid": r.cid.map(|c| c.to_string()),
                });
                if let Some(status) = status {
                    out["validationStatus"] = Value::from(status.as_str());
                }
                out
            }
        })
        .collect();
    Ok(Json(
        json!({"commit": commit_meta(&applied), "results": results}),
    ))
}

/// getRecord parameters.
#[derive(Debug, Deserialize)]
pub struct GetRecordParams {
    repo: String,
    collection: String,
    rkey: String,
    cid: Option<String>,
}

/// `com.atproto.repo.getRecord`. A repository not hosted here, or not active, is asked of the
/// app view (as the reference's pipethrough, without credentials); without one configured it is
/// `Could not locate record`.
pub async fn get_record(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    XrpcQuery(p): XrpcQuery<GetRecordParams>,
) -> Result<Response, XrpcError> {
    let Some(did) = hosted_repo(&state, &p.repo).await? else {
        return record_elsewhere(&state, &headers, &uri).await;
    };
    let collection: Nsid = parse_param("collection", &p.collection)?;
    let rkey: RecordKey = parse_param("rkey", &p.rkey)?;
    let want = cid_param("cid", p.cid.as_deref())?;
    let record = state.store().get_record(&did, &collection, &rkey).await?;
    let record = record.filter(|r| r.takedown_ref.is_none() && want.is_none_or(|c| c == r.cid));
    let Some(record) = record else {
        return Err(XrpcError::invalid_request(format!(
            "Could not locate record: at://{did}/{collection}/{rkey}"
        ))
        .named("RecordNotFound"));
    };
    Ok(Json(record_json(&record)?).into_response())
}

/// getRecord of a repository not served here: forwarded to the app view (or the service an
/// `atproto-proxy` header names) with the caller's query, as the reference.
async fn record_elsewhere(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Response, XrpcError> {
    const LXM: &str = "com.atproto.repo.getRecord";
    if state.config().bsky_app_view.is_none() {
        return Err(XrpcError::invalid_request("Could not locate record"));
    }
    let target = proxy::proxy_target(state, headers, LXM).await?;
    let mut url = target.url.clone();
    url.set_path(&format!("/xrpc/{LXM}"));
    url.set_query(uri.query());
    let mut forwarded = upstream::forwarded_request_headers(headers, false);
    forwarded.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    let answer = state
        .upstream()
        .send(reqwest::Method::GET, url, target.trust, forwarded, None)
        .await?;
    Ok(if answer.status().as_u16() >= 400 {
        upstream::UpstreamFailure::read(answer)
            .await
            .into_response()
    } else {
        upstream::stream_response(answer)
    })
}

fn record_json(r: &pds_store::StoredRecord) -> Result<Value, XrpcError> {
    let value = atp_data::cbor::from_slice(&r.bytes).map_err(XrpcError::internal)?;
    Ok(json!({"uri": r.uri, "cid": r.cid.to_string(), "value": atp_data::json::to_json(&value)}))
}

/// listRecords parameters.
#[derive(Debug, Deserialize)]
pub struct ListRecordsParams {
    repo: String,
    collection: String,
    limit: Option<usize>,
    cursor: Option<String>,
    reverse: Option<bool>,
}

/// `com.atproto.repo.listRecords`.
pub async fn list_records(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<ListRecordsParams>,
) -> Result<Json<Value>, XrpcError> {
    let did = hosted_repo(&state, &p.repo)
        .await?
        .ok_or_else(|| XrpcError::invalid_request(format!("Could not find repo: {}", p.repo)))?;
    let collection: Nsid = parse_param("collection", &p.collection)?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(XrpcError::invalid_request(
            "limit must be between 1 and 100",
        ));
    }
    let page = ListRecords {
        limit,
        cursor: p
            .cursor
            .as_deref()
            .map(|c| parse_param("cursor", c))
            .transpose()?,
        reverse: p.reverse.unwrap_or(false),
    };
    let records = state.store().list_records(&did, &collection, page).await?;
    let cursor = (records.len() == limit)
        .then(|| records.last().map(|r| r.rkey.to_string()))
        .flatten();
    let records = records
        .iter()
        .filter(|r| r.takedown_ref.is_none())
        .map(record_json)
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = json!({"records": records});
    if let Some(cursor) = cursor {
        out["cursor"] = Value::from(cursor);
    }
    Ok(Json(out))
}

/// describeRepo parameters.
#[derive(Debug, Deserialize)]
pub struct DescribeRepoParams {
    repo: String,
}

/// `com.atproto.repo.describeRepo`: for everyone, the owner included, only an active
/// repository (the reference's `assertRepoAvailability(ctx, repo, false)`).
pub async fn describe_repo(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<DescribeRepoParams>,
) -> Result<Json<Value>, XrpcError> {
    let account = repo_availability(find_account(&state, &p.repo).await?, &p.repo, false)?;
    let did = account.did.clone();
    let collections: Vec<String> = state
        .store()
        .list_collections(&did)
        .await?
        .iter()
        .map(|c| c.to_string())
        .collect();
    Ok(Json(json!({
        "handle": account.handle.as_str(),
        "did": did.as_str(),
        "didDoc": {},
        "collections": collections,
        "handleIsCorrect": true,
    })))
}

/// `com.atproto.repo.uploadBlob`: streams the body to a temporary file, hashing it. Refused to
/// a taken-down account (`AccountTakedown`), as the reference's `checkTakedown`; a deactivated
/// one may upload (an account moving in does).
pub async fn upload_blob(
    State(state): State<AppState>,
    auth: AccessAuth,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, XrpcError> {
    auth.check_takedown(&state).await?;
    let mime_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && *v != "*/*")
        .unwrap_or("application/octet-stream")
        .to_owned();
    let stream = body
        .into_data_stream()
        .map(|c| c.map_err(std::io::Error::other));
    let blob = blob::upload(&state, &auth.did, mime_type, stream).await?;
    Ok(Json(
        json!({"blob": atp_data::json::to_json(&blob.to_value())}),
    ))
}
