//! The Lexicon catalog and validators (`atp-lexicon`) never panic, on untrusted schemas and on
//! untrusted values.
//!
//! The first byte picks a mode (the rest is the input):
//! - `0`: `document ‖ 0x00 ‖ value` (JSON texts; without `0x00`, the document is also the value).
//!   The document is added to an empty `Catalog` (as `resolveLexicon` does with a fetched
//!   schema record) and, if accepted, the value is validated against each of its definitions as a
//!   record, a definition, an XRPC input and XRPC parameters. The document is also validated as a
//!   `com.atproto.lexicon.schema` record of the real catalog.
//! - `1`: atproto JSON, validated against the real catalog (`lexicons/`) as records
//!   (`app.bsky.feed.post`, `app.bsky.actor.profile`, `com.atproto.lexicon.schema`; a missing
//!   `$type` is filled in) both as `serde_json::Value` and as the data model, which must agree,
//!   and as the JSON bodies of a few procedures.
//! - `2`: DAG-CBOR, validated as a record of the same three types.
//! - `3`: a query string (`a=b&c=d`, no percent-decoding), validated as the parameters of a few
//!   queries.
#![no_main]

use std::sync::LazyLock;

use atp_lexicon::Catalog;
use atp_syntax::Nsid;
use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../lexicons");
    Catalog::from_dir(dir.as_ref()).expect("the repository's lexicons load")
});

const RECORDS: [&str; 3] = [
    "app.bsky.feed.post",
    "app.bsky.actor.profile",
    "com.atproto.lexicon.schema",
];

const PROCEDURES: [&str; 6] = [
    "com.atproto.repo.createRecord",
    "com.atproto.repo.putRecord",
    "com.atproto.repo.applyWrites",
    "com.atproto.server.createAccount",
    "app.bsky.actor.putPreferences",
    "com.atproto.identity.signPlcOperation",
];

const QUERIES: [&str; 6] = [
    "com.atproto.repo.listRecords",
    "com.atproto.repo.getRecord",
    "com.atproto.sync.getRepo",
    "com.atproto.sync.listRepos",
    "app.bsky.feed.getAuthorFeed",
    "com.atproto.lexicon.resolveLexicon",
];

fn nsid(s: &str) -> Nsid {
    s.parse().expect("fixed NSID")
}

/// Top-level string and number members of `value` as query parameters.
fn params_of(value: &Json) -> Vec<(String, String)> {
    let Some(map) = value.as_object() else {
        return Vec::new();
    };
    let mut params = Vec::new();
    for (name, v) in map {
        match v {
            Json::String(s) => params.push((name.clone(), s.clone())),
            Json::Number(n) => params.push((name.clone(), n.to_string())),
            Json::Bool(b) => params.push((name.clone(), b.to_string())),
            Json::Array(items) => {
                for item in items {
                    if let Some(s) = item.as_str() {
                        params.push((name.clone(), s.to_owned()));
                    }
                }
            }
            _ => {}
        }
    }
    params
}

fn schema_mode(rest: &[u8]) {
    let (doc, value) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let Ok(doc) = serde_json::from_slice::<Json>(doc) else {
        return;
    };
    let schema_record = nsid("com.atproto.lexicon.schema");
    let mut as_record = doc.clone();
    if let Some(map) = as_record.as_object_mut() {
        map.entry("$type")
            .or_insert_with(|| Json::String(schema_record.to_string()));
    }
    let _ = CATALOG.validate_record(&schema_record, &as_record);

    let mut catalog = Catalog::new();
    if catalog.add(&doc).is_err() {
        assert!(
            catalog.is_empty(),
            "a refused document left definitions behind"
        );
        return;
    }
    assert_eq!(catalog.len(), 1);
    // A second add of the same document is a duplicate and changes nothing.
    assert!(catalog.add(&doc).is_err());
    let _ = catalog.unresolved_refs();
    let value = match value {
        Some(bytes) => match serde_json::from_slice::<Json>(bytes) {
            Ok(v) => v,
            Err(_) => return,
        },
        None => doc.clone(),
    };
    let Some(id) = doc.get("id").and_then(Json::as_str) else {
        return;
    };
    assert!(catalog.contains(id));
    let data_value = atp_data::json::from_json(&value).ok();
    if let Ok(id_nsid) = id.parse::<Nsid>() {
        let _ = catalog.record_key(&id_nsid);
        let mut record = value.clone();
        if let Some(map) = record.as_object_mut() {
            map.entry("$type")
                .or_insert_with(|| Json::String(id.to_owned()));
        }
        let _ = catalog.validate_record(&id_nsid, &record);
        if let Ok(data) = atp_data::json::from_json(&record) {
            let _ = catalog.validate_record(&id_nsid, &data);
        }
    }
    if let Some(defs) = doc.get("defs").and_then(Json::as_object) {
        for name in defs.keys() {
            let reference = if name == "main" {
                id.to_owned()
            } else {
                format!("{id}#{name}")
            };
            let _ = catalog.contains_def(&reference);
            let _ = catalog.validate(&reference, &value, "Value");
            if let Some(data) = &data_value {
                let _ = catalog.validate(&reference, data, "Value");
            }
        }
    }
    let _ = catalog.json_input(id);
    let _ = catalog.validate_input(id, &value);
    let _ = catalog.validate_params(id, &params_of(&value));
}

fn json_mode(rest: &[u8]) {
    let Ok(json) = serde_json::from_slice::<Json>(rest) else {
        return;
    };
    for record_type in RECORDS {
        let nsid = nsid(record_type);
        let mut record = json.clone();
        if let Some(map) = record.as_object_mut() {
            map.entry("$type")
                .or_insert_with(|| Json::String(record_type.to_owned()));
        }
        let as_json = CATALOG.validate_record(&nsid, &record);
        if let Ok(data) = atp_data::json::from_json(&record) {
            let as_data = CATALOG.validate_record(&nsid, &data);
            assert_eq!(
                as_json.is_ok(),
                as_data.is_ok(),
                "{record_type}: JSON view {as_json:?}, data-model view {as_data:?}"
            );
        }
        let _ = CATALOG.validate(record_type, &json, "Value");
    }
    for method in PROCEDURES {
        let _ = CATALOG.validate_input(method, &json);
    }
}

fn cbor_mode(rest: &[u8]) {
    let Ok(value) = atp_data::cbor::from_slice(rest) else {
        return;
    };
    for record_type in RECORDS {
        let _ = CATALOG.validate_record(&nsid(record_type), &value);
    }
}

fn params_mode(rest: &[u8]) {
    let text = String::from_utf8_lossy(rest);
    let params: Vec<(String, String)> = text
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect();
    for method in QUERIES {
        let _ = CATALOG.validate_params(method, &params);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0 => schema_mode(rest),
        1 => json_mode(rest),
        2 => cbor_mode(rest),
        3 => params_mode(rest),
        _ => {}
    }
});
