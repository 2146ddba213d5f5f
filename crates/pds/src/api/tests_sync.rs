//! In-process tests of `com.atproto.sync.*`.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use super::tests::{Harness, harness, post_record};
use atp_data::Cid;
use atp_data::car::CarReader;
use atp_repo::BlockMap;

/// GET `uri`: status, content type and body bytes.
async fn fetch(h: &Harness, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let res = h
        .raw(Request::builder().uri(uri).body(Body::empty()).unwrap())
        .await;
    let status = res.status();
    let mime = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, mime, bytes.to_vec())
}

/// A CAR's roots and blocks.
fn read_car(bytes: &[u8]) -> (Vec<Cid>, BlockMap) {
    let mut reader = CarReader::new(bytes).unwrap();
    let roots = reader.roots().to_vec();
    let mut blocks = BlockMap::new();
    while let Some((cid, data)) = reader.next_block().unwrap() {
        blocks.insert(cid, data);
    }
    (roots, blocks)
}

async fn create(h: &Harness, did: &str, token: &str, rkey: &str, record: Value) -> Value {
    let (status, body) = h
        .post(
            "com.atproto.repo.createRecord",
            Some(token),
            json!({"repo": did, "collection": "app.bsky.feed.post", "rkey": rkey, "record": record}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn assert_error(got: (StatusCode, Value), name: &str) {
    assert_eq!(
        (got.0, got.1["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some(name)),
        "{}",
        got.1
    );
}

#[tokio::test]
async fn get_repo_full_and_since() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    for (i, rkey) in ["3jzfcijpj2z2a", "3jzfcijpj2z2b"].iter().enumerate() {
        create(&h, &did, &token, rkey, post_record(&format!("first {i}"))).await;
    }
    let (_, latest) = h
        .get(&format!("/xrpc/com.atproto.sync.getLatestCommit?did={did}"))
        .await;
    let rev1 = latest["rev"].as_str().unwrap().to_owned();
    let (status, mime, old) = fetch(&h, &format!("/xrpc/com.atproto.sync.getRepo?did={did}")).await;
    assert_eq!(
        (status, mime.as_str()),
        (StatusCode::OK, "application/vnd.ipld.car")
    );
    for (i, rkey) in ["3jzfcijpj2z2c", "3jzfcijpj2z2d"].iter().enumerate() {
        create(&h, &did, &token, rkey, post_record(&format!("second {i}"))).await;
    }
    let (_, _, full) = fetch(&h, &format!("/xrpc/com.atproto.sync.getRepo?did={did}")).await;
    let key = h.state.writer().keys().load(&did.parse().unwrap()).unwrap();
    let summary = atp_repo::verify_car(full.as_slice(), Some(&key.public_key())).unwrap();
    assert_eq!(summary.records, 4);
    let other = atp_crypto::Keypair::generate(atp_crypto::Curve::K256).public_key();
    assert!(atp_repo::verify_car(full.as_slice(), Some(&other)).is_err());

    let (status, _, since) = fetch(
        &h,
        &format!("/xrpc/com.atproto.sync.getRepo?did={did}&since={rev1}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (full_roots, full_blocks) = read_car(&full);
    let (_, old_blocks) = read_car(&old);
    let (since_roots, since_blocks) = read_car(&since);
    assert_eq!(since_roots, full_roots);
    let expected: BTreeSet<Cid> = full_blocks
        .keys()
        .filter(|c| !old_blocks.contains_key(c))
        .copied()
        .collect();
    let got: BTreeSet<Cid> = since_blocks.keys().copied().collect();
    assert!(got.contains(&full_roots[0]));
    assert_eq!(got, expected);
    // getCheckout (deprecated) is the full export.
    let (status, _, checkout) =
        fetch(&h, &format!("/xrpc/com.atproto.sync.getCheckout?did={did}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(checkout, full);
    // Bad parameters.
    assert_error(
        h.get(&format!(
            "/xrpc/com.atproto.sync.getRepo?did={did}&since=nope"
        ))
        .await,
        "InvalidRequest",
    );
}

#[tokio::test]
async fn get_record_proves_presence_and_absence() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let written = create(&h, &did, &token, "3jzfcijpj2z2a", post_record("hi")).await;
    create(&h, &did, &token, "3jzfcijpj2z2b", post_record("there")).await;
    let key = h.state.writer().keys().load(&did.parse().unwrap()).unwrap();
    let uri = |rkey: &str| {
        format!(
            "/xrpc/com.atproto.sync.getRecord?did={did}&collection=app.bsky.feed.post&rkey={rkey}"
        )
    };
    let (status, mime, car) = fetch(&h, &uri("3jzfcijpj2z2a")).await;
    assert_eq!(
        (status, mime.as_str()),
        (StatusCode::OK, "application/vnd.ipld.car")
    );
    let (roots, blocks) = read_car(&car);
    assert_eq!(roots.len(), 1);
    let commit = atp_repo::SignedCommit::from_cbor(&blocks[&roots[0]]).unwrap();
    commit.verify(&key.public_key()).unwrap();
    let found =
        atp_repo::verify_record_proof(commit.data(), "app.bsky.feed.post/3jzfcijpj2z2a", &blocks)
            .unwrap()
            .unwrap();
    assert_eq!(Some(found.to_string().as_str()), written["cid"].as_str());
    assert!(atp_data::cid::matches(&found, &blocks[&found]));
    // Absent: the proof of absence.
    let (status, _, car) = fetch(&h, &uri("3jzfcijpj2z2z")).await;
    assert_eq!(status, StatusCode::OK);
    let (roots, blocks) = read_car(&car);
    let commit = atp_repo::SignedCommit::from_cbor(&blocks[&roots[0]]).unwrap();
    let found =
        atp_repo::verify_record_proof(commit.data(), "app.bsky.feed.post/3jzfcijpj2z2z", &blocks)
            .unwrap();
    assert_eq!(found, None);
    assert_error(h.get(&uri("a/b")).await, "InvalidRequest");
}

#[tokio::test]
async fn get_blocks_returns_all_or_names_the_missing() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let written = create(&h, &did, &token, "3jzfcijpj2z2a", post_record("hi")).await;
    let commit = written["commit"]["cid"].as_str().unwrap();
    let record = written["cid"].as_str().unwrap();
    let (status, _, car) = fetch(
        &h,
        &format!("/xrpc/com.atproto.sync.getBlocks?did={did}&cids={commit}&cids={record}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (roots, blocks) = read_car(&car);
    assert!(roots.is_empty());
    let got: Vec<String> = blocks.keys().map(|c| c.to_string()).collect();
    let mut want = vec![commit.to_owned(), record.to_owned()];
    want.sort_by_key(|c| atp_data::cid::parse(c).unwrap());
    assert_eq!(got, want);
    let missing = atp_data::cid::cid_for_cbor(b"\xa0").to_string();
    let got = h
        .get(&format!(
            "/xrpc/com.atproto.sync.getBlocks?did={did}&cids={commit}&cids={missing}"
        ))
        .await;
    assert!(got.1["message"].as_str().unwrap().contains(&missing));
    assert_error(got, "BlockNotFound");
    assert_error(
        h.get(&format!("/xrpc/com.atproto.sync.getBlocks?did={did}"))
            .await,
        "InvalidRequest",
    );
}

#[tokio::test]
async fn status_head_and_unavailable_repos() {
    let h = harness();
    let (did, _, _) = h.alice().await;
    let (_, latest) = h
        .get(&format!("/xrpc/com.atproto.sync.getLatestCommit?did={did}"))
        .await;
    let (status, body) = h
        .get(&format!("/xrpc/com.atproto.sync.getRepoStatus?did={did}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"did": did, "active": true, "rev": latest["rev"]})
    );
    let (status, body) = h
        .get(&format!("/xrpc/com.atproto.sync.getHead?did={did}"))
        .await;
    assert_eq!((status, &body["root"]), (StatusCode::OK, &latest["cid"]));

    let nobody = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
    for method in [
        "getRepo",
        "getCheckout",
        "getRepoStatus",
        "getHead",
        "listBlobs",
        "getLatestCommit",
    ] {
        assert_error(
            h.get(&format!("/xrpc/com.atproto.sync.{method}?did={nobody}"))
                .await,
            "RepoNotFound",
        );
    }

    h.state
        .store()
        .deactivate_account(&did.parse().unwrap(), chrono::Utc::now(), None, vec![])
        .await
        .unwrap();
    let (status, body) = h
        .get(&format!("/xrpc/com.atproto.sync.getRepoStatus?did={did}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"did": did, "active": false, "status": "deactivated"})
    );
    for uri in [
        format!("/xrpc/com.atproto.sync.getRepo?did={did}"),
        format!("/xrpc/com.atproto.sync.getCheckout?did={did}"),
        format!("/xrpc/com.atproto.sync.getHead?did={did}"),
        format!("/xrpc/com.atproto.sync.listBlobs?did={did}"),
        format!("/xrpc/com.atproto.sync.getLatestCommit?did={did}"),
        format!("/xrpc/com.atproto.sync.getRecord?did={did}&collection=app.bsky.feed.post&rkey=x"),
        format!(
            "/xrpc/com.atproto.sync.getBlocks?did={did}&cids={}",
            latest["cid"].as_str().unwrap()
        ),
    ] {
        assert_error(h.get(&uri).await, "RepoDeactivated");
    }
    // listRepos still lists it, with its status.
    let (status, body) = h.get("/xrpc/com.atproto.sync.listRepos").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"repos": [{"did": did, "head": latest["cid"], "rev": latest["rev"],
            "active": false, "status": "deactivated"}], "cursor": did})
    );
}

#[tokio::test]
async fn list_repos_pages_by_did() {
    let h = harness();
    let mut dids = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let (status, body) = h
            .post(
                "com.atproto.server.createAccount",
                None,
                json!({"handle": format!("{name}.test"), "email": format!("{name}@example.com"),
                    "password": "hunter22"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        dids.push(body["did"].as_str().unwrap().to_owned());
    }
    dids.sort();
    let (status, page) = h.get("/xrpc/com.atproto.sync.listRepos?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let got: Vec<&str> = page["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["did"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![dids[0].as_str(), dids[1].as_str()]);
    let first = &page["repos"][0];
    let (_, latest) = h
        .get(&format!(
            "/xrpc/com.atproto.sync.getLatestCommit?did={}",
            dids[0]
        ))
        .await;
    assert_eq!(first["head"], latest["cid"]);
    assert_eq!(first["rev"], latest["rev"]);
    assert_eq!(first["active"], json!(true));
    assert!(first.get("status").is_none());
    assert_eq!(page["cursor"], json!(dids[1]));
    let (_, rest) = h
        .get(&format!(
            "/xrpc/com.atproto.sync.listRepos?limit=2&cursor={}",
            dids[1]
        ))
        .await;
    assert_eq!(rest["repos"].as_array().unwrap().len(), 1);
    assert_eq!(rest["repos"][0]["did"], json!(dids[2]));
    let (_, end) = h
        .get(&format!(
            "/xrpc/com.atproto.sync.listRepos?cursor={}",
            dids[2]
        ))
        .await;
    assert_eq!(end, json!({"repos": []}));
    for bad in ["limit=0", "limit=1001", "cursor=notadid"] {
        let (status, body) = h
            .get(&format!("/xrpc/com.atproto.sync.listRepos?{bad}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

async fn upload(h: &Harness, token: &str, bytes: Vec<u8>) -> Value {
    let req = Request::builder()
        .method("POST")
        .uri("/xrpc/com.atproto.repo.uploadBlob")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "image/png")
        .body(Body::from(bytes))
        .unwrap();
    let res = h.raw(req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["blob"].clone()
}

#[tokio::test]
async fn list_blobs_pages_and_since() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let mut all = Vec::new();
    let mut rev_after_first = String::new();
    for i in 0..3u8 {
        let blob = upload(&h, &token, vec![0x89, b'P', b'N', b'G', i]).await;
        all.push(blob["ref"]["$link"].as_str().unwrap().to_owned());
        let record = json!({"$type": "app.bsky.feed.post", "text": "pic", "createdAt": "2024-01-01T00:00:00.000Z",
            "embed": {"$type": "app.bsky.embed.images", "images": [{"image": blob, "alt": ""}]}});
        let rkey = format!("3jzfcijpj2z2{}", (b'a' + i) as char);
        let written = create(&h, &did, &token, &rkey, record).await;
        if i == 0 {
            rev_after_first = written["commit"]["rev"].as_str().unwrap().to_owned();
        }
    }
    all.sort_by_key(|c| atp_data::cid::parse(c).unwrap());
    let base = format!("/xrpc/com.atproto.sync.listBlobs?did={did}");
    let (status, body) = h.get(&base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cids"], json!(all));
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            Some(c) => format!("{base}&limit=2&cursor={c}"),
            None => format!("{base}&limit=2"),
        };
        let (status, body) = h.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page: Vec<String> = serde_json::from_value(body["cids"].clone()).unwrap();
        assert!(page.len() <= 2);
        if page.is_empty() {
            assert!(body.get("cursor").is_none());
            break;
        }
        assert_eq!(body["cursor"].as_str(), page.last().map(String::as_str));
        paged.extend(page);
        cursor = body["cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(paged, all);
    let (_, body) = h.get(&format!("{base}&since={rev_after_first}")).await;
    assert_eq!(body["cids"].as_array().unwrap().len(), 2);
    assert_error(h.get(&format!("{base}&limit=0")).await, "InvalidRequest");
    assert_error(h.get(&format!("{base}&limit=1001")).await, "InvalidRequest");
}
