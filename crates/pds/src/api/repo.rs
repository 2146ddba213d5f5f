//! `com.atproto.repo.*`: record writes (all through the one writer), record reads, and blob
//! uploads.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use atp_data::Cid;
use atp_syntax::{Did, Handle, Nsid, RecordKey};
use pds_store::ListRecords;

use crate::api::error::XrpcError;
use crate::api::extract::{XrpcJson, XrpcQuery, parse_param};
use crate::auth::AccessAuth;
use crate::service::blob;
use crate::service::writer::{Applied, WriteOp};
use crate::state::AppState;

/// The local account of a repo given as a handle or DID.
async fn resolve_account(state: &AppState, repo: &str) -> Result<pds_store::Account, XrpcError> {
    let store = state.store();
    let account = if repo.starts_with("did:") {
        store
            .get_account(&parse_param::<Did>("repo", repo)?)
            .await?
    } else {
        let handle: Handle = parse_param("repo", &repo.to_ascii_lowercase())?;
        store.get_account_by_handle(&handle).await?
    };
    account.ok_or_else(|| {
        XrpcError::invalid_request(format!("Could not find repo: {repo}")).named("RepoNotFound")
    })
}

/// A repo given as a handle or DID, resolved to a local account's DID.
pub async fn resolve_repo(state: &AppState, repo: &str) -> Result<Did, XrpcError> {
    Ok(resolve_account(state, repo).await?.did)
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
    if !account.is_active() {
        return Err(
            XrpcError::invalid_request(format!("Account is deactivated: {}", account.did))
                .named("RepoDeactivated"),
        );
    }
    Ok(account.did)
}

/// A record from JSON; its `$type` must name the collection (as the reference checks).
fn record_value(collection: &str, record: &Value) -> Result<atp_data::Value, XrpcError> {
    match record.get("$type").and_then(Value::as_str) {
        None => return Err(XrpcError::invalid_request("No $type provided")),
        Some(t) if t != collection => {
            return Err(XrpcError::invalid_request(format!(
                "Invalid $type: expected {collection}, got {t}"
            )));
        }
        Some(_) => {}
    }
    atp_data::json::record_from_json(record)
        .map_err(|e| XrpcError::invalid_request(format!("Invalid record: {e}")))
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

/// The output of createRecord and putRecord: the one written record and its commit.
fn single_write_output(applied: &Applied) -> Value {
    let result = &applied.results[0];
    json!({
        "uri": result.uri,
        "cid": result.cid.map(|c| c.to_string()),
        "commit": commit_meta(applied),
        "validationStatus": "unknown",
    })
}

/// createRecord input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRecordInput {
    repo: String,
    collection: String,
    rkey: Option<String>,
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
    let op = WriteOp::Create {
        collection: parse_param("collection", &input.collection)?,
        rkey: input
            .rkey
            .as_deref()
            .map(|r| parse_param("rkey", r))
            .transpose()?,
        record: record_value(&input.collection, &input.record)?,
    };
    let swap = cid_param("swapCommit", input.swap_commit.as_deref())?;
    let applied = state.writer().apply(&did, vec![op], swap).await?;
    Ok(Json(single_write_output(&applied)))
}

/// putRecord input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutRecordInput {
    repo: String,
    collection: String,
    rkey: String,
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
    let op = WriteOp::Put {
        collection: parse_param("collection", &input.collection)?,
        rkey: parse_param("rkey", &input.rkey)?,
        record: record_value(&input.collection, &input.record)?,
        swap_record: match &input.swap_record {
            None => None,
            Some(swap) => Some(cid_param("swapRecord", swap.as_deref())?),
        },
    };
    let swap = cid_param("swapCommit", input.swap_commit.as_deref())?;
    let applied = state.writer().apply(&did, vec![op], swap).await?;
    Ok(Json(single_write_output(&applied)))
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
    writes: Vec<ApplyWrite>,
    swap_commit: Option<String>,
}

/// Most writes in one applyWrites call (the reference's limit).
pub const MAX_APPLY_WRITES: usize = 200;

fn apply_write_op(w: &ApplyWrite) -> Result<WriteOp, XrpcError> {
    let collection = parse_param("collection", &w.collection)?;
    let rkey = w
        .rkey
        .as_deref()
        .map(|r| parse_param::<RecordKey>("rkey", r))
        .transpose()?;
    let value = || {
        w.value
            .as_ref()
            .ok_or_else(|| XrpcError::invalid_request("write is missing its value"))
            .and_then(|r| record_value(&w.collection, r))
    };
    let need_rkey = || {
        rkey.clone()
            .ok_or_else(|| XrpcError::invalid_request("write is missing its rkey"))
    };
    Ok(match w.kind.as_str() {
        "com.atproto.repo.applyWrites#create" => WriteOp::Create {
            collection,
            rkey: rkey.clone(),
            record: value()?,
        },
        "com.atproto.repo.applyWrites#update" => WriteOp::Update {
            collection,
            rkey: need_rkey()?,
            record: value()?,
        },
        "com.atproto.repo.applyWrites#delete" => WriteOp::Delete {
            collection,
            rkey: need_rkey()?,
            swap_record: None,
        },
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
    let ops = input
        .writes
        .iter()
        .map(apply_write_op)
        .collect::<Result<Vec<_>, _>>()?;
    let swap = cid_param("swapCommit", input.swap_commit.as_deref())?;
    let applied = state.writer().apply(&did, ops, swap).await?;
    let results: Vec<Value> = applied
        .results
        .iter()
        .map(|r| match r.action {
            "delete" => json!({"$type": "com.atproto.repo.applyWrites#deleteResult"}),
            action => json!({
                "$type": format!("com.atproto.repo.applyWrites#{action}Result"),
                "uri": r.uri, "cid": r.cid.map(|c| c.to_string()), "validationStatus": "unknown",
            }),
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

/// `com.atproto.repo.getRecord`.
pub async fn get_record(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<GetRecordParams>,
) -> Result<Json<Value>, XrpcError> {
    let did = resolve_repo(&state, &p.repo).await?;
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
    Ok(Json(record_json(&record)?))
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
    let did = resolve_repo(&state, &p.repo).await?;
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

/// `com.atproto.repo.describeRepo`.
pub async fn describe_repo(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<DescribeRepoParams>,
) -> Result<Json<Value>, XrpcError> {
    let did = resolve_repo(&state, &p.repo).await?;
    let account = state
        .store()
        .get_account(&did)
        .await?
        .ok_or_else(|| XrpcError::internal("account vanished"))?;
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

/// `com.atproto.repo.uploadBlob`: streams the body to a temporary file, hashing it.
pub async fn upload_blob(
    State(state): State<AppState>,
    auth: AccessAuth,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, XrpcError> {
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
