//! The server's services: the repository write path, account creation and sessions, and the
//! blob and key files. Handlers call one service function each.

pub mod account;
pub mod blob;
pub mod credentials;
pub mod files;
pub mod handle;
pub mod signing_key;
pub mod status;
pub mod writer;
