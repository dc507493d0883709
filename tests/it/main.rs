//! Integration tests: the production discovery and probe code against a loopback DNS server
//! and HTTPS servers on the real ports. One test binary (links once), modules per area.
// Support code is shared by the test modules only; `pub` there means "for the tests".
#![allow(unreachable_pub)]

mod support;

mod bad_config;
mod browser;
mod cli;
mod client_api;
mod contrib;
mod discovery;
mod hostile;
mod packaging;
mod page;
mod persistence;
mod probe;
mod security;
mod serve;
