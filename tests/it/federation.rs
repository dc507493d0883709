//! `[federation]`: mxping serves its own signing key, `/version` and, when asked, a server
//! well-known, as a minimal federation server; the key verifies with the same checks mxping
//! runs on every homeserver's keys, and expires within one check interval.

use std::time::Duration;

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
    // Valid for half an interval: fetched again for the next check.
    let until = keys["valid_until_ts"].as_i64().unwrap();
    assert!(
        until > now_ms + 2 * 60_000 && until <= now_ms + 150_000 + 2_000,
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

/// What a homeserver does with a request signed as another server (spec "Request
/// Authentication"), as a stand-in: read the `X-Matrix` header, fetch the origin's key from
/// where the origin publishes it (mxping serve, over HTTP with the proxy's `X-Forwarded-For`,
/// as nginx in front of mxping sends it), and verify the signature over the canonical JSON of
/// method, URI, origin and destination.
mod stand_in {
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, SocketAddr};

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use serde_json::{Value, json};

    use crate::support::Seen;

    /// The `X-Matrix` header's parameters (quoted values; what mxping writes).
    pub fn x_matrix(header: &str) -> Option<(String, String, String, String)> {
        let params = header.strip_prefix("X-Matrix ")?;
        let mut found = std::collections::HashMap::new();
        for part in params.split(',') {
            let (k, v) = part.split_once('=')?;
            found.insert(k.trim().to_owned(), v.trim().trim_matches('"').to_owned());
        }
        Some((
            found.remove("origin")?,
            found.remove("destination")?,
            found.remove("key")?,
            found.remove("sig")?,
        ))
    }

    /// The origin's key response, fetched from `at` as coming from `me`.
    pub fn fetch_keys(at: SocketAddr, me: Ipv4Addr) -> Value {
        let mut s = std::net::TcpStream::connect(at).unwrap();
        write!(
            s,
            "GET /_matrix/key/v2/server HTTP/1.1\r\nHost: status.test\r\nUser-Agent: Synapse/stand-in\r\n\
             X-Forwarded-For: {me}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str(body).unwrap()
    }

    /// Verifies `s`'s signature with the key of its origin, fetched from `at`; `Err` with the
    /// Matrix error Synapse would send.
    pub fn verify(s: &Seen, me: &str, at: SocketAddr, from: Ipv4Addr) -> Result<String, String> {
        let (origin, destination, key_id, sig) = s
            .header("authorization")
            .and_then(x_matrix)
            .ok_or("Missing Authorization headers")?;
        assert_eq!(destination, me, "the destination is the server name");
        let keys = fetch_keys(at, from);
        let public = keys["verify_keys"][&key_id]["key"]
            .as_str()
            .ok_or(format!("Failed to find any key to satisfy: {key_id}"))?;
        let public: [u8; 32] = STANDARD_NO_PAD.decode(public).unwrap().try_into().unwrap();
        let public = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&STANDARD_NO_PAD.decode(sig).unwrap())
            .map_err(|e| e.to_string())?;
        let signed = json!({"method": s.method, "uri": s.uri, "origin": origin, "destination": me});
        let bytes = mxping::testing::canonical_json(&signed).unwrap();
        public
            .verify_strict(bytes.as_bytes(), &sig)
            .map(|()| origin.clone())
            .map_err(|e| format!("Invalid signature for server {origin} with key {key_id}: {e}"))
    }
}

/// The signed check against stand-ins that answer as Synapse does: one that verifies the
/// signature with the key it fetched from mxping (both ways, the key fetched by the server
/// itself, its public rooms), one that cannot fetch it, one with an allow list and one that
/// refuses the signature; then the status, the reason, the page in both languages, the API,
/// the metrics and `mxping check --federation`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signed_check_tells_both_ways_from_each_failure() {
    use std::sync::{Arc, OnceLock};

    use crate::support::https::handler;

    let mut h = Harness::new().await;
    let key = mxping::Key::generate();
    std::fs::write(h.dir.path().join("federation.key"), key.to_file()).unwrap();
    let serve_at: Arc<OnceLock<std::net::SocketAddr>> = Arc::default();
    let names = ["good.test", "nokey.test", "denied.test", "badsig.test"];
    for name in names {
        let mut host = h.host(name);
        let ip = host.ip;
        let at = serve_at.clone();
        h.serve(
            &mut host,
            8448,
            h.ca.leaf(&[name]),
            handler(move |s| {
                let error = |code: u16, errcode: &str, error: &str| {
                    Reply::status(code, json!({"errcode": errcode, "error": error}).to_string())
                };
                if s.path == "/_matrix/federation/v1/version" {
                    return Reply::json(json!({"server": {"name": "Synapse", "version": "1.163.2"}}));
                }
                if !s.path.starts_with("/_matrix/federation/v1/") {
                    return Reply::not_found();
                }
                match name {
                    "nokey.test" => {
                        return error(
                            401,
                            "M_UNAUTHORIZED",
                            "Failed to find any key to satisfy: _FetchKeyRequest(server_name='status.test')",
                        );
                    }
                    "denied.test" => {
                        return error(403, "M_FORBIDDEN", "Federation denied with status.test.");
                    }
                    _ => {}
                }
                let Some(at) = at.get() else {
                    return error(401, "M_UNAUTHORIZED", "Failed to find any key to satisfy");
                };
                match stand_in::verify(s, name, *at, ip) {
                    Err(e) => error(401, "M_UNAUTHORIZED", &e),
                    // A signature this stand-in checked and takes for wrong.
                    Ok(_) if name == "badsig.test" => error(
                        401,
                        "M_UNAUTHORIZED",
                        "Invalid signature for server status.test with key ed25519:x: Unable to verify signature",
                    ),
                    Ok(_) if s.path.starts_with("/_matrix/federation/v1/publicRooms") => {
                        Reply::json(json!({
                            "chunk": [
                                {"room_id": "!small:good.test", "name": "Small", "num_joined_members": 3},
                                {"room_id": "!lobby:good.test", "name": "Lobby <b>", "canonical_alias": "#lobby:good.test", "num_joined_members": 42}
                            ],
                            "total_room_count_estimate": 7
                        }))
                    }
                    Ok(_) => error(404, "M_NOT_FOUND", "Profile was not found"),
                }
            }),
        );
    }
    h.servers = names.iter().map(|n| n.to_string()).collect();
    h.extra = "[monitor]\ninterval = \"3s\"\ntimeout = \"2s\"\ncheck_keys = false\n\
               check_signup = false\ncheck_client = false\n\
               [federation]\nserver_name = \"status.test\"\nkey_file = \"federation.key\"\n\
               interval = \"1m\"\n"
        .into();
    let s = Serve::start(&h.config_file()).await;
    serve_at.set(s.addr).unwrap();
    let fed = s
        .wait_for(
            Duration::from_secs(30),
            "every federation check and round",
            || async {
                let mut all = Vec::new();
                for name in names {
                    let v = s.server(name).await;
                    let f = v.get("federation").filter(|f| !f.is_null())?.clone();
                    if v["status"] == "unknown" {
                        return None;
                    }
                    all.push((v, f));
                }
                Some(all)
            },
        )
        .await;
    let (good, f) = &fed[0];
    assert_eq!(f["outbound"], "both_ways", "{f}");
    assert_eq!(f["error"], Value::Null);
    assert_eq!(
        f["key_fetched_by"], "server",
        "the fetch came from good.test's address"
    );
    assert!(f["elapsed_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(f["directory"]["rooms"], 7);
    assert_eq!(f["directory"]["top"][0]["alias"], "#lobby:good.test");
    assert_eq!(f["directory"]["top"][0]["members"], 42);
    assert_eq!(good["status"], "green", "{good}");
    for (i, outcome, words) in [
        (1, "cannot_reach_us", "cannot fetch other servers' keys"),
        (2, "allow_list", "allow list"),
        (3, "signature_refused", "signatures"),
    ] {
        let (v, f) = &fed[i];
        assert_eq!(f["outbound"], outcome, "{}: {f}", names[i]);
        assert!(
            f["error"]["message"].as_str().unwrap().contains("HTTP 40"),
            "{f}"
        );
        assert_eq!(f["directory"], Value::Null, "not asked once refused");
        assert_eq!(
            v["status"], "yellow",
            "{}: answers /version, fails the signed check",
            names[i]
        );
        assert!(v["reason"].as_str().unwrap().contains(words), "{v}");
    }
    // The server's words, and who fetched the key.
    assert!(
        fed[1].1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Failed to find any key")
    );

    let metrics = s.text("/metrics").await.1;
    for line in [
        "mxping_federation_outbound_ok{server=\"good.test\"} 1",
        "mxping_federation_outbound_ok{server=\"nokey.test\"} 0",
        "mxping_public_rooms{server=\"good.test\"} 7",
        "mxping_status{server=\"nokey.test\",status=\"yellow\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} not in\n{metrics}"
        );
    }
    assert!(!metrics.contains("mxping_public_rooms{server=\"nokey.test\"}"));

    // The detail pages, in both languages.
    let (_, en) = s.text("/server/good.test?lang=en").await;
    assert!(en.contains("Federation both ways"), "{en}");
    assert!(en.contains("both ways: the server fetched this monitor"));
    assert!(en.contains("the server itself"));
    assert!(
        en.contains("https://matrix.to/#/%23lobby%3Agood.test"),
        "a link to the room"
    );
    assert!(
        !en.contains("Lobby <b>")
            && (en.contains("Lobby &lt;b&gt;") || en.contains("Lobby &#60;b&#62;")),
        "the room's name is escaped"
    );
    assert!(en.contains("42 members"));
    let (_, zh) = s.text("/server/nokey.test?lang=zh").await;
    assert!(
        zh.contains("双向联邦") && zh.contains("取不到我们的密钥"),
        "{zh}"
    );
    let names_set = names
        .iter()
        .chain(&["status.test"])
        .map(|n| n.to_string())
        .collect();
    let problems = crate::chinese::problems("/server/nokey.test?lang=zh", &zh, &names_set);
    assert!(problems.is_empty(), "{problems:?}");
    // With the directory: the rooms' names are their own words, quoted as said.
    let (_, good_zh) = s.text("/server/good.test?lang=zh").await;
    assert!(
        good_zh.contains("双向正常") && good_zh.contains("42 位成员"),
        "{good_zh}"
    );
    let problems = crate::chinese::problems("/server/good.test?lang=zh", &good_zh, &names_set);
    assert!(problems.is_empty(), "{problems:?}");
    let (_, index_zh) = s.text("/?lang=zh").await;
    assert!(
        index_zh.contains("无法获取其他服务器的签名密钥"),
        "the reason on the index"
    );

    // `mxping check --federation`: the same verdict from the command line (the key is
    // fetched from the running monitor).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
        .args(["check", "--federation", "--config"])
        .arg(h.config_file())
        .arg("nokey.test")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("Federation both ways") && text.contains("✘ cannot reach us"),
        "{text}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
        .args(["check", "--federation", "--json", "--config"])
        .arg(h.config_file())
        .arg("good.test")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["federation"]["outbound"], "both_ways");
    assert_eq!(
        v["federation"]["key_fetched_by"],
        Value::Null,
        "no listener in the CLI"
    );
}

/// `check --federation` without `[federation]` says what to add, and exits 2.
#[test]
fn check_federation_needs_the_section() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("servers.toml");
    std::fs::write(&config, "[[server]]\nname = \"example.test\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
        .args(["check", "--federation", "--config"])
        .arg(&config)
        .arg("example.test")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no [federation] section") && err.contains("server_name and key_file"),
        "{err}"
    );
}
