//! Lexicon validation in the server: records (`validate` flag, `validationStatus`, one refusal per
//! constraint kind, nothing written on a refusal, applyWrites all-or-nothing) and XRPC inputs
//! (parameters and bodies refused with `InvalidRequest` naming the field).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::tests::{Harness, harness, post_record};

const BLOB: &str = "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm";

fn image(mime: &str, size: u64) -> Value {
    json!({"$type": "blob", "ref": {"$link": BLOB}, "mimeType": mime, "size": size})
}

/// A post with `patch` merged in (a `null` removes the key).
fn post_with(patch: Value) -> Value {
    let mut post = post_record("hello");
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            post.as_object_mut().unwrap().remove(k);
        } else {
            post[k] = v.clone();
        }
    }
    post
}

async fn create(h: &Harness, token: &str, did: &str, body: Value) -> (StatusCode, Value) {
    let mut input = json!({"repo": did, "collection": "app.bsky.feed.post"});
    for (k, v) in body.as_object().unwrap() {
        input[k] = v.clone();
    }
    h.post("com.atproto.repo.createRecord", Some(token), input)
        .await
}

async fn latest_rev(h: &Harness, did: &str) -> String {
    let (status, body) = h
        .get(&format!("/xrpc/com.atproto.sync.getLatestCommit?did={did}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["rev"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn validation_status_follows_the_validate_flag() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let (status, body) = create(&h, &token, &did, json!({"record": post_record("hi")})).await;
    assert_eq!(
        (status, body["validationStatus"].as_str()),
        (StatusCode::OK, Some("valid")),
        "{body}"
    );
    let (status, body) = create(
        &h,
        &token,
        &did,
        json!({"record": post_record("hi"), "validate": true}),
    )
    .await;
    assert_eq!(
        (status, body["validationStatus"].as_str()),
        (StatusCode::OK, Some("valid")),
        "{body}"
    );
    // validate: false skips validation and reports no status.
    let bad = post_with(json!({"text": 5}));
    let (status, body) = create(&h, &token, &did, json!({"record": bad, "validate": false})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("validationStatus").is_none(), "{body}");
    // An unknown type: "unknown" unless validation is required.
    let thing = json!({"$type": "com.example.thing", "anything": [1, 2]});
    let other = |record: Value, validate: Value| {
        let mut input = json!({"repo": did, "collection": "com.example.thing", "record": record});
        if !validate.is_null() {
            input["validate"] = validate;
        }
        input
    };
    let (status, body) = h
        .post(
            "com.atproto.repo.createRecord",
            Some(&token),
            other(thing.clone(), Value::Null),
        )
        .await;
    assert_eq!(
        (status, body["validationStatus"].as_str()),
        (StatusCode::OK, Some("unknown")),
        "{body}"
    );
    let (status, body) = h
        .post(
            "com.atproto.repo.createRecord",
            Some(&token),
            other(thing, json!(true)),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str(), body["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("InvalidRequest"),
            Some("Lexicon not found: lex:com.example.thing")
        )
    );
    // A record without $type takes the collection's, then validates.
    let (status, body) = h
        .post("com.atproto.repo.putRecord", Some(&token), json!({"repo": did, "collection": "app.bsky.feed.post", "rkey": "notype", "record": {"text": "x", "createdAt": "2024-01-01T00:00:00Z"}}))
        .await;
    assert_eq!(
        (status, body["validationStatus"].as_str()),
        (StatusCode::OK, Some("valid")),
        "{body}"
    );
    let (_, got) = h
        .get(&format!(
            "/xrpc/com.atproto.repo.getRecord?repo={did}&collection=app.bsky.feed.post&rkey=notype"
        ))
        .await;
    assert_eq!(got["value"]["$type"], "app.bsky.feed.post", "{got}");
}

#[tokio::test]
async fn invalid_records_are_refused_naming_the_field_and_nothing_is_written() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let images = |image: Value, width: i64| json!({"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": image, "aspectRatio": {"width": width, "height": 1}}]});
    let cases = [
        (json!({"text": 5}), "Record/text must be a string"),
        (
            json!({"createdAt": null}),
            "Record must have the property \"createdAt\"",
        ),
        (
            json!({"createdAt": "yesterday"}),
            "Record/createdAt must be an valid atproto datetime",
        ),
        (
            json!({"text": "x".repeat(301)}),
            "Record/text must not be longer than 300 graphemes",
        ),
        (
            json!({"text": "é".repeat(1501)}),
            "Record/text must not be longer than 3000 characters",
        ),
        (
            json!({"langs": ["en", "fr", "de", "it"]}),
            "Record/langs must not have more than 3 elements",
        ),
        (
            json!({"langs": ["english!"]}),
            "Record/langs/0 must be a well-formed BCP 47 language tag",
        ),
        (
            json!({"embed": {"images": []}}),
            "Record/embed must be an object which includes the \"$type\" property",
        ),
        (
            json!({"embed": images(image("image/png", 10), 0)}),
            "Record/embed/images/0/aspectRatio/width can not be less than 1",
        ),
        (
            json!({"embed": images(image("text/plain", 10), 1)}),
            "Record/embed/images/0/image must be a blob of type image/*",
        ),
        (
            json!({"embed": images(image("image/png", 2_000_001), 1)}),
            "Record/embed/images/0/image must be a blob of at most 2000000 bytes",
        ),
        (
            json!({"embed": images(json!("not a blob"), 1)}),
            "Record/embed/images/0/image should be a blob ref",
        ),
        (
            json!({"reply": {"root": {"uri": "nope", "cid": BLOB}, "parent": {"uri": "at://did:plc:abc/app.bsky.feed.post/3kznmn7xqxl22", "cid": BLOB}}}),
            "Record/reply/root/uri must be a valid at-uri",
        ),
    ];
    let rev = latest_rev(&h, &did).await;
    for (patch, message) in cases {
        let (status, body) = create(
            &h,
            &token,
            &did,
            json!({"record": post_with(patch.clone())}),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("InvalidRequest")),
            "{patch}: {body}"
        );
        let got = body["message"].as_str().unwrap();
        assert!(
            got.starts_with(&format!("Invalid app.bsky.feed.post record: {message}")),
            "{patch}: {got}"
        );
        // The same record through putRecord and applyWrites is refused the same way.
        let (status, _) = h
            .post("com.atproto.repo.putRecord", Some(&token), json!({"repo": did, "collection": "app.bsky.feed.post", "rkey": "self", "record": post_with(patch.clone())}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{patch}");
    }
    assert_eq!(
        latest_rev(&h, &did).await,
        rev,
        "a refused write changed the repo"
    );
    let (_, list) = h
        .get(&format!(
            "/xrpc/com.atproto.repo.listRecords?repo={did}&collection=app.bsky.feed.post"
        ))
        .await;
    assert_eq!(list["records"], json!([]), "{list}");
}

#[tokio::test]
async fn apply_writes_is_all_or_nothing_and_reports_statuses() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let create = |collection: &str, value: Value| json!({"$type": "com.atproto.repo.applyWrites#create", "collection": collection, "value": value});
    let rev = latest_rev(&h, &did).await;
    let (status, body) = h
        .post(
            "com.atproto.repo.applyWrites",
            Some(&token),
            json!({"repo": did, "writes": [
                create("app.bsky.feed.post", post_record("fine")),
                create("app.bsky.feed.post", post_with(json!({"text": "x".repeat(301)}))),
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("Record/text"),
        "{body}"
    );
    assert_eq!(
        latest_rev(&h, &did).await,
        rev,
        "a refused batch changed the repo"
    );
    let (status, body) = h
        .post(
            "com.atproto.repo.applyWrites",
            Some(&token),
            json!({"repo": did, "writes": [
                create("app.bsky.feed.post", post_record("fine")),
                create("com.example.thing", json!({"$type": "com.example.thing"})),
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let statuses: Vec<_> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["validationStatus"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("valid"), json!("unknown")]);
    let (status, body) = h
        .post(
            "com.atproto.repo.applyWrites",
            Some(&token),
            json!({"repo": did, "validate": false, "writes": [
                create("com.example.thing", json!({"$type": "com.example.thing"})),
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["results"][0].get("validationStatus").is_none(),
        "{body}"
    );
}

#[tokio::test]
async fn xrpc_inputs_are_validated_against_their_lexicon() {
    let h = harness();
    let (did, token, _) = h.alice().await;
    let refused = |(status, body): (StatusCode, Value)| {
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("InvalidRequest")),
            "{body}"
        );
        body["message"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        refused(h.get(&format!("/xrpc/com.atproto.repo.listRecords?repo={did}&collection=app.bsky.feed.post&limit=1000")).await),
        "limit can not be greater than 100"
    );
    assert_eq!(
        refused(h.get(&format!("/xrpc/com.atproto.repo.listRecords?repo={did}&collection=app.bsky.feed.post&reverse=maybe")).await),
        "reverse must be a boolean"
    );
    assert_eq!(
        refused(
            h.get(&format!(
                "/xrpc/com.atproto.repo.getRecord?repo={did}&collection=app.bsky.feed.post"
            ))
            .await
        ),
        "Params must have the property \"rkey\""
    );
    assert_eq!(
        refused(
            h.get("/xrpc/com.atproto.repo.describeRepo?repo=not%20an%20id")
                .await
        ),
        "repo must be a valid did or a handle"
    );
    assert_eq!(
        refused(
            h.post(
                "com.atproto.server.createSession",
                None,
                json!({"identifier": 5, "password": "x"})
            )
            .await
        ),
        "Input/identifier must be a string"
    );
    assert_eq!(
        refused(
            h.post(
                "com.atproto.repo.createRecord",
                Some(&token),
                json!({"repo": did, "collection": "not an nsid", "record": {}})
            )
            .await
        ),
        "Input/collection must be a valid nsid"
    );
    assert_eq!(
        refused(
            h.post(
                "com.atproto.repo.createRecord",
                Some(&token),
                json!({"repo": did, "collection": "app.bsky.feed.post", "record": "text"})
            )
            .await
        ),
        "Input/record must be an object"
    );
    assert_eq!(
        refused(h.post("com.atproto.repo.applyWrites", Some(&token), json!({"repo": did, "writes": [{"$type": "com.atproto.repo.applyWrites#bogus", "collection": "app.bsky.feed.post"}]})).await),
        "Input/writes/0 $type must be one of com.atproto.repo.applyWrites#create, com.atproto.repo.applyWrites#update, com.atproto.repo.applyWrites#delete"
    );
    assert_eq!(
        refused(h.post("com.atproto.repo.applyWrites", Some(&token), json!({"repo": did, "writes": [{"$type": "com.atproto.repo.applyWrites#delete", "collection": "app.bsky.feed.post"}]})).await),
        "Input/writes/0 must have the property \"rkey\""
    );
    // Valid calls still work, and methods not served are not validated (501, not 400).
    let (status, _) = h.get(&format!("/xrpc/com.atproto.repo.listRecords?repo={did}&collection=app.bsky.feed.post&limit=100&reverse=true")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h.get("/xrpc/com.atproto.label.queryLabels").await;
    assert_ne!(status, StatusCode::BAD_REQUEST);
}
