//! The server's services: the repository write path, account creation and sessions, and the
//! blob and key files. Handlers call one service function each.

pub mod account;
pub mod account_delete;
pub mod admin;
pub mod blob;
pub mod credentials;
pub mod email_tokens;
pub mod files;
pub mod handle;
pub mod lexicon_resolve;
pub mod mailer;
pub mod method_policy;
pub mod migration;
pub mod preferences;
pub mod repo_import;
pub mod resolution;
pub mod service_auth;
pub mod signing_key;
pub mod status;
pub mod writer;
