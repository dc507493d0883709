//! The `mxping` binary: `check` text and JSON against the harness, exit codes, `validate`.

use std::process::Output;

use serde_json::{Value, json};

use crate::support::https::well_known;
use crate::support::*;

async fn mxping(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
        .args(args)
        .env("MXPING_LOG", "off")
        .output()
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// example.test delegating to matrix.example.test:443 (healthy).
async fn delegated() -> (Harness, TestHost, TestHost) {
    let mut h = Harness::new().await;
    let mut origin = h.host("example.test");
    h.serve(
        &mut origin,
        443,
        h.ca.leaf(&["example.test"]),
        well_known(json!({"m.server": "matrix.example.test:443"})),
    );
    let mut m = h.host("matrix.example.test");
    h.homeserver(&mut m, 443, "matrix.example.test", "example.test");
    (h, origin, m)
}

#[tokio::test]
async fn check_prints_the_chain_and_a_verdict() {
    let (h, _o, m) = delegated().await;
    let config = h.config_file();
    let out = mxping(&[
        "check",
        "example.test",
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for expected in [
        "example.test — ● green",
        "well-known   https://example.test/.well-known/matrix/server → HTTP 200",
        "delegates to matrix.example.test:443",
        "cached until",
        "method       explicit_port (step 3.2: delegated hostname with an explicit port)",
        &format!(
            "target       {}:443  Host: matrix.example.test:443  TLS name: matrix.example.test",
            m.ip
        ),
        &format!("✔ {}:443 (IPv4)  ok", m.ip),
        "software Synapse 1.163.2",
        "keys ✔ server_name matches",
        "Verdict: OK — federation works: 1 address answered",
        // example.test answers /register with 404 M_UNRECOGNIZED: no way to sign up.
        "Sign-up (POST /register with no auth, /login, auth_metadata)",
        "✖ closed: registration is disabled",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[tokio::test]
async fn check_json_follows_the_server_contract() {
    let (h, _o, m) = delegated().await;
    let config = h.config_file();
    let out = mxping(&[
        "check",
        "example.test",
        "--config",
        config.to_str().unwrap(),
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "example.test");
    assert_eq!(v["status"], "green");
    assert!(v["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(v["checked_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        v["software"],
        json!({"name": "Synapse", "version": "1.163.2"})
    );
    let d = &v["discovery"];
    assert_eq!(d["well_known"], "delegated");
    assert_eq!(d["delegated_name"], "matrix.example.test:443");
    assert_eq!(d["method"], "explicit_port");
    let target = &d["targets"][0];
    assert_eq!(target["address"], format!("{}:443", m.ip));
    assert_eq!(target["host_header"], "matrix.example.test:443");
    assert_eq!(target["tls_name"], "matrix.example.test");
    let a = &v["addresses"][0];
    assert_eq!(a["address"], format!("{}:443", m.ip));
    assert_eq!(a["ip_family"], "ipv4");
    assert_eq!(a["ok"], true);
    assert_eq!(a["error"], Value::Null);
    assert!(a["phases_ms"]["connect"].is_number() && a["phases_ms"]["tls"].is_number());
    assert_eq!(a["phases_ms"]["requests"].as_array().unwrap().len(), 4);
    assert_eq!(a["keys"]["checks"]["all_ok"], true);
    assert_eq!(
        a["keys"]["checks"]["ed25519"]["ed25519:test"]["matching_signature"],
        true
    );
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["federation_ok"], true);
    assert_eq!(v["signup"]["status"], "closed");
    assert_eq!(v["signup"]["error"], Value::Null);
}

#[tokio::test]
async fn check_exits_1_when_federation_is_broken_and_says_why() {
    let h = Harness::new().await;
    let host = h.host("example.test");
    drop(host); // nothing listens anywhere
    let config = h.config_file();
    let out = mxping(&[
        "check",
        "example.test",
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("connect_refused"), "{text}");
    assert!(
        text.contains("Verdict: FAIL — federation is broken: no address answered"),
        "{text}"
    );

    let out = mxping(&[
        "check",
        "example.test",
        "--config",
        config.to_str().unwrap(),
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "red");
    assert_eq!(v["error"]["kind"], "connect_refused");
    assert_eq!(v["federation_ok"], false);
}

#[tokio::test]
async fn check_exits_2_for_an_invalid_name_without_touching_the_network() {
    let h = Harness::new().await;
    let config = h.config_file();
    let out = mxping(&[
        "check",
        "2001:db8::1",
        "--config",
        config.to_str().unwrap(),
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "invalid_name");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[2001:db8::1]")
    );
    assert!(h.dns.queries().is_empty());
}

#[tokio::test]
async fn bad_config_exits_2_with_file_line_column_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[monitor]\ninterval = \"soon\"\n[[server]]\nname = \"matrix.org\"\n",
    )
    .unwrap();
    let shown = path.display().to_string();
    for args in [
        vec!["validate", "--config", &shown],
        vec!["check", "matrix.org", "--config", &shown],
    ] {
        let out = mxping(&args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "{shown}:2:12: [monitor] interval: \"soon\" is not a duration"
            )),
            "{err}"
        );
        assert!(
            err.contains("fix: write a duration such as \"30s\""),
            "{err}"
        );
        assert!(stdout(&out).is_empty());
    }
}

#[tokio::test]
async fn the_shipped_config_validates() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/servers.toml");
    let out = mxping(&["validate", "--config", shipped]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("valid (5 servers)"));
}

#[tokio::test]
async fn check_verdicts_name_the_cause() {
    // The SRV "no service" target.
    let h = Harness::new().await;
    h.dns.srv("_matrix-fed._tcp.example.test", 0, 0, 0, ".");
    let config = h.config_file();
    let out = mxping(&[
        "check",
        "example.test",
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("SRV          _matrix-fed._tcp.example.test → unavailable"),
        "{text}"
    );
    assert!(
        text.contains("Verdict: FAIL — federation is broken:")
            && text.contains("(service_unavailable)"),
        "{text}"
    );

    // Dual stack with IPv6 refusing: partly working, exit 1, both addresses listed.
    let mut h = Harness::new().await;
    let mut v4 = h.host("dual.test");
    h.dns.aaaa("dual.test", "::1".parse().unwrap());
    h.dns
        .srv("_matrix-fed._tcp.example.test", 10, 0, 8448, "dual.test");
    h.homeserver(&mut v4, 8448, "example.test", "example.test");
    let config = h.config_file();
    let out = mxping(&[
        "check",
        "example.test",
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("✖ [::1]:8448 (IPv6)  connect_refused"),
        "{text}"
    );
    assert!(
        text.contains(&format!("✔ {}:8448 (IPv4)  ok", v4.ip)),
        "{text}"
    );
    assert!(
        text.contains("Verdict: FAIL — federation partly works: 1 of 2 addresses answered"),
        "{text}"
    );
    assert!(
        text.contains("status yellow: IPv6 address [::1]:8448 failing: connect_refused"),
        "{text}"
    );

    // Every address answers but the signing keys are for another name.
    let mut h = Harness::new().await;
    let mut host = h.host("example.test");
    h.homeserver(&mut host, 8448, "example.test", "other.test");
    let config = h.config_file();
    let out = mxping(&[
        "check",
        "example.test",
        "--config",
        config.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("keys ✖ server_name MISMATCH"), "{text}");
    assert!(text.contains("Verdict: FAIL — federation is broken: every address answers, but the signing-key checks fail"), "{text}");
}

/// Issue 11 item 10: `[tls] roots = "system"` trusts the operating system's store (here the
/// test CA, given to the child process through SSL_CERT_FILE, which the OS store honours) and
/// not the built-in public roots; `"webpki"` (the default) trusts the built-in roots only.
#[tokio::test]
async fn tls_roots_can_be_the_operating_systems_store() {
    let (h, _o, _m) = delegated().await;
    let without_extra = h.config_text().replace(
        &format!("extra_ca_file = \"{}\"", h.ca.pem_path.display()),
        "extra_ca_file = \"\"",
    );
    assert_ne!(without_extra, h.config_text());
    for (roots, code, expect) in [
        ("system", 0, "Verdict: OK"),
        ("webpki", 1, "not signed by a trusted CA"),
    ] {
        let text = without_extra.replace("[tls]\n", &format!("[tls]\nroots = \"{roots}\"\n"));
        let path = h.dir.path().join(format!("{roots}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
            .args(["check", "example.test", "--config", path.to_str().unwrap()])
            .env("MXPING_LOG", "off")
            .env("SSL_CERT_FILE", &h.ca.pem_path)
            .env("SSL_CERT_DIR", h.dir.path().join("no-such-dir"))
            .output()
            .await
            .unwrap();
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{roots}: {text}{}",
            stderr(&out)
        );
        assert!(text.contains(expect), "{roots}: {text}");
    }
}
