//! Integration tests: the production discovery and probe code against a loopback DNS server
//! and HTTPS servers on the real ports. One test binary (links once), modules per area.

mod support;

mod discovery;
