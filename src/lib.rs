//! mxping: a Matrix homeserver latency and availability monitor.
//!
//! Data flows one way: config → scheduler → discovery → probe → history → page / API / metrics.
//! Each stage is a folder: `config/` (servers.toml → validated config), `scheduler/` (per-server
//! loops, hysteresis, published snapshots), `discovery/` (the spec's resolution steps, DNS),
//! `net/` (the guarded connector, the small HTTPS client, TLS, error classification), `probe/`
//! (federation rounds, signing keys, the client API), `history/` (rings, rollups, events, the
//! store), `web/` (pages, API, badges, feed) and `cli/` (`check`, `serve`). [`Services`] wires
//! discovery and probing into one round. Modules that the tests, the bench crate and the fuzz
//! targets don't reach are crate-private.

// The stages, in the order data flows through them.
pub mod alert;
pub mod cli;
pub mod config;
pub mod discovery;
pub mod history;
pub mod metrics;
pub mod net;
pub mod probe;
pub mod scheduler;
pub mod vantage;
pub mod web;

// What the stages share: the contract's objects, error kinds, names, words, numbers and time.
pub mod error;
pub mod i18n;
pub(crate) mod numbers;
pub mod report;
pub mod server_name;
pub mod signing;
pub mod sources;
pub mod status;
pub(crate) mod text;
pub(crate) mod timestamp;

mod services;

pub use net::USER_AGENT;
pub use services::Services;
