//! Building a whole tree at once from its entries, in linear time per layer.

use atp_data::Cid;

use super::node::{Leaf, Node, Subtree};
use super::{Mst, MstError, height_for_key, validate_key};

struct Item {
    leaf: Leaf,
    height: u8,
}

impl Mst {
    /// The tree holding exactly `entries` (any order). Keys must be valid repo paths and unique.
    ///
    /// Gives the same tree as inserting the entries one by one, much faster.
    pub fn from_entries<K: Into<String>>(
        entries: impl IntoIterator<Item = (K, Cid)>,
    ) -> Result<Mst, MstError> {
        let mut items = Vec::new();
        for (key, value) in entries {
            let key: String = key.into();
            validate_key(&key)?;
            let height = height_for_key(key.as_bytes());
            items.push(Item {
                leaf: Leaf {
                    key: key.into(),
                    value,
                },
                height,
            });
        }
        items.sort_unstable_by(|a, b| a.leaf.key.cmp(&b.leaf.key));
        if let Some(pair) = items.windows(2).find(|w| w[0].leaf.key == w[1].leaf.key) {
            return Err(MstError::DuplicateKey {
                key: pair[0].leaf.key.to_string(),
            });
        }
        let Some(top) = items.iter().map(|i| i.height).max() else {
            return Ok(Mst::empty());
        };
        match build(&items, top) {
            Some(root) => Ok(Mst { root }),
            None => Ok(Mst::empty()),
        }
    }
}

/// The subtree at `height` holding `items` (sorted, all at `height` or below).
fn build(items: &[Item], height: u8) -> Option<Subtree> {
    if items.is_empty() {
        return None;
    }
    let mut leaves = Vec::new();
    let mut subtrees = Vec::new();
    let mut start = 0;
    for (i, item) in items.iter().enumerate() {
        if item.height == height {
            subtrees.push(build_gap(&items[start..i], height));
            leaves.push(item.leaf.clone());
            start = i + 1;
        }
    }
    subtrees.push(build_gap(&items[start..], height));
    Node::new(height, leaves, subtrees).into_subtree()
}

fn build_gap(items: &[Item], parent_height: u8) -> Option<Subtree> {
    // Height-0 nodes take every remaining item as a leaf, so their gaps are always empty.
    parent_height.checked_sub(1).and_then(|h| build(items, h))
}
