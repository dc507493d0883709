//! The hostile-server zoo (issue "Hostile servers"): each case must end within `timeout` + 1 s
//! with the right error kind, keep memory bounded, and leave a healthy server probed at the
//! same time undisturbed (its measured latency unchanged within 1 ms).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_server::proto::rr::RecordType;
use mxping::Services;
use mxping::error::ErrorKind;
use mxping::testing::Round;
use mxping::testing::WellKnownStatus;
use serde_json::json;

use crate::support::hostile::{Behaviour, HostileServer};
use crate::support::https::{self, handler};
use crate::support::*;

const TIMEOUT: Duration = Duration::from_secs(1);
const CALM_DELAY: Duration = Duration::from_millis(5);

/// The harness with a calm server (answers after exactly 5 ms) beside the hostile one.
async fn harness() -> Harness {
    let mut h = Harness::new().await;
    // Two pings a round (the compared number is still the median ping) and a 1 s timeout:
    // the same bounds, checked in half the time.
    h.extra = "[monitor]\ntimeout = \"1s\"\npings = 2\ncheck_keys = false\n".into();
    let mut calm = h.host("calm.test");
    let leaf = h.ca.leaf(&["calm.test"]);
    h.serve(
        &mut calm,
        8448,
        leaf,
        handler(|s| {
            if s.path == "/_matrix/federation/v1/version" {
                Reply::json(json!({"server": {"name": "Calm", "version": "1"}})).delay(CALM_DELAY)
            } else {
                Reply::not_found()
            }
        }),
    );
    std::mem::forget(calm);
    h
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn calm_round(services: &Services) -> f64 {
    let round = services.round("calm.test").await;
    assert!(
        round.all_ok(),
        "the calm server must stay healthy: {:?}",
        round.error()
    );
    round.latency_ms().unwrap()
}

/// Probes `name` while the calm server is probed again and again; checks the bounds.
async fn hostile(services: Arc<Services>, name: &str) -> Round {
    let mut baseline = Vec::new();
    for _ in 0..7 {
        baseline.push(calm_round(&services).await);
    }
    let rss_before = rss_kib();
    let started = Instant::now();
    let task = {
        let services = services.clone();
        let name = name.to_owned();
        tokio::spawn(async move { services.round(&name).await })
    };
    let mut during = Vec::new();
    while !task.is_finished() || during.len() < 5 {
        during.push(calm_round(&services).await);
    }
    let round = task.await.unwrap();
    let elapsed = started.elapsed();
    // Discovery (DNS, well-known) and the probe each have the timeout; with nothing slow in
    // discovery, the round ends within timeout + 1 s.
    let bound = if round.resolution.well_known.error_kind == Some(ErrorKind::Timeout) {
        2 * TIMEOUT
    } else {
        TIMEOUT
    };
    assert!(
        elapsed < bound + Duration::from_secs(1),
        "{name}: took {elapsed:?}"
    );
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 32 * 1024, "{name}: memory grew by {grown} KiB");
    let (b, d) = (median(baseline), median(during));
    assert!(
        (b - d).abs() < 1.0,
        "{name}: the calm server's latency moved from {b:.3} ms to {d:.3} ms"
    );
    round
}

fn kind(round: &Round) -> ErrorKind {
    round.error().expect("an error").kind
}

/// `example.test` on :8448 served by a hostile `behaviour`.
async fn zoo_case(behaviour: Behaviour) -> Round {
    let h = harness().await;
    let mut host = h.host("example.test");
    let listener = host.take(8448);
    host.release();
    let _server = HostileServer::start(listener, h.ca.leaf(&["example.test"]), behaviour);
    hostile(Arc::new(h.services()), "example.test").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_stalling_servers_time_out() {
    {
        let h = harness().await;
        let mut host = h.host("example.test");
        let _silent = host.take(8448); // the kernel accepts; nobody ever reads
        host.release();
        let round = hostile(Arc::new(h.services()), "example.test").await;
        assert_eq!(kind(&round), ErrorKind::Timeout);
    }
    let round = zoo_case(Behaviour::StallTls).await;
    assert_eq!(kind(&round), ErrorKind::Timeout);
    assert!(round.error().unwrap().message.contains("TLS handshake"));
    let round = zoo_case(Behaviour::DribbleHeaders).await;
    assert_eq!(kind(&round), ErrorKind::Timeout);
    assert!(
        round
            .error()
            .unwrap()
            .message
            .contains("0 request(s) answered")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_answers_are_classified() {
    let round = zoo_case(Behaviour::HugeBody).await;
    assert_eq!(kind(&round), ErrorKind::BodyTooLarge);
    for (behaviour, needle) in [
        (Behaviour::Garbage, "not valid HTTP/1.1"),
        (Behaviour::ResetMidResponse, "reset the connection"),
        (Behaviour::InvalidUtf8, "not JSON"),
        (Behaviour::InvalidJson, "not JSON"),
    ] {
        let round = zoo_case(behaviour).await;
        assert_eq!(kind(&round), ErrorKind::InvalidResponse, "{behaviour:?}");
        let msg = round.error().unwrap().message;
        assert!(msg.contains(needle), "{behaviour:?}: {msg}");
    }
    // An HTML error page from a reverse proxy.
    let h = harness().await;
    let mut host = h.host("example.test");
    let mut h = h;
    h.serve(
        &mut host,
        8448,
        h.ca.leaf(&["example.test"]),
        handler(|_| {
            Reply::status(
                502,
                "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            )
        }),
    );
    let round = hostile(Arc::new(h.services()), "example.test").await;
    assert_eq!(kind(&round), ErrorKind::HttpStatus);
    assert!(round.error().unwrap().message.contains("502 Bad Gateway"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificates() {
    for (make, needle) in [
        (0, "expired"),
        (1, "not signed by a trusted CA"),
        (2, "certificate is for other.test, expected example.test"),
    ] {
        let mut h = harness().await;
        let mut host = h.host("example.test");
        let leaf = match make {
            0 => h.ca.expired(&["example.test"]),
            1 => crate::support::pki::self_signed(&["example.test"]),
            _ => h.ca.leaf(&["other.test"]),
        };
        h.serve(&mut host, 8448, leaf, https::homeserver("example.test"));
        let round = hostile(Arc::new(h.services()), "example.test").await;
        assert_eq!(kind(&round), ErrorKind::TlsCertificate);
        assert!(round.error().unwrap().message.contains(needle));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_dns_and_delegation() {
    // DNS that never answers, or answers SERVFAIL, for the SRV lookup.
    for fault in [Fault::Silence, Fault::ServFail] {
        let h = harness().await;
        h.dns
            .fault("_matrix-fed._tcp.example.test", RecordType::SRV, fault);
        let round = hostile(Arc::new(h.services()), "example.test").await;
        assert_eq!(kind(&round), ErrorKind::Dns, "{fault:?}");
    }
    // Thousands of addresses: the UDP answer is truncated, the resolver retries over TCP, and
    // mxping keeps 16 and says so.
    let mut h = harness().await;
    for i in 0..2000u32 {
        h.dns
            .a("many.test", std::net::Ipv4Addr::from(0x7f_10_00_00 + i));
    }
    h.dns
        .srv("_matrix-fed._tcp.example.test", 10, 0, 8448, "many.test");
    // Two pings a round (the compared number is still the median ping) and a 1 s timeout:
    // the same bounds, checked in half the time.
    h.extra = "[monitor]\ntimeout = \"1s\"\npings = 2\ncheck_keys = false\n".into();
    let round = hostile(Arc::new(h.services()), "example.test").await;
    assert_eq!(round.resolution.targets.len(), 16);
    assert!(round.resolution.findings.iter().any(|f| {
        f.message
            .contains("many.test has 2000 addresses; only the first 16")
    }));
    assert_eq!(kind(&round), ErrorKind::ConnectRefused);

    // A well-known of 10 MB, and a delegation to a private address.
    let mut h = harness().await;
    let mut origin = h.host("example.test");
    let big = vec![b' '; 10 * 1024 * 1024];
    h.serve(
        &mut origin,
        443,
        h.ca.leaf(&["example.test"]),
        handler(move |_| Reply::status(200, big.clone())),
    );
    let round = hostile(Arc::new(h.services()), "example.test").await;
    assert_eq!(round.resolution.well_known.status, WellKnownStatus::Invalid);
    assert!(
        round
            .resolution
            .well_known
            .problem
            .as_deref()
            .unwrap()
            .contains("larger than 50 KiB")
    );

    let mut h = harness().await;
    let mut origin = h.host("example.test");
    h.serve(
        &mut origin,
        443,
        h.ca.leaf(&["example.test"]),
        https::well_known(json!({"m.server": "10.1.2.3:8448"})),
    );
    let round = hostile(Arc::new(h.services()), "example.test").await;
    assert_eq!(kind(&round), ErrorKind::BlockedAddress);
}
