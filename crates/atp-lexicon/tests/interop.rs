//! Conformance: the upstream Lexicon vectors in `tests/vectors/lexicon/` (see INDEX.md), and our
//! own invalid records (`tests/record-data-invalid.json` beside this file, one or more per
//! constraint kind, each naming the path that must be reported).
//!
//! If an upstream `record-data-invalid.json` is placed next to `record-data-valid.json`, every
//! record in it must be refused too.

use std::path::PathBuf;

use atp_lexicon::{Catalog, RecordValidity};
use atp_syntax::Nsid;
use serde_json::Value;

fn vectors() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/lexicon"
    ))
}

fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn catalog() -> Catalog {
    Catalog::from_dir(&vectors().join("catalog")).expect("the vector catalog loads")
}

fn record_type() -> Nsid {
    "example.lexicon.record".parse().expect("valid NSID")
}

/// Validates `data` both as JSON and as a data-model value; the two must agree.
fn validate(catalog: &Catalog, data: &Value) -> Result<RecordValidity, String> {
    let from_json = catalog.validate_record(&record_type(), data);
    let Ok(value) = atp_data::json::record_from_json(data) else {
        // Not atproto data at all: refused before any schema is consulted.
        return Err(format!("not atproto data (JSON view said {from_json:?})"));
    };
    let from_value = catalog.validate_record(&record_type(), &value);
    assert_eq!(
        from_json, from_value,
        "JSON and data-model views disagree on {data}"
    );
    from_value.map_err(|e| e.to_string())
}

#[test]
fn catalog_loads_with_unresolved_refs() {
    let catalog = catalog();
    assert_eq!(catalog.len(), 5);
    assert_eq!(
        catalog.unresolved_refs(),
        vec![(
            "example.lexicon.procedure#main".to_owned(),
            "app.bsky.actor.defs#preferences".to_owned()
        )]
    );
    for id in [
        "example.lexicon.record",
        "example.lexicon.query",
        "example.lexicon.procedure",
        "example.lexicon.subscription",
        "example.lexicon.permissionset",
    ] {
        assert!(catalog.contains(id), "{id} missing from the catalog");
    }
}

fn check_schema(file: &str, expect_valid: bool) {
    let path = vectors().join(file);
    let cases = read_json(&path);
    let cases = cases.as_array().expect("an array of cases");
    assert!(!cases.is_empty(), "{file}: no cases");
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap_or("?");
        let result = Catalog::new().add(&case["lexicon"]);
        assert_eq!(
            result.is_ok(),
            expect_valid,
            "{file} case {i} ({name}): {result:?}"
        );
    }
}

#[test]
fn lexicon_valid() {
    check_schema("lexicon-valid.json", true);
}

#[test]
fn lexicon_invalid() {
    check_schema("lexicon-invalid.json", false);
}

#[test]
fn record_data_valid() {
    let catalog = catalog();
    let path = vectors().join("record-data-valid.json");
    let cases = read_json(&path);
    for (i, case) in cases.as_array().expect("cases").iter().enumerate() {
        let name = case["name"].as_str().unwrap_or("?");
        let result = validate(&catalog, &case["data"]);
        assert_eq!(
            result,
            Ok(RecordValidity::Valid),
            "record-data-valid.json case {i} ({name})"
        );
    }
}

#[test]
fn record_data_invalid_ours() {
    let catalog = catalog();
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/record-data-invalid.json"
    ));
    let cases = read_json(&path);
    let cases = cases.as_array().expect("cases");
    assert!(cases.len() >= 40, "too few invalid cases");
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap_or("?");
        let want = case["path"].as_str().expect("each case names its path");
        let err = catalog
            .validate_record(&record_type(), &case["data"])
            .expect_err(&format!("case {i} ({name}) must be refused"));
        assert_eq!(err.path, want, "case {i} ({name}): {err}");
        // The data-model view gives the same error, where the data is valid atproto data.
        if let Ok(value) = atp_data::json::record_from_json(&case["data"]) {
            assert_eq!(
                catalog.validate_record(&record_type(), &value),
                Err(err),
                "case {i} ({name}): views disagree"
            );
        }
    }
}

#[test]
fn record_data_invalid_upstream_if_present() {
    let path = vectors().join("record-data-invalid.json");
    if !path.exists() {
        return;
    }
    let catalog = catalog();
    let cases = read_json(&path);
    for (i, case) in cases.as_array().expect("cases").iter().enumerate() {
        let name = case["name"].as_str().unwrap_or("?");
        assert!(
            validate(&catalog, &case["data"]).is_err(),
            "record-data-invalid.json case {i} ({name}) must be refused"
        );
    }
}

/// The vendored `lexicons/` tree (embedded in the server) loads whole, every ref resolves, and a
/// typical post validates while a too-long one does not.
#[test]
fn vendored_tree_loads_and_resolves() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../lexicons"));
    let catalog = Catalog::from_dir(&dir).expect("the vendored lexicons load");
    assert!(catalog.len() > 200, "only {} documents", catalog.len());
    assert_eq!(catalog.unresolved_refs(), Vec::new());
    let post: Nsid = "app.bsky.feed.post".parse().expect("nsid");
    let mut record = serde_json::json!({
        "$type": "app.bsky.feed.post",
        "text": "hello",
        "createdAt": "2024-01-01T00:00:00.000Z",
        "langs": ["en"],
        "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "a cat", "image": {
            "$type": "blob", "ref": {"$link": "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"},
            "mimeType": "image/jpeg", "size": 1000}}]}
    });
    assert_eq!(
        catalog.validate_record(&post, &record),
        Ok(RecordValidity::Valid)
    );
    record["embed"]["images"][0]["alt"] = Value::from(7);
    let err = catalog
        .validate_record(&post, &record)
        .expect_err("alt must be a string");
    assert_eq!(
        err.to_string(),
        "Record/embed/images/0/alt must be a string"
    );
    record["embed"]["images"][0]["alt"] = Value::from("");
    record["text"] = Value::from("x".repeat(301));
    let err = catalog
        .validate_record(&post, &record)
        .expect_err("text too long");
    assert_eq!(
        err.to_string(),
        "Record/text must not be longer than 300 graphemes"
    );
}
