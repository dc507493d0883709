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

// What users of the crate need: the command line (`check`, `serve`), the config, the round
// `check` and `serve` run, the web app, and the error kinds of the contract.
pub mod cli;
pub mod config;
pub mod error;
pub mod web;
pub use net::USER_AGENT;
pub use net::get_trusted;
pub use net::post_trusted;
pub use net::tls::install_default_provider;
pub use services::Services;
pub use signing::Key;

/// For the integration tests, the bench crate and the fuzz targets only.
#[doc(hidden)]
pub mod testing;

// The stages, in the order data flows through them.
pub(crate) mod alert;
pub(crate) mod commands;
pub(crate) mod discovery;
pub(crate) mod history;
pub(crate) mod maintenance;
pub(crate) mod metrics;
pub(crate) mod monthly;
pub(crate) mod net;
pub(crate) mod probe;
pub(crate) mod scheduler;
pub(crate) mod vantage;

// What the stages share: names, words, statuses, numbers and time.
pub(crate) mod i18n;
pub(crate) mod numbers;
pub(crate) mod report;
pub(crate) mod server_name;
pub(crate) mod signing;
pub(crate) mod sources;
pub(crate) mod status;
pub(crate) mod text;
pub(crate) mod timestamp;

mod services;
