//! `[federation]`: mxping serves its own signing key, `/version` and, when asked, a server
//! well-known, as a minimal federation server; the key verifies with the same checks mxping
//! runs on every homeserver's keys, and expires within one check interval.

use serde_json::{Value, json};

use crate::support::serve::Serve;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mxping_serves_its_self_signed_key_version_and_well_known() {
    let mut h = Harness::new().await;
    let key = mxping::Key::generate();
    std::fs::write(h.dir.path().join("federation.key"), key.to_file()).unwrap();
    h.extra = "[federation]\nserver_name = \"status.test\"\nkey_file = \"federation.key\"\n\
               interval = \"5m\"\nwell_known = \"status.test:443\"\n"
        .into();
    h.servers = vec!["example.test".into()];
    let s = Serve::start(&h.config_file()).await;

    let r = s.get("/_matrix/key/v2/server").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        "no-store",
        "fetched again for each check"
    );
    let keys: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    // The checks mxping runs on every homeserver's keys: name, expiry, a self-signature.
    let checks = mxping::testing::check_keys(&keys, "status.test", now_ms);
    assert!(checks.all_ok, "{checks:?}");
    assert!(
        checks
            .ed25519
            .values()
            .all(|k| k.valid_key && k.matching_signature)
    );
    assert!(
        checks.matching_server_name && checks.future_valid_until_ts,
        "{checks:?}"
    );
    assert_eq!(checks.verify_keys[&key.id], key.public());
    // Valid for one interval, no longer.
    let until = keys["valid_until_ts"].as_i64().unwrap();
    assert!(
        until > now_ms + 4 * 60_000 && until <= now_ms + 5 * 60_000 + 2_000,
        "{until} vs {now_ms}"
    );

    let version = s.json("/_matrix/federation/v1/version").await;
    assert_eq!(version["server"]["name"], "mxping");
    assert_eq!(version["server"]["version"], env!("CARGO_PKG_VERSION"));
    let wk = s.json("/.well-known/matrix/server").await;
    assert_eq!(wk, json!({"m.server": "status.test:443"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_federation_nothing_federated_is_served() {
    let mut h = Harness::new().await;
    h.servers = vec!["example.test".into()];
    let s = Serve::start(&h.config_file()).await;
    for path in ["/_matrix/key/v2/server", "/_matrix/federation/v1/version"] {
        let r = s.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(v["errcode"], "M_UNRECOGNIZED", "{path}");
    }
    assert_eq!(s.get("/.well-known/matrix/server").await.status(), 404);
}
