//! One test per constraint kind, each with a value that passes and one that fails with the exact
//! message (path and wording) a client sees; plus XRPC parameters and bodies, nested and cyclic
//! refs, and depth bounds.

use atp_lexicon::{Catalog, LexErrorKind, MAX_DEPTH, RecordValidity};
use atp_syntax::Nsid;
use serde_json::{Value, json};

const CID: &str = "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm";

/// A catalog with one record type `com.example.thing` whose property `v` has schema `field`, plus
/// helper definitions.
fn catalog_with(field: Value) -> Catalog {
    let mut catalog = Catalog::new();
    catalog
        .add(&json!({
            "lexicon": 1,
            "id": "com.example.thing",
            "defs": {
                "main": {"type": "record", "key": "tid", "record": {
                    "type": "object",
                    "required": ["v"],
                    "nullable": ["n"],
                    "properties": {"v": field, "n": {"type": "string"}}
                }},
                "point": {"type": "object", "required": ["x"], "properties": {
                    "x": {"type": "integer", "minimum": 0},
                    "next": {"type": "ref", "ref": "#point"}
                }},
                "label": {"type": "string", "maxLength": 5},
                "loopA": {"type": "object", "properties": {"b": {"type": "ref", "ref": "#loopB"}}},
                "loopB": {"type": "object", "properties": {"a": {"type": "ref", "ref": "#loopA"}}},
                "flag": {"type": "token"}
            }
        }))
        .expect("test schema is valid");
    catalog
}

fn nsid() -> Nsid {
    "com.example.thing".parse().expect("valid NSID")
}

/// The message for `{"v": v}` (with the record's `$type`), or "valid".
fn check(field: Value, v: Value) -> String {
    let catalog = catalog_with(field);
    let record = json!({"$type": "com.example.thing", "v": v});
    let json_view = catalog.validate_record(&nsid(), &record);
    if let Ok(value) = atp_data::json::record_from_json(&record) {
        assert_eq!(
            json_view,
            catalog.validate_record(&nsid(), &value),
            "views disagree for {record}"
        );
    }
    match json_view {
        Ok(RecordValidity::Valid) => "valid".to_owned(),
        Ok(RecordValidity::Unknown) => "unknown".to_owned(),
        Err(e) => e.to_string(),
    }
}

fn blob(mime: &str, size: u64) -> Value {
    json!({"$type": "blob", "ref": {"$link": CID}, "mimeType": mime, "size": size})
}

#[test]
fn types() {
    let cases = [
        (
            json!({"type": "boolean"}),
            json!("yes"),
            "must be a boolean",
        ),
        (json!({"type": "integer"}), json!(1.5), "must be an integer"),
        (json!({"type": "integer"}), json!("1"), "must be an integer"),
        (json!({"type": "string"}), json!(1), "must be a string"),
        (
            json!({"type": "bytes"}),
            json!("AAAA"),
            "must be a byte array",
        ),
        (json!({"type": "cid-link"}), json!(CID), "must be a CID"),
        (
            json!({"type": "blob"}),
            json!({"a": 1}),
            "should be a blob ref",
        ),
        (
            json!({"type": "array", "items": {"type": "integer"}}),
            json!({}),
            "must be an array",
        ),
        (json!({"type": "object"}), json!([]), "must be an object"),
        (
            json!({"type": "unknown"}),
            json!("text"),
            "must be an object",
        ),
    ];
    for (field, bad, message) in cases {
        assert_eq!(
            check(field.clone(), bad),
            format!("Record/v {message}"),
            "{field}"
        );
    }
    assert_eq!(check(json!({"type": "integer"}), json!(3.0)), "valid");
    assert_eq!(
        check(json!({"type": "bytes"}), json!({"$bytes": "AAAA"})),
        "valid"
    );
    assert_eq!(
        check(json!({"type": "cid-link"}), json!({"$link": CID})),
        "valid"
    );
    assert_eq!(
        check(
            json!({"type": "unknown"}),
            json!({"$type": "x.y.z", "a": 1})
        ),
        "valid"
    );
}

#[test]
fn required_and_nullable() {
    let catalog = catalog_with(json!({"type": "string"}));
    let err = |record: Value| {
        catalog
            .validate_record(&nsid(), &record)
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        err(json!({"$type": "com.example.thing"})),
        Err("Record must have the property \"v\"".to_owned())
    );
    assert_eq!(
        err(json!({"$type": "com.example.thing", "v": null})),
        Err("Record/v must be a string".to_owned())
    );
    assert_eq!(
        err(json!({"$type": "com.example.thing", "v": "x", "n": null, "extra": [1]})),
        Ok(RecordValidity::Valid)
    );
    assert_eq!(
        err(json!({"$type": "com.example.thing", "v": "x", "n": 3})),
        Err("Record/n must be a string".to_owned())
    );
    // A required property with a default may be absent.
    let with_default = catalog_with(json!({"type": "integer", "default": 3}));
    assert_eq!(
        with_default.validate_record(&nsid(), &json!({"$type": "com.example.thing"})),
        Ok(RecordValidity::Valid)
    );
}

#[test]
fn string_lengths_are_utf8_bytes_and_graphemes() {
    let bytes = json!({"type": "string", "minLength": 2, "maxLength": 4});
    assert_eq!(check(bytes.clone(), json!("abcd")), "valid");
    assert_eq!(
        check(bytes.clone(), json!("ééé")),
        "Record/v must not be longer than 4 characters"
    );
    assert_eq!(
        check(bytes, json!("a")),
        "Record/v must not be shorter than 2 characters"
    );
    let graphemes = json!({"type": "string", "minGraphemes": 2, "maxGraphemes": 3});
    // Three flags: 24 bytes, 3 graphemes.
    assert_eq!(check(graphemes.clone(), json!("🇩🇪🇫🇷🇮🇹")), "valid");
    assert_eq!(
        check(graphemes.clone(), json!("abcd")),
        "Record/v must not be longer than 3 graphemes"
    );
    assert_eq!(
        check(graphemes, json!("🏳️‍🌈")),
        "Record/v must not be shorter than 2 graphemes"
    );
}

#[test]
fn string_formats() {
    let cases = [
        (
            "at-identifier",
            "alice.test",
            "not an id",
            "a valid did or a handle",
        ),
        (
            "at-uri",
            "at://did:plc:abc/app.bsky.feed.post/1",
            "http://x",
            "a valid at-uri",
        ),
        ("cid", CID, "Qm123", "a cid string"),
        (
            "datetime",
            "2024-01-01T00:00:00.000Z",
            "2024-01-01 00:00:00",
            "an valid atproto datetime (both RFC-3339 and ISO-8601)",
        ),
        ("did", "did:web:example.com", "did:X:y", "a valid did"),
        ("handle", "alice.test", "alice", "a valid handle"),
        ("nsid", "app.bsky.feed.post", "app", "a valid nsid"),
        ("tid", "3kznmn7xqxl22", "3kznmn7xqxl2", "a valid TID"),
        ("record-key", "self", "..", "a valid Record Key"),
        ("uri", "https://example.com/a", "no scheme", "a uri"),
        (
            "language",
            "pt-BR",
            "english!",
            "a well-formed BCP 47 language tag",
        ),
    ];
    for (format, good, bad, message) in cases {
        let field = json!({"type": "string", "format": format});
        assert_eq!(check(field.clone(), json!(good)), "valid", "{format}");
        assert_eq!(
            check(field, json!(bad)),
            format!("Record/v must be {message}"),
            "{format}"
        );
    }
}

#[test]
fn integer_ranges_enums_and_consts() {
    let range = json!({"type": "integer", "minimum": -1, "maximum": 10});
    assert_eq!(check(range.clone(), json!(10)), "valid");
    assert_eq!(
        check(range.clone(), json!(11)),
        "Record/v can not be greater than 10"
    );
    assert_eq!(check(range, json!(-2)), "Record/v can not be less than -1");
    let enumerated = json!({"type": "integer", "enum": [1, 2]});
    assert_eq!(check(enumerated.clone(), json!(2)), "valid");
    assert_eq!(check(enumerated, json!(3)), "Record/v must be one of (1|2)");
    assert_eq!(
        check(json!({"type": "integer", "const": 4}), json!(5)),
        "Record/v must be 4"
    );
    assert_eq!(
        check(json!({"type": "string", "enum": ["a", "b"]}), json!("c")),
        "Record/v must be one of (a|b)"
    );
    assert_eq!(
        check(json!({"type": "string", "const": "a"}), json!("b")),
        "Record/v must be a"
    );
    assert_eq!(
        check(json!({"type": "boolean", "const": true}), json!(false)),
        "Record/v must be true"
    );
    // knownValues is advice only.
    assert_eq!(
        check(
            json!({"type": "string", "knownValues": ["a"]}),
            json!("zzz")
        ),
        "valid"
    );
}

#[test]
fn bytes_and_arrays_lengths() {
    let bytes = json!({"type": "bytes", "minLength": 2, "maxLength": 3});
    assert_eq!(check(bytes.clone(), json!({"$bytes": "AAAA"})), "valid");
    assert_eq!(
        check(bytes.clone(), json!({"$bytes": "AAAAAA"})),
        "Record/v must not be larger than 3 bytes"
    );
    assert_eq!(
        check(bytes, json!({"$bytes": "AA"})),
        "Record/v must not be smaller than 2 bytes"
    );
    let array = json!({"type": "array", "minLength": 1, "maxLength": 2, "items": {"type": "ref", "ref": "#label"}});
    assert_eq!(check(array.clone(), json!(["a", "b"])), "valid");
    assert_eq!(
        check(array.clone(), json!(["a", "b", "c"])),
        "Record/v must not have more than 2 elements"
    );
    assert_eq!(
        check(array.clone(), json!([])),
        "Record/v must not have fewer than 1 elements"
    );
    assert_eq!(
        check(array, json!(["a", "toolong"])),
        "Record/v/1 must not be longer than 5 characters"
    );
}

#[test]
fn blobs_accept_and_max_size() {
    let field = json!({"type": "blob", "accept": ["image/*", "video/mp4"], "maxSize": 100});
    assert_eq!(check(field.clone(), blob("image/png", 100)), "valid");
    assert_eq!(check(field.clone(), blob("video/mp4", 1)), "valid");
    assert_eq!(
        check(field.clone(), blob("image/png", 101)),
        "Record/v must be a blob of at most 100 bytes, not 101"
    );
    assert_eq!(
        check(field.clone(), blob("text/plain", 1)),
        "Record/v must be a blob of type image/*, video/mp4, not text/plain"
    );
    assert_eq!(
        check(field, json!({"cid": CID, "mimeType": "image/png"})),
        "Record/v should be a blob ref, not a legacy blob ref"
    );
    assert_eq!(
        check(json!({"type": "blob", "accept": ["*/*"]}), blob("x/y", 1)),
        "valid"
    );
}

#[test]
fn unions_open_and_closed() {
    let open = json!({"type": "union", "refs": ["#point"]});
    assert_eq!(
        check(
            open.clone(),
            json!({"$type": "com.example.thing#point", "x": 1})
        ),
        "valid"
    );
    assert_eq!(
        check(
            open.clone(),
            json!({"$type": "com.other.thing", "anything": true})
        ),
        "valid"
    );
    assert_eq!(
        check(open.clone(), json!({"x": 1})),
        "Record/v must be an object which includes the \"$type\" property"
    );
    assert_eq!(
        check(open, json!({"$type": "com.example.thing#point", "x": -1})),
        "Record/v/x can not be less than 0"
    );
    let closed = json!({"type": "union", "refs": ["#point"], "closed": true});
    assert_eq!(
        check(closed, json!({"$type": "com.other.thing"})),
        "Record/v $type must be one of com.example.thing#point"
    );
    // `nsid` and `nsid#main` name the same definition.
    let mains = json!({"type": "union", "refs": ["com.example.thing"], "closed": true});
    assert_eq!(
        check(mains, json!({"$type": "com.example.thing#main"})),
        "Record/v must have the property \"v\""
    );
}

#[test]
fn refs_nested_tokens_and_unresolved() {
    let point = json!({"type": "ref", "ref": "#point"});
    assert_eq!(
        check(
            point.clone(),
            json!({"x": 1, "next": {"x": 2, "next": {"x": 3}}})
        ),
        "valid"
    );
    assert_eq!(
        check(point, json!({"x": 1, "next": {"x": 2, "next": {"y": 3}}})),
        "Record/v/next/next must have the property \"x\""
    );
    let token = json!({"type": "ref", "ref": "#flag"});
    assert_eq!(
        check(token.clone(), json!("com.example.thing#flag")),
        "valid"
    );
    assert_eq!(
        check(token, json!("com.example.thing#other")),
        "Record/v must be com.example.thing#flag"
    );
    assert_eq!(
        check(
            json!({"type": "ref", "ref": "com.missing.defs#x"}),
            json!({})
        ),
        "Record/v refers to com.missing.defs#x, which is not in the catalog"
    );
}

#[test]
fn cyclic_refs_and_deep_values_are_bounded() {
    // Refs and unions cannot be named definitions, so every cycle goes through a value level;
    // a value deep enough to follow loopA → loopB → loopA ... ends in TooDeep, not a crash.
    let loops = catalog_with(json!({"type": "ref", "ref": "#loopA"}));
    let mut deep = json!({});
    for i in 0..300 {
        deep = if i % 2 == 0 {
            json!({"a": deep})
        } else {
            json!({"b": deep})
        };
    }
    let record = json!({"$type": "com.example.thing", "v": deep});
    let err = loops
        .validate_record(&self::nsid(), &record)
        .expect_err("too deep");
    assert_eq!(err.kind, LexErrorKind::TooDeep { limit: MAX_DEPTH });
}

#[test]
fn record_type_checks() {
    let catalog = catalog_with(json!({"type": "string"}));
    assert_eq!(
        catalog
            .validate_record(&"com.example.other".parse().expect("nsid"), &json!({}))
            .map_err(|e| e.to_string()),
        Ok(RecordValidity::Unknown)
    );
    assert_eq!(
        catalog
            .validate_record(&nsid(), &json!({"$type": "com.example.other", "v": "x"}))
            .map_err(|e| e.to_string()),
        Err("Record $type must be com.example.thing, got com.example.other".to_owned())
    );
    assert_eq!(
        catalog
            .validate_record(&nsid(), &json!([1]))
            .map_err(|e| e.to_string()),
        Err("Record must be an object".to_owned())
    );
    assert_eq!(
        catalog
            .validate_record(
                &nsid(),
                &json!({"$type": "com.example.thing", "v": "x", "createdAt": "yesterday"})
            )
            .map_err(|e| e.to_string()),
        Err(
            "Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)"
                .to_owned()
        )
    );
}

fn method_catalog() -> Catalog {
    let mut catalog = Catalog::new();
    catalog
        .add(&json!({"lexicon": 1, "id": "com.example.list", "defs": {"main": {
            "type": "query",
            "parameters": {"type": "params", "required": ["repo"], "properties": {
                "repo": {"type": "string", "format": "at-identifier"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                "reverse": {"type": "boolean"},
                "tags": {"type": "array", "maxLength": 2, "items": {"type": "string", "maxLength": 3}}
            }}
        }}}))
        .expect("valid");
    catalog
        .add(&json!({"lexicon": 1, "id": "com.example.post", "defs": {
            "main": {"type": "procedure", "input": {"encoding": "application/json", "schema": {
                "type": "object", "required": ["text"], "properties": {
                    "text": {"type": "string", "maxGraphemes": 3},
                    "item": {"type": "ref", "ref": "#item"}
                }
            }}},
            "item": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
        }}))
        .expect("valid");
    catalog
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn xrpc_params() {
    let catalog = method_catalog();
    let check = |pairs: &[(&str, &str)]| {
        catalog
            .validate_params("com.example.list", &params(pairs))
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        check(&[
            ("repo", "alice.test"),
            ("limit", "100"),
            ("reverse", "true"),
            ("tags", "a"),
            ("tags", "b"),
            ("other", "x")
        ]),
        Ok(())
    );
    assert_eq!(
        check(&[]),
        Err("Params must have the property \"repo\"".to_owned())
    );
    assert_eq!(
        check(&[("repo", "not an id")]),
        Err("repo must be a valid did or a handle".to_owned())
    );
    assert_eq!(
        check(&[("repo", "a.test"), ("limit", "0")]),
        Err("limit can not be less than 1".to_owned())
    );
    assert_eq!(
        check(&[("repo", "a.test"), ("limit", "ten")]),
        Err("limit must be an integer".to_owned())
    );
    assert_eq!(
        check(&[("repo", "a.test"), ("reverse", "yes")]),
        Err("reverse must be a boolean".to_owned())
    );
    assert_eq!(
        check(&[
            ("repo", "a.test"),
            ("tags", "a"),
            ("tags", "b"),
            ("tags", "c")
        ]),
        Err("tags must not have more than 2 elements".to_owned())
    );
    assert_eq!(
        check(&[("repo", "a.test"), ("tags", "long")]),
        Err("tags/0 must not be longer than 3 characters".to_owned())
    );
    // Unknown methods pass.
    assert_eq!(
        catalog.validate_params("com.example.nope", &params(&[])),
        Ok(())
    );
}

#[test]
fn xrpc_input() {
    let catalog = method_catalog();
    assert!(catalog.json_input("com.example.post"));
    assert!(!catalog.json_input("com.example.list"));
    let check = |body: Value| {
        catalog
            .validate_input("com.example.post", &body)
            .map_err(|e| e.to_string())
    };
    assert_eq!(check(json!({"text": "abc", "item": {"n": 1}})), Ok(()));
    assert_eq!(check(json!([])), Err("Input must be an object".to_owned()));
    assert_eq!(
        check(json!({})),
        Err("Input must have the property \"text\"".to_owned())
    );
    assert_eq!(
        check(json!({"text": "abcd"})),
        Err("Input/text must not be longer than 3 graphemes".to_owned())
    );
    assert_eq!(
        check(json!({"text": "a", "item": {"n": "1"}})),
        Err("Input/item/n must be an integer".to_owned())
    );
}
