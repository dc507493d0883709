//! The per-address probe against loopback servers: phase timings, TLS facts, certificate
//! checks against the right name (group G), endpoint answers (group H), the signing-key
//! checks, and failures classified into exactly one error kind, each within the timeout.

use std::time::{Duration, Instant};

use mxping::error::ErrorKind;
use mxping::testing::{Round, Status};
use serde_json::json;

use crate::support::https::{self, handler, signed_keys, well_known};
use crate::support::*;

const VERSION: &str = "/_matrix/federation/v1/version";
const KEYS: &str = "/_matrix/key/v2/server";

/// `example.test` served directly on :8448 (no well-known, no SRV) with the TLS setup `tls`
/// makes from the harness CA, answering with `reply`.
async fn serve_direct<T: Into<TlsOptions>>(
    tls: impl FnOnce(&TestCa) -> T,
    reply: Handler,
) -> (Harness, Round) {
    serve_direct_with(tls, reply, "").await
}

async fn serve_direct_with<T: Into<TlsOptions>>(
    tls: impl FnOnce(&TestCa) -> T,
    reply: Handler,
    extra: &str,
) -> (Harness, Round) {
    let mut h = Harness::new().await;
    h.extra = extra.to_owned();
    let mut host = h.host("example.test");
    let tls = tls(&h.ca).into();
    h.serve(&mut host, 8448, tls, reply);
    host.release();
    let round = h.services().round("example.test").await;
    (h, round)
}

fn kind(round: &Round) -> ErrorKind {
    round.addresses[0].error.as_ref().expect("an error").kind
}

fn message(round: &Round) -> String {
    round.addresses[0]
        .error
        .as_ref()
        .expect("an error")
        .message
        .clone()
}

// ---------------------------------------------------------------------------------------------
// A healthy round

#[tokio::test]
async fn a_healthy_round_has_every_phase_and_fact() {
    let leaf = |ca: &TestCa| ca.leaf(&["example.test"]);
    let (_h, round) = serve_direct(leaf, https::homeserver("example.test")).await;
    let a = &round.addresses[0];
    assert!(a.ok, "{:?}", a.error);
    assert!(a.phases_ms.connect.unwrap() > 0.0 && a.phases_ms.tls.unwrap() > 0.0);
    assert_eq!(a.phases_ms.requests.len(), 4, "pings = 4 by default");
    assert_eq!(a.latency_ms, mxping::testing::median(&a.phases_ms.requests));
    let cold = a.phases_ms.connect.unwrap() + a.phases_ms.tls.unwrap() + a.phases_ms.requests[0];
    assert!((a.cold_ms.unwrap() - cold).abs() < 0.01);
    let sw = a.software.as_ref().unwrap();
    assert_eq!(
        (sw.name.as_str(), sw.version.as_str()),
        ("Synapse", "1.163.2")
    );
    let tls = a.tls.as_ref().unwrap();
    assert_eq!(tls.version, "TLSv1_3");
    assert!(tls.cipher.starts_with("TLS13_"), "{}", tls.cipher);
    assert_eq!(tls.group.as_deref(), Some("X25519"));
    assert!(!tls.hello_retry_request);
    let cert = tls.certificate.as_ref().unwrap();
    assert_eq!(cert.names, ["example.test"]);
    assert_eq!(cert.issuer, "mxping test CA");
    assert!(tls.certificate_valid);
    assert!(a.keys.as_ref().unwrap().all_ok());
    assert!(round.federation_ok());
    assert_eq!(round.status(Duration::from_millis(200)).0, Status::Green);
}

#[tokio::test]
async fn all_pings_share_one_connection() {
    let mut h = Harness::new().await;
    let mut host = h.host("example.test");
    let server = h.homeserver(&mut host, 8448, "example.test", "example.test");
    let round = h.services().round("example.test").await;
    assert!(round.all_ok());
    // 4 pings + 1 key request; the server recorded the same SNI for all (one TLS session is
    // not provable from here, but every request carries the right Host and SNI).
    assert_eq!(server.hits(VERSION).len(), 4);
    assert_eq!(server.hits(KEYS).len(), 1);
}

#[tokio::test]
async fn request_times_measure_the_server_delay_and_slow_servers_are_yellow() {
    let leaf = |ca: &TestCa| ca.leaf(&["example.test"]);
    let slow = handler(|s| match s.path.as_str() {
        VERSION => Reply::json(json!({"server": {"name": "Slow", "version": "1"}}))
            .delay(Duration::from_millis(250)),
        _ => Reply::not_found(),
    });
    let (_h, round) = serve_direct_with(
        leaf,
        slow,
        "[monitor]\ntimeout = \"5s\"\ncheck_keys = false\n",
    )
    .await;
    let a = &round.addresses[0];
    assert!(a.ok, "{:?}", a.error);
    for r in &a.phases_ms.requests {
        assert!(
            (250.0..400.0).contains(r),
            "request took {r} ms for a 250 ms delay"
        );
    }
    // The delay is in the request phase, not in connect or TLS.
    assert!(a.phases_ms.tls.unwrap() < 250.0);
    let (status, reason) = round.status(Duration::from_millis(200));
    assert_eq!(status, Status::Yellow);
    assert!(reason.unwrap().to_string().contains("≥ 200 ms"));
    assert_eq!(round.status(Duration::from_millis(1000)).0, Status::Green);
}

/// Issue "Numbers that agree with each other": a monitor too busy to read a reply at once
/// still reports the server's time. The probe runs on a runtime of its own whose one thread a
/// busy task keeps taking for 200 ms at a time, so every reply waits to be read; request and
/// TLS times come from the kernel's arrival stamps and stay at the server's (requests were
/// 20–220 ms when the time was read in user space after the reading task got the thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_times_leave_out_the_monitors_own_scheduling_delays() {
    let mut h = Harness::new().await;
    h.extra = "[monitor]\ntimeout = \"5s\"\ncheck_keys = false\npings = 4\n".to_owned();
    let mut host = h.host("example.test");
    let delayed = handler(|s| match s.path.as_str() {
        VERSION => Reply::json(json!({"server": {"name": "Steady", "version": "1"}}))
            .delay(Duration::from_millis(20)),
        _ => Reply::not_found(),
    });
    h.serve(&mut host, 8448, h.ca.leaf(&["example.test"]), delayed);
    host.release();
    let services = h.services();
    let round = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let busy = tokio::spawn(async {
                        loop {
                            // Blocking on purpose: the monitor's thread is taken.
                            std::thread::sleep(Duration::from_millis(200));
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    });
                    let round = services.round("example.test").await;
                    busy.abort();
                    round
                })
            })
            .join()
            .unwrap()
    });
    let a = &round.addresses[0];
    assert!(a.ok, "{:?}", a.error);
    assert_eq!(a.phases_ms.requests.len(), 4);
    for r in &a.phases_ms.requests {
        assert!(
            (20.0..24.0).contains(r),
            "request took {r} ms for a 20 ms delay: {:?}",
            a.phases_ms.requests
        );
    }
    // The handshake too, to the server's last flight: the 200 ms the thread is taken for is
    // not in it (the loopback server answers a ClientHello in a few milliseconds).
    let tls = a.phases_ms.tls.unwrap();
    assert!(tls < 100.0, "TLS took {tls} ms");
}

#[tokio::test]
async fn a_p256_only_server_costs_a_hello_retry_request() {
    let tls = |ca: &TestCa| TlsOptions {
        leaf: ca.leaf(&["example.test"]),
        p256_only: true,
    };
    let (_h, round) = serve_direct(tls, https::homeserver("example.test")).await;
    let facts = round.addresses[0].tls.clone().unwrap();
    assert!(facts.hello_retry_request);
    assert_eq!(facts.group.as_deref(), Some("secp256r1"));
    assert!(round.all_ok());
}

#[tokio::test]
async fn servers_without_keep_alive_still_get_every_ping() {
    let leaf = |ca: &TestCa| ca.leaf(&["example.test"]);
    let closing = handler(|s| match s.path.as_str() {
        VERSION => Reply::json(json!({"server": {"name": "Close", "version": "1"}})).close(),
        _ => Reply::not_found(),
    });
    let (_h, round) = serve_direct_with(
        leaf,
        closing,
        "[monitor]\ntimeout = \"3s\"\ncheck_keys = false\n",
    )
    .await;
    let a = &round.addresses[0];
    assert!(a.ok, "{:?}", a.error);
    assert_eq!(a.phases_ms.requests.len(), 4);
    assert!(
        a.notes.iter().any(|n| n.contains("no keep-alive")),
        "{:?}",
        a.notes
    );
}

// ---------------------------------------------------------------------------------------------
// G. Certificates

#[tokio::test]
async fn g1_certificate_for_another_name() {
    let leaf = |ca: &TestCa| ca.leaf(&["other.test"]);
    let (_h, round) = serve_direct(leaf, https::homeserver("example.test")).await;
    assert_eq!(kind(&round), ErrorKind::TlsCertificate);
    assert_eq!(
        message(&round),
        "certificate is for other.test, expected example.test"
    );
    // The report still says what the server answers, as the federation tester does.
    assert_eq!(
        round.addresses[0].software.as_ref().unwrap().name,
        "Synapse"
    );
    assert!(!round.addresses[0].tls.as_ref().unwrap().certificate_valid);
    assert!(!round.any_ok());
}

#[tokio::test]
async fn g2_expired_certificate() {
    let leaf = |ca: &TestCa| ca.expired(&["example.test"]);
    let (_h, round) = serve_direct(leaf, https::homeserver("example.test")).await;
    assert_eq!(kind(&round), ErrorKind::TlsCertificate);
    assert!(
        message(&round).contains("expired on"),
        "{}",
        message(&round)
    );
}

#[tokio::test]
async fn g2_certificate_not_yet_valid() {
    let now = time::OffsetDateTime::now_utc();
    let leaf = |ca: &TestCa| {
        ca.leaf_valid(
            &["example.test"],
            now + time::Duration::days(2),
            now + time::Duration::days(30),
        )
    };
    let (_h, round) = serve_direct(leaf, https::homeserver("example.test")).await;
    assert_eq!(kind(&round), ErrorKind::TlsCertificate);
    assert!(
        message(&round).contains("not valid yet"),
        "{}",
        message(&round)
    );
}

#[tokio::test]
async fn g3_self_signed_certificate() {
    let leaf = |_: &TestCa| crate::support::pki::self_signed(&["example.test"]);
    let (_h, round) = serve_direct(leaf, https::homeserver("example.test")).await;
    assert_eq!(kind(&round), ErrorKind::TlsCertificate);
    assert!(
        message(&round).contains("not signed by a trusted CA"),
        "{}",
        message(&round)
    );
}

#[tokio::test]
async fn g4_ip_literal_needs_an_ip_certificate() {
    let mut h = Harness::new().await;
    let mut host = TestHost::claim();
    let name = ip(&host);
    h.homeserver(&mut host, 8448, "example.test", &name);
    let round = h.services().round(&name).await;
    assert_eq!(kind(&round), ErrorKind::TlsCertificate);
    assert_eq!(
        message(&round),
        format!("certificate is for example.test, expected {name}")
    );
}

#[tokio::test]
async fn g6_delegated_server_with_a_certificate_for_the_original_name_only() {
    let mut h = Harness::new().await;
    let mut origin = h.host("example.test");
    h.serve(
        &mut origin,
        443,
        h.ca.leaf(&["example.test"]),
        well_known(json!({"m.server": "matrix.example.test"})),
    );
    let mut m = h.host("matrix.example.test");
    h.homeserver(&mut m, 8448, "example.test", "example.test");
    let round = h.services().round("example.test").await;
    assert_eq!(kind(&round), ErrorKind::TlsCertificate);
    assert_eq!(
        message(&round),
        "certificate is for example.test, expected matrix.example.test"
    );
}

#[tokio::test]
async fn g7_certificate_for_the_srv_target_only() {
    let mut h = Harness::new().await;
    h.dns.srv(
        "_matrix-fed._tcp.example.test",
        10,
        0,
        8448,
        "fed.example.net",
    );
    let mut fed = h.host("fed.example.net");
    h.homeserver(&mut fed, 8448, "fed.example.net", "example.test");
    let round = h.services().round("example.test").await;
    assert_eq!(kind(&round), ErrorKind::TlsCertificate);
    assert_eq!(
        message(&round),
        "certificate is for fed.example.net, expected example.test"
    );
}

#[tokio::test]
async fn tls_spoken_wrongly_is_a_handshake_error() {
    // A plain-HTTP server on the TLS port.
    let mut h = Harness::new().await;
    let mut host = h.host("example.test");
    let listener = host.take(8448);
    host.release();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    h.extra = "[monitor]\ntimeout = \"3s\"\n".into();
    let round = h.services().round("example.test").await;
    assert_eq!(kind(&round), ErrorKind::TlsHandshake);
    assert!(
        message(&round).contains("does not speak TLS"),
        "{}",
        message(&round)
    );
}

// ---------------------------------------------------------------------------------------------
// H. Endpoint answers

fn version_reply(reply: Reply) -> Handler {
    handler(move |s| {
        if s.path == VERSION {
            reply.clone()
        } else {
            Reply::not_found()
        }
    })
}

#[tokio::test]
async fn h1_html_instead_of_json() {
    let leaf = |ca: &TestCa| ca.leaf(&["example.test"]);
    let (_h, round) = serve_direct(
        leaf,
        version_reply(Reply::status(
            200,
            "<html><body>Welcome to nginx!</body></html>",
        )),
    )
    .await;
    assert_eq!(kind(&round), ErrorKind::InvalidResponse);
    assert!(
        message(&round).contains("HTML, not JSON"),
        "{}",
        message(&round)
    );
}

#[tokio::test]
async fn h2_error_statuses() {
    for code in [404, 502] {
        let leaf = |ca: &TestCa| ca.leaf(&["example.test"]);
        let (_h, round) = serve_direct(
            leaf,
            version_reply(Reply::status(code, "<h1>Bad Gateway</h1>")),
        )
        .await;
        assert_eq!(kind(&round), ErrorKind::HttpStatus);
        assert!(
            message(&round).starts_with(&format!("HTTP {code}")),
            "{}",
            message(&round)
        );
        assert!(message(&round).contains("Bad Gateway"));
    }
}

#[tokio::test]
async fn h3_empty_version_objects_are_valid() {
    for body in [json!({}), json!({"server": {}})] {
        let leaf = |ca: &TestCa| ca.leaf(&["example.test"]);
        let (_h, round) = serve_direct_with(
            leaf,
            version_reply(Reply::json(body)),
            "[monitor]\ntimeout = \"3s\"\ncheck_keys = false\n",
        )
        .await;
        assert!(round.all_ok(), "{:?}", round.error());
        assert_eq!(round.software().unwrap().name, "");
    }
}

#[tokio::test]
async fn oversized_version_body() {
    let leaf = |ca: &TestCa| ca.leaf(&["example.test"]);
    let huge = format!(r#"{{"server":{{"name":"{}"}}}}"#, "x".repeat(200 * 1024));
    let (_h, round) = serve_direct(leaf, version_reply(Reply::status(200, huge))).await;
    assert_eq!(kind(&round), ErrorKind::BodyTooLarge);
}

fn keys_reply(keys: serde_json::Value) -> Handler {
    handler(move |s| match s.path.as_str() {
        VERSION => Reply::json(json!({"server": {"name": "Synapse", "version": "1"}})),
        KEYS => Reply::json(keys.clone()),
        _ => Reply::not_found(),
    })
}

#[tokio::test]
async fn h4_key_endpoint_errors_fail_federation_but_not_the_address() {
    let leaf = |ca: &TestCa| ca.leaf(&["example.test"]);
    let (_h, round) = serve_direct(leaf, version_reply(Reply::json(json!({"server": {}})))).await;
    assert!(round.all_ok());
    let keys = round.addresses[0].keys.clone().unwrap();
    assert_eq!(
        keys.error.as_deref(),
        Some("HTTP 404 Not Found from /_matrix/key/v2/server")
    );
    assert!(!round.federation_ok());
}

#[tokio::test]
async fn h6_h7_key_checks_on_the_wire() {
    // The delegated name instead of the requested one (H6).
    let leaf = |ca: &TestCa| ca.leaf(&["example.test"]);
    let (_h, round) = serve_direct(
        leaf,
        keys_reply(signed_keys("matrix.example.test", i64::MAX)),
    )
    .await;
    let checks = round.addresses[0].keys.clone().unwrap().checks.unwrap();
    assert!(!checks.matching_server_name && !checks.all_ok);
    assert!(
        checks.ed25519["ed25519:test"].matching_signature,
        "signed by its own name, so the signature holds"
    );
    assert!(!round.federation_ok());

    // Expired validity (H7).
    let leaf = |ca: &TestCa| ca.leaf(&["example.test"]);
    let (_h, round) = serve_direct(leaf, keys_reply(signed_keys("example.test", 1_000))).await;
    let checks = round.addresses[0].keys.clone().unwrap().checks.unwrap();
    assert!(!checks.future_valid_until_ts && !checks.all_ok);
    assert!(checks.ed25519["ed25519:test"].matching_signature);

    // Tampered after signing (H10).
    let mut tampered = signed_keys("example.test", i64::MAX);
    tampered["valid_until_ts"] = json!(4_102_444_800_001_i64);
    let leaf = |ca: &TestCa| ca.leaf(&["example.test"]);
    let (_h, round) = serve_direct(leaf, keys_reply(tampered)).await;
    let checks = round.addresses[0].keys.clone().unwrap().checks.unwrap();
    assert!(!checks.ed25519["ed25519:test"].matching_signature);
}

/// Issue 11 item 6: two addresses of one server serving different `verify_keys` (a split
/// brain) is an error finding naming which address serves which key; the same keys everywhere
/// is fine.
#[tokio::test]
async fn different_keys_on_different_addresses_are_a_split_brain() {
    for split in [false, true] {
        let mut h = Harness::new().await;
        let mut a = h.host("example.test");
        let mut b = TestHost::claim();
        h.dns.a("example.test", b.ip);
        let first = signed_keys("example.test", i64::MAX);
        let second = if split {
            https::signed_keys_with_seed("example.test", i64::MAX, [7; 32])
        } else {
            signed_keys("example.test", i64::MAX)
        };
        for (host, keys) in [(&mut a, first), (&mut b, second)] {
            let leaf = h.ca.leaf(&["example.test"]);
            h.serve(host, 8448, leaf, keys_reply(keys));
        }
        let round = h.services().round("example.test").await;
        assert_eq!(round.addresses.len(), 2);
        assert!(round.all_ok(), "{:?}", round.error());
        assert!(
            round
                .addresses
                .iter()
                .all(|x| x.keys.as_ref().unwrap().all_ok()),
            "each address's keys are valid on their own"
        );
        let findings = round.findings();
        if split {
            assert_eq!(findings.len(), 1, "{findings:?}");
            let f = &findings[0];
            assert_eq!(f.severity, mxping::testing::Severity::Error);
            assert!(
                f.message.contains("serve different signing keys"),
                "{}",
                f.message
            );
            for ip in [a.ip, b.ip] {
                assert!(
                    f.message
                        .contains(&format!("{ip}:8448 serves ed25519:test ")),
                    "{}",
                    f.message
                );
            }
            assert!(!round.federation_ok());
            let report = mxping::testing::ServerReport::from_round(
                "example.test",
                &round,
                std::time::Duration::from_millis(200),
            );
            let json = serde_json::to_value(&report).unwrap();
            assert_eq!(json["findings"][0]["severity"], "error");
        } else {
            assert!(findings.is_empty(), "{findings:?}");
            assert!(round.federation_ok());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Failures are bounded in time

#[tokio::test]
async fn a_server_that_accepts_and_never_speaks_times_out_in_the_tls_phase() {
    let mut h = Harness::new().await;
    h.extra = "[monitor]\ntimeout = \"2s\"\n".into();
    let mut host = h.host("example.test");
    let _silent = host.take(8448); // accepted by the kernel, never read
    host.release();
    let started = Instant::now();
    let round = h.services().round("example.test").await;
    let elapsed = started.elapsed();
    assert_eq!(kind(&round), ErrorKind::Timeout);
    assert!(
        message(&round).contains("TLS handshake"),
        "{}",
        message(&round)
    );
    assert!(elapsed < Duration::from_secs(2 + 1 + 1), "{elapsed:?}");
    assert!(round.addresses[0].phases_ms.connect.is_some());
}

#[tokio::test]
async fn a_server_that_stalls_mid_round_times_out() {
    let leaf = |ca: &TestCa| ca.leaf(&["example.test"]);
    let stall = version_reply(Reply::json(json!({})).delay(Duration::from_secs(60)));
    let mut h = Harness::new().await;
    h.extra = "[monitor]\ntimeout = \"2s\"\n".into();
    let mut host = h.host("example.test");
    let tls = leaf(&h.ca);
    h.serve(&mut host, 8448, tls, stall);
    host.release();
    // Only the round is timed: the harness's setup is slow on a loaded machine.
    let started = Instant::now();
    let round = h.services().round("example.test").await;
    let elapsed = started.elapsed();
    assert_eq!(kind(&round), ErrorKind::Timeout);
    assert!(
        message(&round).contains("0 request(s) answered"),
        "{}",
        message(&round)
    );
    assert!(elapsed < Duration::from_secs(2 + 1 + 1), "{elapsed:?}");
}

#[tokio::test]
async fn a_full_accept_queue_is_a_connect_timeout() {
    use tokio::net::TcpSocket;
    let mut h = Harness::new().await;
    h.extra = "[monitor]\ntimeout = \"2s\"\n".into();
    let host = h.host("example.test");
    let addr = host.addr(8448);
    drop(host);
    // A listener with a tiny backlog that never accepts: once the queue is full, the kernel
    // drops further SYNs and connects hang, as behind a black-holing firewall.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    let _listener = socket.listen(0).unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let round = h.services().round("example.test").await;
    assert_eq!(
        kind(&round),
        ErrorKind::ConnectTimeout,
        "{}",
        message(&round)
    );
    assert!(round.addresses[0].phases_ms.connect.is_none());
}

/// Runs `body` on a thread of its own in a new network namespace (made here, removed when the
/// thread ends) whose loopback is up but has no IPv6: a monitor without IPv6.
fn in_a_network_without_ipv6<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("a new network namespace (run as root or in `unshare -rn`)");
        // Children forked from this thread live in its namespace.
        let run = |cmd: &[&str]| {
            let status = std::process::Command::new(cmd[0])
                .args(&cmd[1..])
                .status()
                .unwrap();
            assert!(status.success(), "{cmd:?}");
        };
        run(&["ip", "link", "set", "lo", "up"]);
        run(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        run(&["sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=1"]);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(body());
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

/// Issue 11 item 8: when the monitor has no IPv6, a dual-stack or IPv6-only server is not at
/// fault. The IPv6 address says "this monitor has no IPv6", is not counted (the dual-stack
/// server is green, all_ok), and a round with only such addresses is not measurable at all.
#[test]
fn a_monitor_without_ipv6_does_not_blame_the_server() {
    in_a_network_without_ipv6(|| async {
        let mut h = Harness::new().await;
        let mut dual = h.host("dual.test");
        h.dns.aaaa("dual.test", "::1".parse().unwrap());
        h.dns.aaaa("v6only.test", "::1".parse().unwrap());
        h.homeserver(&mut dual, 8448, "dual.test", "dual.test");
        let services = h.services();

        let round = services.round("dual.test").await;
        assert_eq!(round.addresses.len(), 2, "{:?}", round.addresses);
        let v6 = round
            .addresses
            .iter()
            .find(|a| a.ip_family == mxping::testing::IpFamily::Ipv6)
            .unwrap();
        let e = v6.error.as_ref().unwrap();
        assert!(e.monitor_side, "{e:?}");
        assert!(
            e.message.starts_with("this monitor has no IPv6"),
            "{}",
            e.message
        );
        assert!(round.measurable());
        assert!(
            round.all_ok(),
            "only the IPv4 address counts: {:?}",
            round.error()
        );
        assert_eq!(
            round.status(std::time::Duration::from_millis(200)).0,
            mxping::testing::Status::Green
        );
        assert!(round.federation_ok());
        let finding = &round.findings()[0];
        assert_eq!(finding.code, Some("monitor_no_ipv6"));
        assert_eq!(finding.severity, mxping::testing::Severity::Info);
        let zh = mxping::testing::locale("zh").unwrap();
        assert!(
            finding.text(zh).starts_with("本监测点没有 IPv6"),
            "{}",
            finding.text(zh)
        );

        let mut history = mxping::testing::ServerHistory::new(mxping::testing::Thresholds {
            green_below_ms: 200.0,
            down_after: 3,
            up_after: 2,
        });
        let delta = history.record(&round, 1_800_000_000);
        assert_eq!(
            delta.addresses.len(),
            1,
            "the IPv6 address gets no uptime sample"
        );

        let round = services.round("v6only.test").await;
        assert!(!round.measurable(), "{:?}", round.addresses);
        assert!(
            round
                .addresses
                .iter()
                .all(|a| a.error.as_ref().is_some_and(|e| e.monitor_side))
        );
        let report = mxping::cli::check::run(
            &services,
            "v6only.test",
            std::time::Duration::from_millis(200),
            false,
        )
        .await;
        assert!(
            report
                .verdict
                .starts_with("cannot be checked from here: this monitor has no IPv6"),
            "{}",
            report.verdict
        );
    });
}
