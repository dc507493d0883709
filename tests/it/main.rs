//! Integration tests: the production discovery and probe code against a loopback DNS server
//! and HTTPS servers on the real ports. One test binary (links once), modules per area.
// Support code is shared by the test modules only; `pub` there means "for the tests".
#![allow(unreachable_pub)]
// Tests connect to the loopback servers they started themselves (clippy.toml forbids raw
// connects in mxping so its guard cannot be skipped; that rule is for the monitor, not them).
#![allow(clippy::disallowed_methods)]

mod support;

mod alerts;
mod apps;
mod bad_config;
mod browser;
mod chinese;
mod cli;
mod client_api;
mod contrib;
mod discovery;
mod federation;
mod hostile;
mod layout;
mod listener;
mod maintenance;
mod packaging;
mod page;
mod persistence;
mod probe;
mod reports;
mod scheduler;
mod security;
mod serve;
mod signup;
mod sources;
mod vantage;
