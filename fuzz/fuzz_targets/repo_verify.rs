//! Repository verification (`atp-repo`) never panics on an untrusted CAR, and its verdicts agree.
//!
//! The first byte picks a mode (the rest is a CAR):
//! - `0`: the CAR as given (every block must hash to its CID, so mutations mostly test framing).
//! - `1`: the CAR is read without hash checks and repaired: blocks are taken in reverse order
//!   (a repository CAR lists parents before children), each DAG-CBOR block re-encoded with its
//!   links rewritten to the repaired CIDs, and the root commit re-signed with a fixed k256 key.
//!   Mutations then reach the MST checks (order, heights, prefix compression, empty nodes, shared
//!   subtrees, fanout, depth) and the record checks, with a valid signature.
//!
//! On the resulting CAR: `verify_car` with the fixed key and without; then, over the blocks, what a
//! firehose consumer runs on a commit: listing the tree (`Mst::leaves_from`), record proofs
//! (`verify_record_proof`) and operation inversion (`invert_ops`).
//!
//! Properties: verifying with the key succeeds only if verifying without it does, with the same
//! summary; a commit the target signed is never refused for its signature; a verified tree lists
//! exactly its records, proves each of them, and inverting the creation of all of them (when few)
//! gives the empty tree.
#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use atp_crypto::{Curve, Keypair, PublicKey};
use atp_data::car::CarWriter;
use atp_data::{Cid, Value, cbor, cid};
use atp_repo::{
    BlockMap, Mst, RecordOp, SignatureStatus, SignedCommit, VerifyError, WriteAction, invert_ops,
    verify_car, verify_record_proof,
};
use libfuzzer_sys::fuzz_target;

static KEY: LazyLock<Keypair> =
    LazyLock::new(|| Keypair::from_private_bytes(Curve::K256, &[0x11; 32]).expect("fixed scalar"));
static PUBLIC: LazyLock<PublicKey> = LazyLock::new(|| KEY.public_key());

/// Keys probed when the tree cannot be listed.
const PROBES: [&str; 3] = [
    "app.bsky.feed.post/3jzfcijpj2z2a",
    "app.bsky.actor.profile/self",
    "com.example.record/3jqfcqzm3fo2j",
];

fn read_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// CARv1 framing without hash checks: roots and (CID, bytes) sections.
fn read_car_unchecked(data: &[u8]) -> Option<(Vec<Cid>, Vec<(Cid, Vec<u8>)>)> {
    let mut pos = 0;
    let len = usize::try_from(read_varint(data, &mut pos)?).ok()?;
    let header = cbor::from_slice(data.get(pos..pos.checked_add(len)?)?).ok()?;
    pos += len;
    let roots = match header.as_map()?.get("roots")? {
        Value::Array(items) => items
            .iter()
            .filter_map(|v| match v {
                Value::Link(c) => Some(*c),
                _ => None,
            })
            .collect(),
        _ => return None,
    };
    let mut blocks = Vec::new();
    while pos < data.len() {
        let Some(len) = read_varint(data, &mut pos).and_then(|l| usize::try_from(l).ok()) else {
            break;
        };
        let Some(section) = pos.checked_add(len).and_then(|end| data.get(pos..end)) else {
            break;
        };
        pos += len;
        let Ok((cid, n)) = cid::read_prefix(section) else {
            continue;
        };
        blocks.push((cid, section[n..].to_vec()));
    }
    Some((roots, blocks))
}

fn relink(value: Value, map: &HashMap<Cid, Cid>) -> Value {
    match value {
        Value::Link(c) => Value::Link(*map.get(&c).unwrap_or(&c)),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| relink(v, map)).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k, relink(v, map)))
                .collect(),
        ),
        other => other,
    }
}

/// Rehashes the blocks bottom-up and re-signs the root commit; returns the new CAR, and whether
/// the root is a commit the target signed.
fn repair(data: &[u8]) -> Option<(Vec<u8>, bool)> {
    let (roots, blocks) = read_car_unchecked(data)?;
    let mut map = HashMap::new();
    let mut fixed = Vec::with_capacity(blocks.len());
    for (old, bytes) in blocks.into_iter().rev() {
        let (new, bytes) = if old.codec() == cid::DAG_CBOR {
            let bytes = match cbor::from_slice(&bytes) {
                Ok(value) => cbor::to_vec(&relink(value, &map)),
                Err(_) => bytes,
            };
            (cid::cid_for_cbor(&bytes), bytes)
        } else {
            (cid::cid_for_raw(&bytes), bytes)
        };
        map.insert(old, new);
        fixed.push((new, bytes));
    }
    fixed.reverse();
    let mut roots: Vec<Cid> = roots.iter().map(|c| *map.get(c).unwrap_or(c)).collect();
    let mut signed = false;
    if let [root] = roots.as_mut_slice()
        && let Some(i) = fixed.iter().position(|(c, _)| c == root)
        && let Ok(commit) = SignedCommit::from_cbor(&fixed[i].1)
        && let Ok(commit) = commit.commit.sign(&*KEY)
    {
        let bytes = commit.to_cbor();
        let new = cid::cid_for_cbor(&bytes);
        *root = new;
        fixed[i] = (new, bytes);
        signed = true;
    }
    let mut writer = CarWriter::new(Vec::new(), &roots).ok()?;
    for (c, bytes) in &fixed {
        writer.write_block(c, bytes).ok()?;
    }
    Some((writer.finish().ok()?, signed))
}

fn check(car: &[u8], signed: bool) {
    let keyed = verify_car(car, Some(&PUBLIC));
    let unkeyed = verify_car(car, None);
    if signed {
        assert!(
            !matches!(
                keyed,
                Err(VerifyError::BadSignature { .. } | VerifyError::HighS { .. })
            ),
            "own signature refused: {keyed:?}"
        );
    }
    match (&keyed, &unkeyed) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.signature, SignatureStatus::Valid);
            assert_eq!(b.signature, SignatureStatus::NotChecked);
            assert_eq!(
                (a.records, a.mst_nodes, &a.collections),
                (b.records, b.mst_nodes, &b.collections)
            );
        }
        (Ok(a), Err(e)) => panic!("verified with the key ({a:?}) but not without: {e}"),
        (Err(_), _) => {}
    }

    // What a firehose consumer does with a commit's blocks.
    let Ok(mut reader) = atp_data::car::CarReader::new(car) else {
        return;
    };
    let roots = reader.roots().to_vec();
    let mut blocks = BlockMap::new();
    while let Ok(Some((c, bytes))) = reader.next_block() {
        blocks.insert(c, bytes);
    }
    let Some(data) = roots
        .first()
        .and_then(|root| blocks.get(root))
        .and_then(|bytes| SignedCommit::from_cbor(bytes).ok())
        .map(|commit| *commit.data())
    else {
        return;
    };
    let tree = Mst::load(data);
    let leaves = tree.leaves_from(&blocks);
    if let Ok(summary) = &unkeyed {
        let leaves = leaves.as_ref().expect("a verified tree lists");
        assert_eq!(leaves.len() as u64, summary.records);
        assert!(
            leaves.windows(2).all(|w| w[0].key < w[1].key),
            "leaves out of order"
        );
        for leaf in leaves.iter().take(16) {
            assert_eq!(
                verify_record_proof(&data, &leaf.key, &blocks).ok(),
                Some(Some(leaf.value)),
                "proof of {}",
                leaf.key
            );
        }
    }
    let keys: Vec<(String, Option<Cid>)> = match &leaves {
        Ok(leaves) => leaves
            .iter()
            .take(16)
            .map(|l| (l.key.clone(), Some(l.value)))
            .collect(),
        Err(_) => PROBES.iter().map(|k| ((*k).to_owned(), None)).collect(),
    };
    for (key, _) in &keys {
        let _ = verify_record_proof(&data, key, &blocks);
    }
    let ops: Vec<RecordOp> = keys
        .iter()
        .map(|(key, value)| RecordOp {
            action: if value.is_some() {
                WriteAction::Create
            } else {
                WriteAction::Delete
            },
            path: key.clone(),
            cid: *value,
            prev: value.is_none().then_some(data),
        })
        .collect();
    let inverted = invert_ops(&data, &ops, &blocks);
    if let (Ok(summary), Ok(leaves)) = (&unkeyed, &leaves)
        && leaves.len() <= 16
    {
        let _ = summary;
        assert_eq!(
            inverted.as_ref().ok(),
            Some(&Mst::empty().root_cid()),
            "inverting every creation: {inverted:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0 => check(rest, false),
        1 => {
            if let Some((car, signed)) = repair(rest) {
                check(&car, signed);
            }
        }
        _ => {}
    }
});
