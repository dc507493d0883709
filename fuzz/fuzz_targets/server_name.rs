//! The server-name grammar: never panics; whatever parses round-trips and obeys the grammar.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxping::testing::{Host, ServerName};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(name) = ServerName::parse(s) {
        assert_eq!(name.as_str(), s);
        assert!(s.is_ascii());
        assert!(name.port() != Some(0));
        if let Host::Dns(host) = name.host() {
            assert!(host.len() <= 255 && !host.is_empty());
            assert!(host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
        }
        let rebuilt = match name.port() {
            Some(p) => format!("{}:{p}", name.host_str()),
            None => name.host_str(),
        };
        // Leading zeros in a port are allowed by the grammar and dropped here, and IPv6
        // literals are shown normalised; everything else round-trips exactly.
        if !s.contains(":0") && !matches!(name.host(), Host::Ipv6(_)) {
            assert_eq!(rebuilt, s);
        }
        let _ = name.advisories();
    }
});
