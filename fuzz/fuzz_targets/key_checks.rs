//! The key-response checker and Canonical JSON: never panic on any JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxping::testing::{canonical_json, check_keys};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let checks = check_keys(&value, "example.org", 1_800_000_000_000);
    if checks.all_ok {
        assert!(checks.matching_server_name && checks.has_ed25519_key);
    }
    if let Ok(text) = canonical_json(&value) {
        // Canonical JSON is stable: encoding its own parse gives the same bytes.
        let again: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&again).unwrap(), text);
    }
});
