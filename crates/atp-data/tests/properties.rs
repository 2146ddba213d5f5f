//! Property tests: the wire forms are exact inverses of each other on arbitrary values.

use std::collections::BTreeMap;

use atp_data::car::{CarReader, CarWriter};
use atp_data::cbor;
use atp_data::cid::{cid_for_cbor, cid_for_raw};
use atp_data::json::{from_json, to_json};
use atp_data::{Cid, Value};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

fn arb_cid() -> impl Strategy<Value = Cid> {
    (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..16)).prop_map(|(raw, seed)| {
        if raw {
            cid_for_raw(&seed)
        } else {
            cid_for_cbor(&seed)
        }
    })
}

/// Map keys: any text except a leading `$`, so that JSON's `$link`/`$bytes`/`$type` rules are not
/// triggered by accident (those are covered by the vector tests).
fn arb_key() -> impl Strategy<Value = String> {
    "\\PC{0,12}".prop_filter("reserved $ keys", |k| !k.starts_with('$'))
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Integer),
        prop_oneof![
            Just(0i64),
            Just(23),
            Just(24),
            Just(255),
            Just(256),
            Just(-24),
            Just(-25)
        ]
        .prop_map(Value::Integer),
        "\\PC{0,24}".prop_map(Value::String),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
        arb_cid().prop_map(Value::Link),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(arb_key(), inner, 0..8)
                .prop_map(|m: BTreeMap<String, Value>| Value::Map(m)),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cbor_round_trip_is_identity_and_canonical(value in arb_value()) {
        let bytes = cbor::to_vec(&value);
        let decoded = cbor::from_slice(&bytes).unwrap();
        prop_assert_eq!(&decoded, &value);
        prop_assert_eq!(cbor::to_vec(&decoded), bytes.clone());
        let (prefixed, used) = cbor::from_slice_prefix(&[bytes.as_slice(), &[0xf6]].concat()).unwrap();
        prop_assert_eq!(prefixed, value);
        prop_assert_eq!(used, bytes.len());
    }

    #[test]
    fn json_round_trip_is_identity(value in arb_value()) {
        let json = to_json(&value);
        prop_assert_eq!(from_json(&json).unwrap(), value.clone());
        // Through text as well, as the values travel over HTTP.
        let text = serde_json::to_vec(&json).unwrap();
        prop_assert_eq!(atp_data::json::from_json_slice(&text).unwrap(), value);
    }

    #[test]
    fn car_write_read_is_identity(
        values in proptest::collection::vec(arb_value(), 0..12),
        raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..4),
        root_count in 0usize..3,
    ) {
        let mut blocks: Vec<(Cid, Vec<u8>)> = values
            .iter()
            .map(|v| {
                let bytes = cbor::to_vec(v);
                (cid_for_cbor(&bytes), bytes)
            })
            .collect();
        blocks.extend(raw.into_iter().map(|b| (cid_for_raw(&b), b)));
        let roots: Vec<Cid> = blocks.iter().take(root_count).map(|(c, _)| *c).collect();
        let mut writer = CarWriter::new(Vec::new(), &roots).unwrap();
        for (cid, data) in &blocks {
            writer.write_block(cid, data).unwrap();
        }
        let written = writer.bytes_written();
        let car = writer.finish().unwrap();
        prop_assert_eq!(written, car.len() as u64);

        let reader = CarReader::new(car.as_slice()).unwrap();
        prop_assert_eq!(reader.roots(), roots.as_slice());
        let read: Vec<(Cid, Vec<u8>)> = reader.collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(read, blocks);
    }

    #[test]
    fn insert_map_entries_is_insert_then_encode(
        map in proptest::collection::btree_map(arb_key(), arb_value(), 0..30),
        extra in proptest::collection::btree_map(arb_key(), arb_value(), 0..4),
    ) {
        let bytes = cbor::to_vec(&Value::Map(map.clone()));
        let encoded: Vec<(String, Vec<u8>)> =
            extra.iter().map(|(k, v)| (k.clone(), cbor::to_vec(v))).collect();
        let entries: Vec<(&str, &[u8])> =
            encoded.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        let mut out = vec![0x42];
        let result = cbor::insert_map_entries(&bytes, &entries, &mut out);
        if extra.keys().any(|k| map.contains_key(k)) {
            prop_assert!(matches!(result, Err(cbor::InsertError::Exists(_))));
            prop_assert_eq!(out, vec![0x42]);
        } else {
            result.unwrap();
            let mut merged = map;
            merged.extend(extra);
            let want = cbor::to_vec(&Value::Map(merged));
            prop_assert_eq!(&out[1..], want.as_slice());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        // The allocation-free check gives the same verdict as the decoder.
        prop_assert_eq!(cbor::validate(&bytes).err(), cbor::from_slice(&bytes).err());
        let mut out = Vec::new();
        if cbor::insert_map_entries(&bytes, &[("seq", &[0x01])], &mut out).is_err() {
            prop_assert!(out.is_empty());
        }
        if let Ok(value) = cbor::from_slice(&bytes) {
            prop_assert_eq!(cbor::to_vec(&value), bytes.clone());
        }
        if let Ok(reader) = CarReader::new(bytes.as_slice()) {
            for block in reader {
                if block.is_err() {
                    break;
                }
            }
        }
    }
}
