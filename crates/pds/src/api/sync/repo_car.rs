//! The endpoints answering with a CAR: getRepo, getCheckout (deprecated), getRecord, getBlocks.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use atp_data::Cid;
use atp_data::car::CarWriter;
use atp_repo::{ArenaExport, BlockMap, BlockStore, Mst};
use atp_syntax::{Did, Nsid, RecordKey, Tid};

use super::car_stream::{CAR_MIME, car_response};
use super::{DidParams, Viewer, assert_repo_availability};
use crate::api::error::XrpcError;
use crate::api::extract::{XrpcQuery, parse_param};
use crate::state::AppState;
use pds_store::RepoSnapshot;

/// getRepo parameters.
#[derive(Debug, Deserialize)]
pub struct GetRepoParams {
    did: String,
    since: Option<String>,
}

fn repo_not_found(did: &Did) -> XrpcError {
    XrpcError::invalid_request(format!("Could not find repo for DID: {did}")).named("RepoNotFound")
}

/// `com.atproto.sync.getRepo`: the whole repository as a CAR (commit first, then the tree in
/// walk order, each block once), or with `since` the commit and every block stored by a later
/// revision. Streamed; a repository that fits in memory is read at once and walked on several
/// threads while it is written.
pub async fn get_repo(
    State(state): State<AppState>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<GetRepoParams>,
) -> Result<Response, XrpcError> {
    let did: Did = parse_param("did", &p.did)?;
    let since: Option<Tid> = p
        .since
        .as_deref()
        .map(|s| parse_param("since", s))
        .transpose()?;
    stream_repo(&state, &viewer, did, since).await
}

/// `com.atproto.sync.getCheckout` (deprecated): the whole repository as a CAR, like getRepo.
pub async fn get_checkout(
    State(state): State<AppState>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<DidParams>,
) -> Result<Response, XrpcError> {
    let did: Did = parse_param("did", &p.did)?;
    stream_repo(&state, &viewer, did, None).await
}

/// Most bytes of blocks a full export reads into memory at once (a repository of about 150,000
/// records); larger repositories are walked from the store in batches.
const SNAPSHOT_BYTES: usize = 24 << 20;
/// Full exports that may hold a repository in memory at the same time; others walk the store.
static SNAPSHOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn stream_repo(
    state: &AppState,
    viewer: &Viewer,
    did: Did,
    since: Option<Tid>,
) -> Result<Response, XrpcError> {
    assert_repo_availability(state, &did, viewer).await?;
    if since.is_none()
        && let Ok(permit) = SNAPSHOTS.try_acquire()
    {
        // The root and every block at once (two connections, one state), then the lookup
        // table and the commit block checked before answering: a missing or broken commit is
        // an error status. The tree is checked as it is written (`ArenaExport::stream`,
        // overlapping the walk with the transfer): a broken block further down ends the body
        // with an error, so the client sees a failed transfer, never a short CAR.
        match state.store().repo_snapshot(&did, SNAPSHOT_BYTES).await? {
            None => return Err(repo_not_found(&did)),
            Some(RepoSnapshot::Loaded { root, blocks }) => {
                let commit = root.commit;
                // One blocking task checks the commit (building the lookup table), says so,
                // then streams; the answer waits for the check.
                let (checked_tx, checked) = tokio::sync::oneshot::channel();
                let response = car_response(move |out| async move {
                    // Held until the blocks are written and freed.
                    let _permit = permit;
                    if let Err(e) = ArenaExport::check_commit(&blocks, &commit) {
                        let message = e.to_string();
                        let _ = checked_tx.send(Err(e));
                        // The answer is an error status: this body is dropped unread.
                        out.closed().await;
                        return Err(message);
                    }
                    let _ = checked_tx.send(Ok(()));
                    ArenaExport::stream(&blocks, &commit, out)
                        .map(|(out, _)| out)
                        .map_err(|e| e.to_string())
                });
                return match checked.await {
                    Ok(Ok(())) => Ok(response),
                    Ok(Err(e)) => Err(XrpcError::internal(e)),
                    Err(e) => Err(XrpcError::internal(e)),
                };
            }
            Some(RepoSnapshot::TooLarge { .. }) => {}
        }
    }
    let root = state
        .store()
        .repo_root(&did)
        .await?
        .ok_or_else(|| repo_not_found(&did))?;
    let blocks = state.store().block_store(&did);
    Ok(car_response(move |out| async move {
        let written = match since {
            Some(since) => atp_repo::export_car_since(&blocks, &root.commit, &since, out).await,
            None => atp_repo::export_car(&blocks, &root.commit, out).await,
        };
        written.map(|(out, _)| out)
    }))
}

/// getRecord parameters.
#[derive(Debug, Deserialize)]
pub struct GetRecordParams {
    did: String,
    collection: String,
    rkey: String,
}

/// `com.atproto.sync.getRecord`: a CAR rooted at the current commit holding the commit, the MST
/// nodes on the record's path and the record. As in the reference, a record that does not exist
/// gives the proof of its absence (the commit and the path nodes); a taken-down record is
/// `RecordNotFound`.
pub async fn get_record(
    State(state): State<AppState>,
    viewer: Viewer,
    XrpcQuery(p): XrpcQuery<GetRecordParams>,
) -> Result<Response, XrpcError> {
    let did: Did = parse_param("did", &p.did)?;
    let collection: Nsid = parse_param("collection", &p.collection)?;
    let rkey: RecordKey = parse_param("rkey", &p.rkey)?;
    assert_repo_availability(&state, &did, &viewer).await?;
    let indexed = state.store().get_record(&did, &collection, &rkey).await?;
    if indexed.is_some_and(|r| r.takedown_ref.is_some()) {
        return Err(XrpcError::invalid_request(format!(
            "Could not locate record: at://{did}/{collection}/{rkey}"
        ))
        .named("RecordNotFound"));
    }
    let head = state
        .store()
        .repo_head(&did)
        .await?
        .ok_or_else(|| repo_not_found(&did))?;
    let store = state.store().block_store(&did);
    let key = format!("{collection}/{rkey}");
    let tree = Mst::load(*head.commit.data());
    let mut blocks = atp_repo::record_proof(&tree, &store, &key)
        .await
        .map_err(XrpcError::internal)?;
    if let Some(cid) = tree.get(&store, &key).await.map_err(XrpcError::internal)? {
        let bytes = store
            .get_block(&cid)
            .await
            .map_err(XrpcError::internal)?
            .ok_or_else(|| XrpcError::internal(format!("record block {cid} is missing")))?;
        blocks.insert(cid, bytes);
    }
    let commit = store
        .get_block(&head.cid)
        .await
        .map_err(XrpcError::internal)?
        .ok_or_else(|| XrpcError::internal(format!("commit block {} is missing", head.cid)))?;
    blocks.insert(head.cid, commit);
    car_bytes(&[head.cid], &blocks)
}

/// getBlocks parameters: `did` and repeated `cids`.
type GetBlocksParams = Vec<(String, String)>;

/// `com.atproto.sync.getBlocks`: the requested blocks of the repository, as a CAR with no root.
/// Any block missing fails the whole request (`BlockNotFound`), as in the reference.
pub async fn get_blocks(
    State(state): State<AppState>,
    viewer: Viewer,
    XrpcQuery(pairs): XrpcQuery<GetBlocksParams>,
) -> Result<Response, XrpcError> {
    let mut did = None;
    let mut cids: Vec<Cid> = Vec::new();
    for (name, value) in &pairs {
        match name.as_str() {
            "did" => did = Some(parse_param::<Did>("did", value)?),
            "cids" => cids.push(
                atp_data::cid::parse(value)
                    .map_err(|e| XrpcError::invalid_request(format!("Invalid cids: {e}")))?,
            ),
            _ => {}
        }
    }
    let did = did.ok_or_else(|| {
        XrpcError::invalid_request("Error: Params must have the property \"did\"")
    })?;
    if cids.is_empty() {
        return Err(XrpcError::invalid_request(
            "Error: Params must have the property \"cids\"",
        ));
    }
    assert_repo_availability(&state, &did, &viewer).await?;
    let found = state
        .store()
        .block_store(&did)
        .get_blocks(&cids)
        .await
        .map_err(XrpcError::internal)?;
    if !found.missing.is_empty() {
        let missing: Vec<String> = found.missing.iter().map(|c| c.to_string()).collect();
        return Err(XrpcError::invalid_request(format!(
            "Could not find cids: {}",
            missing.join(",")
        ))
        .named("BlockNotFound"));
    }
    car_bytes(&[], &found.blocks)
}

/// A small CAR built in memory.
fn car_bytes(roots: &[Cid], blocks: &BlockMap) -> Result<Response, XrpcError> {
    let mut car = CarWriter::new(Vec::new(), roots).map_err(XrpcError::internal)?;
    for (cid, bytes) in blocks {
        car.write_block(cid, bytes).map_err(XrpcError::internal)?;
    }
    let body = car.finish().map_err(XrpcError::internal)?;
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CAR_MIME));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::{Value, json};

    use crate::api::tests::{Harness, harness, post_record};

    async fn get_repo(h: &Harness, did: &str) -> (StatusCode, Result<Vec<u8>, String>) {
        let res = h
            .raw(
                Request::builder()
                    .uri(format!("/xrpc/com.atproto.sync.getRepo?did={did}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string());
        (status, body)
    }

    /// Flips the last byte of the account's block `cid`.
    fn corrupt(h: &Harness, did: &str, cid: &[u8]) {
        let conn = rusqlite::Connection::open(h.state.store().path()).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        let mut bytes: Vec<u8> = conn
            .query_row(
                "SELECT bytes FROM repo_block WHERE did = ?1 AND cid = ?2",
                rusqlite::params![did, cid],
                |r| r.get(0),
            )
            .unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        let changed = conn
            .execute(
                "UPDATE repo_block SET bytes = ?3 WHERE did = ?1 AND cid = ?2",
                rusqlite::params![did, cid, bytes],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    #[tokio::test]
    async fn a_broken_repository_is_an_error_status_or_a_failed_body() {
        let h = harness();
        let (did, token, _) = h.alice().await;
        let writes: Vec<Value> = (0..80)
            .map(|i| {
                json!({"$type": "com.atproto.repo.applyWrites#create",
                    "collection": "app.bsky.feed.post", "value": post_record(&format!("post {i}"))})
            })
            .collect();
        let (status, body) = h
            .post(
                "com.atproto.repo.applyWrites",
                Some(&token),
                json!({"repo": did, "writes": writes}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, car) = get_repo(&h, &did).await;
        assert_eq!(status, StatusCode::OK);
        atp_repo::verify_car(car.unwrap().as_slice(), None).unwrap();

        let parsed: atp_syntax::Did = did.parse().unwrap();
        let root = h.state.store().repo_root(&parsed).await.unwrap().unwrap();
        // A node below the root (neither the commit, nor the root node, nor a record).
        let node: Vec<u8> = {
            let conn = rusqlite::Connection::open(h.state.store().path()).unwrap();
            conn.query_row(
                "SELECT cid FROM repo_block WHERE did = ?1 AND cid NOT IN (?2, ?3)
                   AND cid NOT IN (SELECT cid FROM record WHERE did = ?1) LIMIT 1",
                rusqlite::params![did, root.commit.to_bytes(), root.data.to_bytes()],
                |r| r.get(0),
            )
            .unwrap()
        };
        corrupt(&h, &did, &node);
        let (status, body) = get_repo(&h, &did).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.is_err(), "a broken node must fail the body");

        // A broken commit block is refused before answering.
        corrupt(&h, &did, &root.commit.to_bytes());
        let (status, _) = get_repo(&h, &did).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
