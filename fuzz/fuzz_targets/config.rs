//! The config loader: never panics; every error has a position inside the text and a fix.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxping::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = Config::parse(text, "fuzz.toml", None) {
        assert!(!e.problems.is_empty());
        let lines = text.lines().count().max(1) + 1;
        for p in &e.problems {
            assert!(p.line <= lines, "line {} of {lines}", p.line);
            assert!(!p.key.is_empty() && !p.message.is_empty());
        }
        let _ = e.to_string();
    }
});
