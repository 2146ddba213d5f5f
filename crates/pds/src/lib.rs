//! The PDS server core: typed configuration, the XRPC routes, authentication, the single
//! repository write path and the start-up wiring behind `pds serve`.
//!
//! Start reading at [`api`] (the route table), then [`service::writer`] (the one write path).
//! The command-line tools live in the binary (`src/cli/`), not here.

pub mod api;
pub mod auth;
pub mod config;
pub mod crawlers;
pub mod jobs;
pub mod lexicons;
pub mod retention;
pub mod sequencer;
pub mod serve;
pub mod service;
pub mod state;

pub use api::app;
pub use config::Config;
pub use state::AppState;
