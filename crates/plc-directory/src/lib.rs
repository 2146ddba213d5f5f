//! An embedded `did:plc` directory: the public PLC directory's HTTP API, backed by SQLite.
//!
//! What this crate owns:
//! - [`PlcDirectory`]: the in-process API (submit, resolve, logs, export) over one SQLite file,
//!   so the PDS can use the directory without HTTP;
//! - [`http`]: the same HTTP API as `plc.directory` ([`router`], [`serve`]);
//! - the storage: a versioned schema, every accepted operation with its CID, `nullified` flag and
//!   `createdAt` (see `store`).
//!
//! What it deliberately does not own: the rules. Operations, signatures, CIDs, audit-log
//! replay, recovery and the policy for new operations are `atp_identity::plc`, which is pure;
//! this crate only stores what that code accepts, and serves it. It has no `pds` knowledge and is
//! not a client of other directories.
//!
//! Specs: <https://web.plc.directory/spec/v0.1/did-plc>, the API at
//! <https://web.plc.directory/api/redoc>; behaviour follows the reference server,
//! `did-method-plc` `packages/server`.
//!
//! # Tricky bits
//! - Time is an argument: [`PlcDirectory::submit`] takes `now`; the HTTP server reads it from a
//!   [`Clock`] ([`SystemClock`] in production, [`ManualClock`] in tests).
//! - `createdAt` is stored in milliseconds and strictly increases across the directory (a
//!   submission in the same millisecond as the previous one is stamped 1 ms later), so replaying
//!   a served audit log gives the same verdicts as the directory's own check, and `/export`
//!   pages on `after` without skipping entries.
//! - A tombstoned DID answers 410 on `/{did}` and `/{did}/data`, as `plc.directory`, while its
//!   logs stay readable.
#![deny(clippy::unwrap_used, clippy::panic, clippy::print_stdout)]
#![warn(missing_docs)]

mod clock;
mod directory;
mod error;
pub mod http;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use directory::{MAX_EXPORT_COUNT, PlcDirectory, Submitted};
pub use error::DirectoryError;
pub use http::{HttpState, router, serve, serve_with_shutdown};
