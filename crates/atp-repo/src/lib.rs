//! AT Protocol repositories: the Merkle Search Tree, signed commits, the write path, proofs and
//! sync v1.1 operation inversion, over a pluggable block store.
//!
//! What this crate owns:
//! - [`mst`]: the MST ([`Mst`]): lazy loading from a [`BlockStore`], insert, delete, get, ordered
//!   listing, bulk building, diffs proportional to the change, and a stable-order walk.
//! - [`blockstore`]: the [`BlockStore`] seam (async, batch reads, blocks tagged with the revision
//!   that introduced them) and [`MemoryBlockStore`].
//! - [`commit`]: [`UnsignedCommit`] / [`SignedCommit`] (v3 written, v2 read), signing through
//!   [`atp_crypto::Signer`], strict verification, and [`next_rev`].
//! - [`write`](mod@write): [`RecordWrite`] → [`format_commit`] → [`CommitData`] (ops with previous CIDs, new
//!   and removed blocks, the blocks a sync v1.1 consumer needs), [`apply_commit`], [`create_repo`].
//! - [`proof`]: record proofs (inclusion and absence) and covering proofs.
//! - [`invert`]: undoing a commit's ops on the blocks it carries to check `prevData`, as relays do.
//! - [`export`]: streaming CAR export, full ([`export_car`]) and since a revision
//!   ([`export_car_since`]); [`import`]: staging a CAR into a store in batches ([`stage_car`]);
//!   [`verify`](mod@verify): full repository verification ([`verify_repo`], [`verify_car`]), all
//!   over the batched, checked walk of [`traverse`].
//!
//! What it deliberately does not own: HTTP, SQL (a SQLite [`BlockStore`] lives in `pds-store`),
//! lexicon validation of records, firehose (`#commit`) wire types (the PDS maps [`CommitData`]
//! into them), and the CAR codec itself (`atp_data::car`).
//!
//! Specs: <https://atproto.com/specs/repository>, <https://atproto.com/specs/sync>.
#![deny(clippy::unwrap_used, clippy::panic, clippy::print_stdout)]
#![warn(missing_docs)]

pub mod blockstore;
pub mod commit;
pub mod export;
pub mod import;
pub mod invert;
pub mod mst;
pub mod proof;
pub mod traverse;
pub mod verify;
pub mod write;

pub use blockstore::{BlockMap, BlockStore, FoundBlocks, MemoryBlockStore, StoreError};
pub use commit::{CommitError, SignedCommit, UnsignedCommit, next_rev};
pub use export::{
    ArenaExport, BlockArena, ExportError, ExportStats, export_car, export_car_from_arena,
    export_car_since,
};
pub use import::{StagedCar, stage_car};
pub use invert::{InvertError, invert_ops, verify_prev_data};
pub use mst::{Mst, MstDiff, MstError};
pub use proof::{covering_proof, record_proof, verify_record_proof};
pub use traverse::{Traversal, Visit};
pub use verify::{
    BlockKind, RepoSummary, SignatureStatus, VerifyError, read_commit, verify_car, verify_repo,
};
pub use write::{
    CommitData, RecordOp, RecordWrite, RepoError, RepoHead, WriteAction, apply_commit, create_repo,
    format_commit, format_commit_on, format_genesis,
};
