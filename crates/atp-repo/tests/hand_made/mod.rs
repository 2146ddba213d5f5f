//! MST nodes made by hand, for tests that build trees the writer would not.

use atp_data::Cid;
use atp_data::cid::cid_for_cbor;
use atp_repo::mst::{EntryData, NodeData, height_for_key};

/// A key of the given height, searching rkeys of `com.example.thing` from `from`.
pub(crate) fn key_at(height: u8, from: usize) -> String {
    (from..)
        .map(|i| format!("com.example.thing/k{i:06}"))
        .find(|k| height_for_key(k.as_bytes()) == height)
        .unwrap()
}

/// The node with `left` and these entries (key, value, right subtree), and its CID.
pub(crate) fn node(left: Option<Cid>, entries: &[(&str, Cid, Option<Cid>)]) -> (Cid, Vec<u8>) {
    let mut prev: &[u8] = &[];
    let entries = entries
        .iter()
        .map(|(key, value, right)| {
            let p = prev
                .iter()
                .zip(key.as_bytes())
                .take_while(|(a, b)| a == b)
                .count();
            prev = key.as_bytes();
            EntryData {
                prefix_len: p,
                key_suffix: key.as_bytes()[p..].to_vec(),
                value: *value,
                right: *right,
            }
        })
        .collect();
    let bytes = NodeData { left, entries }.to_cbor();
    (cid_for_cbor(&bytes), bytes)
}
