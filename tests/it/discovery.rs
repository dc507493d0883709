//! Each spec step and each edge-case group of discovery-edge-cases.md that loopback can build:
//! the resolved targets (address, Host, TLS name), the method, the well-known outcome, the
//! error kind, and what the fake servers actually received (SNI, Host).

use hickory_server::proto::rr::RecordType;
use mxping::error::ErrorKind;
use mxping::testing::WellKnownStatus;
use mxping::testing::{IpFamily, Method, Resolution, Severity, SrvOutcome};
use serde_json::json;

use crate::support::https::{self, handler, well_known};
use crate::support::*;

const VERSION: &str = "/_matrix/federation/v1/version";
const WK: &str = "/.well-known/matrix/server";

/// (address, Host header, TLS name) of every target.
fn targets(r: &Resolution) -> Vec<(String, String, Option<String>)> {
    r.targets
        .iter()
        .map(|t| {
            (
                t.address.to_string(),
                t.host_header.clone(),
                t.tls_name.clone(),
            )
        })
        .collect()
}

fn t(addr: String, host: &str, tls: Option<&str>) -> (String, String, Option<String>) {
    (addr, host.to_owned(), tls.map(str::to_owned))
}

fn has_finding(r: &Resolution, severity: Severity, text: &str) -> bool {
    r.findings
        .iter()
        .any(|f| f.severity == severity && f.message.contains(text))
}

fn seen(sni: Option<&str>, host: &str, path: &str) -> Seen {
    Seen {
        sni: sni.map(str::to_owned),
        method: "GET".to_owned(),
        host: Some(host.to_owned()),
        path: path.to_owned(),
        uri: path.to_owned(),
        user_agent: Some(mxping::USER_AGENT.to_owned()),
        body: Vec::new(),
        headers: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// A. Server names and IP literals

#[tokio::test]
async fn a1_ipv4_literal_uses_8448_no_sni_and_the_name_as_host() {
    let mut h = Harness::new().await;
    let mut host = TestHost::claim();
    let name = ip(&host);
    let server = h.homeserver(&mut host, 8448, &name, &name);
    let round = h.services().round(&name).await;
    let r = &round.resolution;
    assert_eq!(r.method, Some(Method::IpLiteral));
    assert_eq!(r.well_known.status, WellKnownStatus::Skipped);
    assert_eq!(targets(r), [t(format!("{name}:8448"), &name, None)]);
    assert!(round.all_ok(), "{:?}", round.error());
    assert!(round.federation_ok());
    assert_eq!(
        server.hits(VERSION)[0],
        seen(None, &name, VERSION),
        "no SNI, Host = the IP"
    );
    assert!(
        h.dns.queries().is_empty(),
        "an IP literal needs no DNS: {:?}",
        h.dns.queries()
    );
}

#[tokio::test]
async fn a2_ipv4_literal_with_port_keeps_the_port_in_host() {
    let mut h = Harness::new().await;
    let mut host = TestHost::claim();
    let addr = ip(&host);
    let name = format!("{addr}:443");
    let server = h.homeserver(&mut host, 443, &addr, &name);
    let round = h.services().round(&name).await;
    assert_eq!(targets(&round.resolution), [t(name.clone(), &name, None)]);
    assert!(round.federation_ok(), "{:?}", round.error());
    assert_eq!(server.hits(VERSION)[0], seen(None, &name, VERSION));
}

#[tokio::test]
async fn a4_ipv6_literal_keeps_brackets_in_host_and_sends_no_sni() {
    let h = Harness::new().await;
    let listener = https::ipv6_listener();
    let port = listener.local_addr().unwrap().port();
    let name = format!("[::1]:{port}");
    let server = HttpsServer::start(listener, h.ca.leaf(&["::1"]), https::homeserver(&name));
    let round = h.services().round(&name).await;
    assert_eq!(round.resolution.method, Some(Method::IpLiteral));
    assert_eq!(targets(&round.resolution), [t(name.clone(), &name, None)]);
    assert!(round.federation_ok(), "{:?}", round.error());
    assert_eq!(round.addresses[0].ip_family, IpFamily::Ipv6);
    assert_eq!(server.hits(VERSION)[0], seen(None, &name, VERSION));
}

#[tokio::test]
async fn invalid_names_fail_before_any_network_activity() {
    let h = Harness::new().await;
    let services = h.services();
    for name in [
        "2001:db8::1",
        "example.test:+80",
        "example.test:65536",
        "example.test:",
        "example.test:abc",
        "example.test:0",
        "bücher.test",
        "[::1",
        "a..b",
        "https://example.test",
        "",
    ] {
        let round = services.round(name).await;
        let e = round
            .resolution
            .error
            .clone()
            .unwrap_or_else(|| panic!("{name:?} should be invalid"));
        assert_eq!(e.kind, ErrorKind::InvalidName, "{name:?}: {e:?}");
        assert!(round.resolution.targets.is_empty() && round.addresses.is_empty());
        assert_eq!(round.resolution.method, None);
    }
    assert!(
        h.dns.queries().is_empty(),
        "no DNS for invalid names: {:?}",
        h.dns.queries()
    );
}

#[tokio::test]
async fn a6_invalid_dotted_quad_is_looked_up_as_a_hostname() {
    let h = Harness::new().await;
    let round = h.services().round("01.2.3.4").await;
    let r = &round.resolution;
    assert_eq!(r.error.as_ref().unwrap().kind, ErrorKind::NoAddress);
    assert!(has_finding(
        r,
        Severity::Warning,
        "looks like an IPv4 address"
    ));
    assert!(h.dns.asked("_matrix-fed._tcp.01.2.3.4", RecordType::SRV));
    assert!(h.dns.asked("01.2.3.4", RecordType::A));
}

#[tokio::test]
async fn a9_upper_case_name_is_sent_exactly_and_compared_byte_for_byte() {
    let mut h = Harness::new().await;
    let mut host = h.host("example.test");
    h.serve(
        &mut host,
        443,
        h.ca.leaf(&["example.test"]),
        handler(|_| Reply::not_found()),
    );
    // The server's keys say "example.test"; the requested name is "Example.TEST".
    let server = h.homeserver(&mut host, 8448, "example.test", "example.test");
    let round = h.services().round("Example.TEST").await;
    let r = &round.resolution;
    assert_eq!(
        targets(r),
        [t(
            format!("{}:8448", ip(&host)),
            "Example.TEST",
            Some("Example.TEST")
        )]
    );
    assert!(
        round.all_ok(),
        "DNS and certificates ignore case: {:?}",
        round.error()
    );
    assert_eq!(
        server.hits(VERSION)[0].host.as_deref(),
        Some("Example.TEST")
    );
    let keys = round.addresses[0]
        .keys
        .as_ref()
        .unwrap()
        .checks
        .as_ref()
        .unwrap();
    assert!(!keys.matching_server_name);
    assert!(!round.federation_ok());
    assert!(has_finding(r, Severity::Warning, "upper-case"));
}

// ---------------------------------------------------------------------------------------------
// B. Explicit port

#[tokio::test]
async fn b1_explicit_port_skips_well_known_and_srv() {
    let mut h = Harness::new().await;
    let mut host = h.host("example.test");
    h.dns.srv(
        "_matrix-fed._tcp.example.test",
        10,
        0,
        8448,
        "elsewhere.test",
    );
    let wk = h.serve(
        &mut host,
        443,
        h.ca.leaf(&["example.test"]),
        well_known(json!({"m.server": "elsewhere.test"})),
    );
    let server = h.homeserver(&mut host, 8448, "example.test", "example.test:8448");
    let round = h.services().round("example.test:8448").await;
    let r = &round.resolution;
    assert_eq!(r.method, Some(Method::ExplicitPort));
    assert_eq!(r.well_known.status, WellKnownStatus::Skipped);
    assert_eq!(
        targets(r),
        [t(
            format!("{}:8448", ip(&host)),
            "example.test:8448",
            Some("example.test")
        )]
    );
    assert!(round.federation_ok(), "{:?}", round.error());
    assert_eq!(
        server.hits(VERSION)[0],
        seen(Some("example.test"), "example.test:8448", VERSION)
    );
    assert!(wk.hits(WK).is_empty(), "no well-known request");
    assert!(
        !h.dns
            .asked("_matrix-fed._tcp.example.test", RecordType::SRV),
        "no SRV query"
    );
}

#[tokio::test]
async fn b2_explicit_port_through_a_cname_keeps_the_original_name_for_host_and_sni() {
    let mut h = Harness::new().await;
    let mut lb = h.host("lb.test");
    h.dns.cname("example.test", "lb.test");
    let server = h.homeserver(&mut lb, 443, "example.test", "example.test:443");
    let round = h.services().round("example.test:443").await;
    let r = &round.resolution;
    assert_eq!(
        targets(r),
        [t(
            format!("{}:443", ip(&lb)),
            "example.test:443",
            Some("example.test")
        )]
    );
    assert_eq!(r.hosts[0].cnames, ["lb.test"]);
    assert!(round.federation_ok(), "{:?}", round.error());
    assert_eq!(
        server.hits(VERSION)[0],
        seen(Some("example.test"), "example.test:443", VERSION)
    );
}

// ---------------------------------------------------------------------------------------------
// C. Well-known delegation

/// `example.test` with a well-known answering `wk`, on its own host.
fn delegating(h: &mut Harness, wk: Handler) -> (TestHost, std::sync::Arc<HttpsServer>) {
    let mut host = h.host("example.test");
    let leaf = h.ca.leaf(&["example.test"]);
    let server = h.serve(&mut host, 443, leaf, wk);
    (host, server)
}

#[tokio::test]
async fn c1_delegation_with_port_keeps_it_in_host_and_skips_srv() {
    let mut h = Harness::new().await;
    let (_origin, wk) = delegating(
        &mut h,
        well_known(json!({"m.server": "matrix.example.test:443"})),
    );
    let mut m = h.host("matrix.example.test");
    let server = h.homeserver(&mut m, 443, "matrix.example.test", "example.test");
    let round = h.services().round("example.test").await;
    let r = &round.resolution;
    assert_eq!(r.well_known.status, WellKnownStatus::Delegated);
    assert_eq!(r.delegated_name, "matrix.example.test:443");
    assert_eq!(r.method, Some(Method::ExplicitPort));
    assert_eq!(
        targets(r),
        [t(
            format!("{}:443", ip(&m)),
            "matrix.example.test:443",
            Some("matrix.example.test")
        )]
    );
    assert!(round.federation_ok(), "{:?}", round.error());
    assert_eq!(
        server.hits(VERSION)[0],
        seen(
            Some("matrix.example.test"),
            "matrix.example.test:443",
            VERSION
        )
    );
    assert_eq!(
        wk.hits(WK)[0],
        seen(Some("example.test"), "example.test", WK)
    );
    assert!(
        !h.dns
            .asked("_matrix-fed._tcp.matrix.example.test", RecordType::SRV)
    );
    assert!(has_finding(
        r,
        Severity::Info,
        "delegates federation to matrix.example.test:443"
    ));
}

#[tokio::test]
async fn c2_delegation_then_srv_uses_the_delegated_name_not_the_srv_target() {
    let mut h = Harness::new().await;
    let _wk = delegating(
        &mut h,
        well_known(json!({"m.server": "matrix.example.test"})),
    );
    h.dns.srv(
        "_matrix-fed._tcp.matrix.example.test",
        10,
        0,
        443,
        "fed.example.net",
    );
    let mut fed = h.host("fed.example.net");
    // The certificate covers the delegated name only (G5: valid).
    let server = h.homeserver(&mut fed, 443, "matrix.example.test", "example.test");
    let round = h.services().round("example.test").await;
    let r = &round.resolution;
    assert_eq!(r.method, Some(Method::SrvMatrixFed));
    assert_eq!(
        targets(r),
        [t(
            format!("{}:443", ip(&fed)),
            "matrix.example.test",
            Some("matrix.example.test")
        )]
    );
    assert!(round.federation_ok(), "{:?}", round.error());
    assert_eq!(
        server.hits(VERSION)[0],
        seen(Some("matrix.example.test"), "matrix.example.test", VERSION)
    );
    assert_eq!(r.targets[0].via, "fed.example.net");
}

#[tokio::test]
async fn c3_delegation_then_legacy_srv_only_is_flagged_deprecated() {
    let mut h = Harness::new().await;
    let _wk = delegating(
        &mut h,
        well_known(json!({"m.server": "matrix.example.test"})),
    );
    h.dns.srv(
        "_matrix._tcp.matrix.example.test",
        10,
        0,
        443,
        "fed.example.net",
    );
    let mut fed = h.host("fed.example.net");
    h.homeserver(&mut fed, 443, "matrix.example.test", "example.test");
    let round = h.services().round("example.test").await;
    let r = &round.resolution;
    assert_eq!(r.method, Some(Method::SrvMatrix));
    assert_eq!(
        targets(r),
        [t(
            format!("{}:443", ip(&fed)),
            "matrix.example.test",
            Some("matrix.example.test")
        )]
    );
    assert!(has_finding(
        r,
        Severity::Warning,
        "deprecated _matrix._tcp.matrix.example.test"
    ));
    assert!(
        h.dns
            .asked("_matrix-fed._tcp.matrix.example.test", RecordType::SRV),
        "matrix-fed first"
    );
    assert!(round.federation_ok());
}

#[tokio::test]
async fn c4_delegation_without_srv_uses_8448_on_the_delegated_name() {
    let mut h = Harness::new().await;
    let _wk = delegating(
        &mut h,
        well_known(json!({"m.server": "matrix.example.test"})),
    );
    let mut m = h.host("matrix.example.test");
    let server = h.homeserver(&mut m, 8448, "matrix.example.test", "example.test");
    let round = h.services().round("example.test").await;
    let r = &round.resolution;
    assert_eq!(r.method, Some(Method::DefaultPort));
    assert_eq!(
        targets(r),
        [t(
            format!("{}:8448", ip(&m)),
            "matrix.example.test",
            Some("matrix.example.test")
        )]
    );
    assert!(round.federation_ok(), "{:?}", round.error());
    assert_eq!(
        server.hits(VERSION)[0],
        seen(Some("matrix.example.test"), "matrix.example.test", VERSION)
    );
}

#[tokio::test]
async fn c5_c6_delegation_to_ip_literals_sends_no_sni() {
    for with_port in [false, true] {
        let mut h = Harness::new().await;
        let mut target = TestHost::claim();
        let ip = ip(&target);
        let (port, m_server) = if with_port {
            (443, format!("{ip}:443"))
        } else {
            (8448, ip.clone())
        };
        let _wk = delegating(&mut h, well_known(json!({"m.server": m_server})));
        let server = h.homeserver(&mut target, port, &ip, "example.test");
        let round = h.services().round("example.test").await;
        let r = &round.resolution;
        assert_eq!(r.method, Some(Method::IpLiteral));
        assert_eq!(targets(r), [t(format!("{ip}:{port}"), &m_server, None)]);
        assert!(round.federation_ok(), "{:?}", round.error());
        assert_eq!(server.hits(VERSION)[0], seen(None, &m_server, VERSION));
    }
}

#[tokio::test]
async fn c8_c9_content_type_and_extra_keys_are_ignored() {
    let mut h = Harness::new().await;
    let _wk = delegating(
        &mut h,
        handler(|_| {
            Reply::status(
                200,
                r#"{"m.server":"matrix.example.test:443","org.example.x":1}"#,
            )
            .header("content-type", "text/plain")
        }),
    );
    let mut m = h.host("matrix.example.test");
    h.homeserver(&mut m, 443, "matrix.example.test", "example.test");
    let round = h.services().round("example.test").await;
    assert_eq!(
        round.resolution.well_known.status,
        WellKnownStatus::Delegated
    );
    assert!(round.federation_ok(), "{:?}", round.error());
}

#[tokio::test]
async fn c10_only_one_well_known_hop() {
    let mut h = Harness::new().await;
    let _wk = delegating(
        &mut h,
        well_known(json!({"m.server": "matrix.example.test"})),
    );
    let mut m = h.host("matrix.example.test");
    let second = h.serve(
        &mut m,
        443,
        h.ca.leaf(&["matrix.example.test"]),
        well_known(json!({"m.server": "other.test"})),
    );
    h.homeserver(&mut m, 8448, "matrix.example.test", "example.test");
    let round = h.services().round("example.test").await;
    assert_eq!(round.resolution.delegated_name, "matrix.example.test");
    assert!(
        second.hits(WK).is_empty(),
        "the delegated name's well-known is never fetched"
    );
    assert!(round.federation_ok());
}

#[tokio::test]
async fn c11_redirects_are_followed_and_each_hop_verified() {
    let mut h = Harness::new().await;
    let _wk = delegating(
        &mut h,
        handler(|_| Reply::redirect(302, "https://www.example.test/even_better_known")),
    );
    let mut www = h.host("www.example.test");
    let www_server = h.serve(
        &mut www,
        443,
        h.ca.leaf(&["www.example.test"]),
        handler(|s| {
            if s.path == "/even_better_known" {
                Reply::json(json!({"m.server": "matrix.example.test"}))
            } else {
                Reply::not_found()
            }
        }),
    );
    let mut m = h.host("matrix.example.test");
    h.homeserver(&mut m, 8448, "matrix.example.test", "example.test");
    let round = h.services().round("example.test").await;
    let r = &round.resolution;
    assert_eq!(r.well_known.status, WellKnownStatus::Delegated);
    assert_eq!(
        r.well_known.redirects,
        ["https://www.example.test/even_better_known"]
    );
    assert_eq!(r.delegated_name, "matrix.example.test");
    assert_eq!(
        www_server.seen()[0].sni.as_deref(),
        Some("www.example.test")
    );
    assert!(round.federation_ok());
}

// ---------------------------------------------------------------------------------------------
// D. Invalid well-known → step 4 (SRV, then 8448 on the original name)

/// Runs `example.test` with the well-known answered by `wk` (or nothing listening on 443 when
/// `None`) and a homeserver on example.test:8448; checks the step-4 fallback.
async fn falls_back(wk: Option<Handler>, tls_names: &[&str]) -> Resolution {
    let mut h = Harness::new().await;
    let mut host = h.host("example.test");
    if let Some(wk) = wk {
        let leaf = h.ca.leaf(tls_names);
        h.serve(&mut host, 443, leaf, wk);
    }
    let server = h.homeserver(&mut host, 8448, "example.test", "example.test");
    host.release();
    let round = h.services().round("example.test").await;
    let r = (*round.resolution).clone();
    assert_eq!(r.method, Some(Method::DefaultPort), "{:?}", r.well_known);
    assert_eq!(r.delegated_name, "example.test");
    assert_eq!(
        targets(&r),
        [t(
            format!("{}:8448", ip(&host)),
            "example.test",
            Some("example.test")
        )]
    );
    assert!(
        h.dns
            .asked("_matrix-fed._tcp.example.test", RecordType::SRV)
    );
    assert!(h.dns.asked("_matrix._tcp.example.test", RecordType::SRV));
    assert!(round.all_ok(), "{:?}", round.error());
    assert_eq!(
        server.hits(VERSION)[0],
        seen(Some("example.test"), "example.test", VERSION)
    );
    r
}

fn wk_reply(reply: Reply) -> Option<Handler> {
    Some(handler(move |_| reply.clone()))
}

#[tokio::test]
async fn d1_404() {
    let r = falls_back(wk_reply(Reply::not_found()), &["example.test"]).await;
    assert_eq!(r.well_known.status, WellKnownStatus::NotFound);
    assert!(has_finding(
        &r,
        Severity::Info,
        "no /.well-known/matrix/server"
    ));
}

#[tokio::test]
async fn d2_server_errors() {
    for code in [500, 502, 503] {
        let r = falls_back(wk_reply(Reply::status(code, "oops")), &["example.test"]).await;
        assert_eq!(r.well_known.status, WellKnownStatus::Invalid);
        assert_eq!(r.well_known.http_status, Some(code));
    }
}

#[tokio::test]
async fn d3_nothing_listening_on_443() {
    let r = falls_back(None, &[]).await;
    assert_eq!(r.well_known.status, WellKnownStatus::Error);
    assert_eq!(r.well_known.error_kind, Some(ErrorKind::ConnectRefused));
    assert!(has_finding(&r, Severity::Info, "could not be fetched"));
}

#[tokio::test]
async fn d4_bad_certificate_on_443() {
    let r = falls_back(
        wk_reply(Reply::json(json!({"m.server": "evil.test"}))),
        &["other.test"],
    )
    .await;
    assert_eq!(r.well_known.status, WellKnownStatus::Error);
    assert_eq!(r.well_known.error_kind, Some(ErrorKind::TlsCertificate));
    assert!(
        r.well_known
            .problem
            .as_deref()
            .unwrap()
            .contains("expected example.test"),
        "{:?}",
        r.well_known.problem
    );
}

#[tokio::test]
async fn d5_d6_d7_bodies_that_are_not_a_delegation() {
    for body in [
        "NOT JSON",
        "<html><body>hi</body></html>",
        "[]",
        "\"x\"",
        "null",
        "42",
        "{}",
        r#"{"m.server":""}"#,
        r#"{"m.server":123}"#,
        r#"{"m.server":null}"#,
    ] {
        let r = falls_back(wk_reply(Reply::status(200, body)), &["example.test"]).await;
        assert_eq!(r.well_known.status, WellKnownStatus::Invalid, "{body}");
        assert!(
            has_finding(&r, Severity::Warning, "invalid"),
            "{body}: {:?}",
            r.findings
        );
    }
}

#[tokio::test]
async fn d8_grammar_violations_fall_back_with_a_high_severity_finding() {
    for m_server in [
        "https://matrix.example.test",
        "matrix.example.test/",
        "matrix example.test",
        "matrix.example.test:99999",
        "[::1",
        "bücher.test",
    ] {
        let r = falls_back(
            wk_reply(Reply::json(json!({"m.server": m_server}))),
            &["example.test"],
        )
        .await;
        assert_eq!(r.well_known.status, WellKnownStatus::Invalid, "{m_server}");
        assert!(
            has_finding(&r, Severity::Error, "gomatrixserverlib"),
            "{m_server}: {:?}",
            r.findings
        );
    }
}

#[tokio::test]
async fn d9_oversized_body() {
    let big = format!(r#"{{"m.server":"{}"}}"#, "a".repeat(51 * 1024));
    let r = falls_back(wk_reply(Reply::status(200, big)), &["example.test"]).await;
    assert_eq!(r.well_known.status, WellKnownStatus::Invalid);
    assert!(
        r.well_known
            .problem
            .as_deref()
            .unwrap()
            .contains("larger than 50 KiB")
    );
}

#[tokio::test]
async fn d10_a_2xx_other_than_200() {
    let r = falls_back(wk_reply(Reply::status(204, "")), &["example.test"]).await;
    assert_eq!(r.well_known.status, WellKnownStatus::Invalid);
    assert!(
        r.well_known
            .problem
            .as_deref()
            .unwrap()
            .contains("only 200")
    );
}

#[tokio::test]
async fn d11_redirect_loops_and_long_chains() {
    let looping = handler(|s| {
        if s.path == "/a" {
            Reply::redirect(302, "/b")
        } else {
            Reply::redirect(302, "/a")
        }
    });
    let r = falls_back(Some(looping), &["example.test"]).await;
    assert_eq!(r.well_known.status, WellKnownStatus::Error);
    assert!(
        r.well_known
            .problem
            .as_deref()
            .unwrap()
            .contains("redirect loop"),
        "{:?}",
        r.well_known.problem
    );

    let endless = handler(|s| {
        let n: u32 = s.path.trim_start_matches("/hop").parse().unwrap_or(0);
        Reply::redirect(307, &format!("/hop{}", n + 1))
    });
    let r = falls_back(Some(endless), &["example.test"]).await;
    assert!(
        r.well_known
            .problem
            .as_deref()
            .unwrap()
            .contains("more than 10 redirects"),
        "{:?}",
        r.well_known.problem
    );
}

#[tokio::test]
async fn d12_a_well_known_that_never_finishes_is_bounded_by_the_timeout() {
    let started = std::time::Instant::now();
    let slow = wk_reply(
        Reply::json(json!({"m.server": "x.test"})).delay(std::time::Duration::from_secs(30)),
    );
    let r = falls_back(slow, &["example.test"]).await;
    assert_eq!(r.well_known.error_kind, Some(ErrorKind::Timeout));
    // The fetch itself gave up at the 3 s timeout (the harness's setup, which a loaded
    // machine slows down, is left out of this measure)...
    let fetch = r.well_known.duration_ms.unwrap();
    assert!((3000.0..4500.0).contains(&fetch), "{fetch} ms");
    // ...and the whole round, setup included, never waited for the 30 s answer.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// E. SRV

#[tokio::test]
async fn e1_e9_srv_target_and_port_with_the_server_name_for_host_and_sni() {
    let mut h = Harness::new().await;
    h.dns.srv(
        "_matrix-fed._tcp.example.test",
        10,
        0,
        443,
        "fed.example.net.",
    );
    let mut fed = h.host("fed.example.net");
    let server = h.homeserver(&mut fed, 443, "example.test", "example.test");
    let round = h.services().round("example.test").await;
    let r = &round.resolution;
    assert_eq!(
        r.well_known.status,
        WellKnownStatus::Error,
        "nothing on example.test:443"
    );
    assert_eq!(r.method, Some(Method::SrvMatrixFed));
    assert_eq!(
        targets(r),
        [t(
            format!("{}:443", ip(&fed)),
            "example.test",
            Some("example.test")
        )]
    );
    assert_eq!(
        r.srv[0].records[0].target, "fed.example.net",
        "trailing dot stripped"
    );
    assert!(round.federation_ok(), "{:?}", round.error());
    assert_eq!(
        server.hits(VERSION)[0],
        seen(Some("example.test"), "example.test", VERSION)
    );
    assert!(!h.dns.asked("_matrix._tcp.example.test", RecordType::SRV));
}

#[tokio::test]
async fn e2_legacy_srv_only() {
    let mut h = Harness::new().await;
    h.dns
        .srv("_matrix._tcp.example.test", 10, 0, 443, "fed.example.net");
    let mut fed = h.host("fed.example.net");
    h.homeserver(&mut fed, 443, "example.test", "example.test");
    let round = h.services().round("example.test").await;
    assert_eq!(round.resolution.method, Some(Method::SrvMatrix));
    assert!(has_finding(
        &round.resolution,
        Severity::Warning,
        "deprecated"
    ));
    assert!(round.federation_ok());
}

#[tokio::test]
async fn e3_matrix_fed_wins_and_there_is_no_fallback_even_when_its_target_fails() {
    let mut h = Harness::new().await;
    h.dns
        .srv("_matrix-fed._tcp.example.test", 10, 0, 443, "a.example.net");
    h.dns
        .srv("_matrix._tcp.example.test", 10, 0, 8448, "b.example.net");
    let mut a = h.host("a.example.net");
    a.release(); // nothing listens: connection refused
    let mut b = h.host("b.example.net");
    let b_server = h.homeserver(&mut b, 8448, "example.test", "example.test");
    let round = h.services().round("example.test").await;
    let r = &round.resolution;
    assert_eq!(r.method, Some(Method::SrvMatrixFed));
    assert_eq!(
        targets(r),
        [t(
            format!("{}:443", ip(&a)),
            "example.test",
            Some("example.test")
        )]
    );
    assert_eq!(round.error().unwrap().kind, ErrorKind::ConnectRefused);
    assert!(!h.dns.asked("_matrix._tcp.example.test", RecordType::SRV));
    assert!(b_server.seen().is_empty());
}

#[tokio::test]
async fn e4_priority_order_with_weight_zero_last() {
    let h = Harness::new().await;
    let hosts: Vec<TestHost> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| h.host(&format!("{n}.example.net")))
        .collect();
    h.dns
        .srv(
            "_matrix-fed._tcp.example.test",
            10,
            60,
            8448,
            "a.example.net",
        )
        .srv(
            "_matrix-fed._tcp.example.test",
            10,
            20,
            8448,
            "b.example.net",
        )
        .srv(
            "_matrix-fed._tcp.example.test",
            10,
            0,
            8448,
            "c.example.net",
        )
        .srv("_matrix-fed._tcp.example.test", 20, 0, 443, "d.example.net");
    let services = h.services();
    for _ in 0..5 {
        let r = services.discovery.resolve("example.test").await;
        let via: Vec<&str> = r.targets.iter().map(|t| t.via.as_str()).collect();
        assert_eq!(via.len(), 4);
        assert!(
            via[..2].contains(&"a.example.net") && via[..2].contains(&"b.example.net"),
            "{via:?}"
        );
        assert_eq!(&via[2..], ["c.example.net", "d.example.net"]);
        assert!(
            r.targets.iter().all(|t| t.host_header == "example.test"
                && t.tls_name.as_deref() == Some("example.test"))
        );
        assert_eq!(r.targets[3].address.port(), 443);
    }
    drop(hosts);
}

#[tokio::test]
async fn e5_srv_target_dot_means_service_unavailable_without_fallback() {
    let h = Harness::new().await;
    h.dns.srv("_matrix-fed._tcp.example.test", 0, 0, 0, ".");
    h.dns.a("example.test", "127.0.0.1".parse().unwrap());
    let round = h.services().round("example.test").await;
    let r = &round.resolution;
    assert_eq!(
        r.error.as_ref().unwrap().kind,
        ErrorKind::ServiceUnavailable
    );
    assert!(r.targets.is_empty());
    assert_eq!(r.srv[0].outcome, SrvOutcome::Unavailable);
    assert!(!h.dns.asked("_matrix._tcp.example.test", RecordType::SRV));
    assert!(r.hosts.is_empty(), "no 8448 fallback: {:?}", r.hosts);
}

#[tokio::test]
async fn e6_srv_target_that_is_a_cname_is_reported_and_still_probed() {
    let mut h = Harness::new().await;
    h.dns.srv(
        "_matrix-fed._tcp.example.test",
        10,
        0,
        8448,
        "alias.example.net",
    );
    h.dns.cname("alias.example.net", "real.example.net");
    let mut real = h.host("real.example.net");
    h.homeserver(&mut real, 8448, "example.test", "example.test");
    let round = h.services().round("example.test").await;
    let r = &round.resolution;
    // The spec says an SRV target "may not be a CNAME": an error finding (homeservers may
    // refuse it), while the address is still probed and shown (issue 11 item 5).
    assert!(
        has_finding(
            r,
            Severity::Error,
            "SRV target alias.example.net is a CNAME (to real.example.net), which the Matrix spec"
        ),
        "{:?}",
        r.findings
    );
    assert!(has_finding(
        r,
        Severity::Error,
        "canonical name real.example.net"
    ));
    assert_eq!(
        targets(r),
        [t(
            format!("{}:8448", ip(&real)),
            "example.test",
            Some("example.test")
        )]
    );
    assert!(round.all_ok(), "the address answers: {:?}", round.error());
    assert!(
        !round.federation_ok(),
        "but the setup breaks federation for some"
    );
}

/// Issue 11 item 4: with more SRV records than are probed, the ones kept are those a
/// homeserver tries first — ordered by priority before the cap, not cut in answer order.
#[tokio::test]
async fn srv_records_are_ordered_before_they_are_capped() {
    let mut h = Harness::new().await;
    // 20 records at priority 50 come first in the answer; the only priority-1 record last.
    for i in 0..20 {
        h.dns.srv(
            "_matrix-fed._tcp.example.test",
            50,
            10,
            8448,
            &format!("backup{i}.example.net"),
        );
    }
    h.dns.srv(
        "_matrix-fed._tcp.example.test",
        1,
        0,
        8448,
        "primary.example.net",
    );
    let mut primary = h.host("primary.example.net");
    h.homeserver(&mut primary, 8448, "example.test", "example.test");
    let round = h.services().round("example.test").await;
    let r = &round.resolution;
    let records = &r.srv[0].records;
    assert_eq!(records.len(), 16, "capped at 16");
    assert_eq!(records[0].target, "primary.example.net", "{records:?}");
    assert!(records[1..].iter().all(|rec| rec.priority == 50));
    assert!(has_finding(
        r,
        Severity::Warning,
        "has 21 SRV records; only the first 16 in the order a homeserver tries them"
    ));
    assert_eq!(r.targets[0].address.ip(), std::net::IpAddr::V4(primary.ip));
    assert!(round.addresses[0].ok, "{:?}", round.addresses[0].error);
}

#[tokio::test]
async fn e7_srv_servfail_or_timeout_is_a_dns_error_not_a_fallback() {
    for fault in [Fault::ServFail, Fault::Silence] {
        let h = Harness::new().await;
        h.dns
            .fault("_matrix-fed._tcp.example.test", RecordType::SRV, fault);
        h.dns.a("example.test", "127.0.0.1".parse().unwrap());
        let round = h.services().round("example.test").await;
        let e = round.resolution.error.clone().unwrap();
        assert_eq!(e.kind, ErrorKind::Dns, "{fault:?}");
        assert!(
            e.message.contains("_matrix-fed._tcp.example.test"),
            "{}",
            e.message
        );
        assert_eq!(round.resolution.srv[0].outcome, SrvOutcome::Failed);
        assert!(
            !h.dns.asked("_matrix._tcp.example.test", RecordType::SRV),
            "{fault:?}: no fallback"
        );
        assert!(round.addresses.is_empty());
    }
}

#[tokio::test]
async fn e8_non_srv_records_in_an_srv_answer_are_ignored() {
    let mut h = Harness::new().await;
    h.dns.srv(
        "_matrix-fed._tcp.example.test",
        10,
        0,
        8448,
        "fed.example.net",
    );
    h.dns.extra(
        "_matrix-fed._tcp.example.test",
        RecordType::SRV,
        Rr::A("127.9.9.9".parse().unwrap()),
    );
    let mut fed = h.host("fed.example.net");
    h.homeserver(&mut fed, 8448, "example.test", "example.test");
    let round = h.services().round("example.test").await;
    assert_eq!(
        targets(&round.resolution),
        [t(
            format!("{}:8448", ip(&fed)),
            "example.test",
            Some("example.test")
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// F. Addresses

#[tokio::test]
async fn f1_server_name_cname_keeps_the_server_name_for_sni() {
    let mut h = Harness::new().await;
    h.dns.cname("example.test", "host.example.net");
    let mut host = h.host("host.example.net");
    let server = h.homeserver(&mut host, 8448, "example.test", "example.test");
    let round = h.services().round("example.test").await;
    let r = &round.resolution;
    assert_eq!(
        targets(r),
        [t(
            format!("{}:8448", ip(&host)),
            "example.test",
            Some("example.test")
        )]
    );
    assert!(r.hosts.iter().any(|l| l.cnames == ["host.example.net"]));
    assert_eq!(server.hits(VERSION)[0].sni.as_deref(), Some("example.test"));
}

#[tokio::test]
async fn f2_f3_ipv4_and_ipv6_are_probed_and_reported_separately() {
    let h = Harness::new().await;
    // v6 works on [::1]:P; v4 on 127.x:P refuses. SRV names the port so ::1 is not shared.
    let v6 = https::ipv6_listener();
    let port = v6.local_addr().unwrap().port();
    let _server = HttpsServer::start(
        v6,
        h.ca.leaf(&["example.test"]),
        https::homeserver("example.test"),
    );
    let v4 = TestHost::claim();
    h.dns.srv(
        "_matrix-fed._tcp.example.test",
        10,
        0,
        port,
        "dual.example.net",
    );
    h.dns
        .a("dual.example.net", v4.ip)
        .aaaa("dual.example.net", "::1".parse().unwrap());
    let round = h.services().round("example.test").await;
    let r = &round.resolution;
    assert_eq!(
        targets(r),
        [
            t(
                format!("[::1]:{port}"),
                "example.test",
                Some("example.test")
            ),
            t(
                format!("{}:{port}", v4.ip),
                "example.test",
                Some("example.test")
            ),
        ]
    );
    let by_family: Vec<(IpFamily, bool)> = round
        .addresses
        .iter()
        .map(|a| (a.ip_family, a.ok))
        .collect();
    assert_eq!(by_family, [(IpFamily::Ipv6, true), (IpFamily::Ipv4, false)]);
    assert_eq!(
        round.addresses[1].error.as_ref().unwrap().kind,
        ErrorKind::ConnectRefused
    );
    assert!(round.any_ok() && !round.all_ok() && !round.federation_ok());
    let (status, reason) = round.status(std::time::Duration::from_millis(200));
    assert_eq!(status, mxping::testing::Status::Yellow);
    assert!(reason.unwrap().to_string().contains("IPv4 address"));
}

#[tokio::test]
async fn f4_no_address_anywhere() {
    let h = Harness::new().await;
    let round = h.services().round("nothing.test").await;
    let e = round.resolution.error.clone().unwrap();
    assert_eq!(e.kind, ErrorKind::NoAddress);
    assert!(e.message.contains("nothing.test"));
}

#[tokio::test]
async fn address_lookup_failures_are_dns_errors() {
    let h = Harness::new().await;
    h.dns.fault("example.test", RecordType::A, Fault::ServFail);
    h.dns
        .fault("example.test", RecordType::AAAA, Fault::ServFail);
    let round = h.services().round("example.test").await;
    let e = round.resolution.error.clone().unwrap();
    assert_eq!(e.kind, ErrorKind::Dns);
    assert!(e.message.contains("SERVFAIL"), "{}", e.message);
}

#[tokio::test]
async fn one_family_failing_in_dns_is_a_warning_when_the_other_answers() {
    let mut h = Harness::new().await;
    let mut host = h.host("example.test");
    h.dns
        .fault("example.test", RecordType::AAAA, Fault::ServFail);
    h.homeserver(&mut host, 8448, "example.test", "example.test");
    let round = h.services().round("example.test").await;
    assert!(round.all_ok());
    assert!(has_finding(
        &round.resolution,
        Severity::Warning,
        "AAAA: the DNS server answered SERVFAIL"
    ));
}

// ---------------------------------------------------------------------------------------------
// F5. The private-address guard, applied to every address discovery produces.

#[tokio::test]
async fn f5_private_addresses_are_blocked_by_default_everywhere() {
    // SRV target, plain A, CNAME chain, IP literal and well-known IP delegation: all blocked.
    let mut h = Harness::new().await;
    h.allow_loopback = false;
    let mut origin = h.host("example.test");
    let wk = h.serve(
        &mut origin,
        443,
        h.ca.leaf(&["example.test"]),
        well_known(json!({"m.server": "127.0.0.1:8448"})),
    );
    h.dns
        .srv("_matrix-fed._tcp.srv.test", 10, 0, 8448, "inside.test");
    h.dns.a("inside.test", "127.0.0.1".parse().unwrap());
    h.dns.cname("alias.test", "inside.test");
    let services = h.services();
    for name in [
        "srv.test",
        "alias.test",
        "inside.test:8448",
        "127.0.0.1",
        "[::ffff:127.0.0.1]",
        "[::1]:8448",
    ] {
        let round = services.round(name).await;
        let e = round
            .error()
            .unwrap_or_else(|| panic!("{name} must be blocked"));
        assert_eq!(e.kind, ErrorKind::BlockedAddress, "{name}: {e:?}");
        assert!(
            round
                .addresses
                .iter()
                .all(|a| a.phases_ms.connect.is_none()),
            "{name}: never connected"
        );
    }
    // The well-known host itself is loopback, so even the well-known is never fetched.
    let round = services.round("example.test").await;
    assert_eq!(
        round.resolution.well_known.error_kind,
        Some(ErrorKind::BlockedAddress)
    );
    assert!(wk.hits(WK).is_empty());
    assert_eq!(round.error().unwrap().kind, ErrorKind::BlockedAddress);
}

#[tokio::test]
async fn f5_well_known_redirect_to_a_private_ip_is_blocked() {
    let mut h = Harness::new().await;
    // Only the well-known host is allowed; the redirect target 127.0.0.1 is not.
    let mut origin = h.host("example.test");
    h.allow_loopback = false;
    let wk = h.serve(
        &mut origin,
        443,
        h.ca.leaf(&["example.test"]),
        handler(|_| Reply::redirect(302, "https://127.0.0.1/.well-known/matrix/server")),
    );
    let text = h
        .config_text()
        .replace("allow = []", &format!("allow = [\"{}/32\"]", origin.ip));
    let config = mxping::config::Config::parse(&text, "t", None).unwrap();
    let services = mxping::Services::new(&config).unwrap();
    let round = services.round("example.test").await;
    let wkr = &round.resolution.well_known;
    assert_eq!(wkr.status, WellKnownStatus::Error);
    assert_eq!(wkr.error_kind, Some(ErrorKind::BlockedAddress), "{wkr:?}");
    assert_eq!(wk.hits(WK).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// I. Caching

#[tokio::test]
async fn well_known_results_are_cached_for_their_lifetime() {
    let mut h = Harness::new().await;
    let (_origin, wk) = delegating(
        &mut h,
        handler(|_| {
            Reply::json(json!({"m.server": "matrix.example.test:443"}))
                .header("cache-control", "max-age=3600")
        }),
    );
    h.dns.a("matrix.example.test", "127.0.0.1".parse().unwrap());
    let services = h.services();
    let first = services.discovery.resolve("example.test").await;
    let c = first.well_known.cache.clone().unwrap();
    assert_eq!(c.ttl_s, 3600);
    assert!(!first.well_known.from_cache);
    let second = services.discovery.resolve("example.test").await;
    assert!(second.well_known.from_cache);
    assert_eq!(second.delegated_name, "matrix.example.test:443");
    assert_eq!(wk.hits(WK).len(), 1, "fetched once");
    // The resolution expires with the earliest input: DNS records (TTL 300 s) here.
    let ttl = first.valid_for.as_secs();
    assert!((290..=300).contains(&ttl), "{ttl}");
}

/// The DNS queries made while `services` resolves `name` once more.
async fn queries_of_one_resolve(
    h: &Harness,
    services: &mxping::Services,
    name: &str,
) -> Vec<(String, RecordType)> {
    let before = h.dns.queries().len();
    services.discovery.resolve(name).await;
    h.dns.queries()[before..].to_vec()
}

#[tokio::test]
async fn dns_answers_are_cached_for_their_ttl_and_no_records_for_the_zones_negative_ttl() {
    let mut h = Harness::new().await;
    let mut host = h.host("example.test");
    h.homeserver(&mut host, 8448, "example.test", "example.test");
    host.release();
    let fed = ("_matrix-fed._tcp.example.test".to_owned(), RecordType::SRV);
    let legacy = ("_matrix._tcp.example.test".to_owned(), RecordType::SRV);
    let aaaa = ("example.test".to_owned(), RecordType::AAAA);
    let a = ("example.test".to_owned(), RecordType::A);

    // Answers without records carry no SOA: nothing says how long "no records" holds, so
    // each is asked again (RFC 2308); the A record is kept for its 300 s TTL.
    let services = h.services();
    let first = queries_of_one_resolve(&h, &services, "example.test").await;
    for q in [&fed, &legacy, &aaaa, &a] {
        assert!(first.contains(q), "{q:?} asked: {first:?}");
    }
    let again = queries_of_one_resolve(&h, &services, "Example.Test").await;
    for q in [&fed, &legacy, &aaaa] {
        assert!(again.contains(q), "{q:?} asked again: {again:?}");
    }
    assert!(
        !again.contains(&a),
        "the A answer came from the cache: {again:?}"
    );

    // With the zone's SOA, "no records" is kept for its negative TTL, then asked again.
    h.dns.set_negative_ttl(Some(1));
    let services = h.services();
    queries_of_one_resolve(&h, &services, "example.test").await;
    let cached = queries_of_one_resolve(&h, &services, "example.test").await;
    assert_eq!(cached, [], "every answer came from the cache");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let expired = queries_of_one_resolve(&h, &services, "example.test").await;
    for q in [&fed, &legacy, &aaaa] {
        assert!(
            expired.contains(q),
            "{q:?} asked once its 1 s passed: {expired:?}"
        );
    }
    assert!(!expired.contains(&a), "{expired:?}");

    // Failures are never cached: a SERVFAIL is asked again on the next resolution.
    h.dns
        .fault("example.test", RecordType::AAAA, Fault::ServFail);
    let services = h.services();
    for _ in 0..2 {
        let q = queries_of_one_resolve(&h, &services, "example.test").await;
        assert!(q.contains(&aaaa), "{q:?}");
    }
}

#[tokio::test]
async fn uncacheable_well_known_is_fetched_every_time_and_failures_back_off() {
    let mut h = Harness::new().await;
    let (_origin, wk) = delegating(
        &mut h,
        handler(|s| {
            if s.host.as_deref() == Some("example.test") {
                Reply::json(json!({"m.server": "matrix.example.test:443"}))
                    .header("cache-control", "no-store")
            } else {
                Reply::not_found()
            }
        }),
    );
    h.dns.a("matrix.example.test", "127.0.0.1".parse().unwrap());
    let services = h.services();
    services.discovery.resolve("example.test").await;
    services.discovery.resolve("example.test").await;
    assert_eq!(wk.hits(WK).len(), 2);
    assert_eq!(
        services
            .discovery
            .resolve("example.test")
            .await
            .valid_for
            .as_secs(),
        0
    );

    // A 404 is cached for 2 minutes (first failure).
    let mut h = Harness::new().await;
    let (_origin, wk) = delegating(&mut h, handler(|_| Reply::not_found()));
    let services = h.services();
    let r = services.discovery.resolve("example.test").await;
    assert_eq!(r.well_known.cache.as_ref().unwrap().ttl_s, 120);
    services.discovery.resolve("example.test").await;
    assert_eq!(wk.hits(WK).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Issue 11 spec gaps

/// Issue 11 item 1: a trailing dot is valid by the grammar, in the server name and in
/// `m.server`. The name is resolved, Host carries it as given (as Synapse sends it), SNI goes
/// without it (RFC 6066), the round succeeds, and an error finding says Synapse cannot verify
/// the certificate of such a name.
#[tokio::test]
async fn trailing_dot_names_resolve_and_are_explained() {
    let mut h = Harness::new().await;
    let mut origin = h.host("example.test");
    let mut fed = h.host("matrix.example.test");
    let wk = h.serve(
        &mut origin,
        443,
        h.ca.leaf(&["example.test"]),
        well_known(json!({"m.server": "matrix.example.test.:8448"})),
    );
    let server = h.homeserver(&mut fed, 8448, "matrix.example.test", "example.test.");
    let services = h.services();
    let round = services.round("example.test.").await;
    let r = &round.resolution;
    assert_eq!(
        r.well_known.status,
        WellKnownStatus::Delegated,
        "{:?}",
        r.well_known
    );
    assert_eq!(r.delegated_name, "matrix.example.test.:8448");
    assert_eq!(
        targets(r),
        [t(
            format!("{}:8448", ip(&fed)),
            "matrix.example.test.:8448",
            Some("matrix.example.test.")
        )]
    );
    assert!(round.all_ok(), "{:?}", round.error());
    assert_eq!(
        wk.hits(WK)[0],
        seen(Some("example.test"), "example.test.", WK),
        "the well-known is asked for with Host as given and SNI without the dot"
    );
    assert_eq!(
        server.hits(VERSION)[0],
        seen(
            Some("matrix.example.test"),
            "matrix.example.test.:8448",
            VERSION
        )
    );
    assert!(has_finding(
        r,
        Severity::Error,
        "example.test. ends with a dot"
    ));
    assert!(has_finding(
        r,
        Severity::Error,
        "the delegated name (m.server) matrix.example.test.:8448 ends with a dot"
    ));
    assert!(has_finding(
        r,
        Severity::Error,
        "Write m.server as matrix.example.test:8448"
    ));
    // The detail page explains it in the reader's language.
    let zh = mxping::testing::locale("zh").unwrap();
    let f = r
        .findings
        .iter()
        .find(|f| f.code == Some("trailing_dot"))
        .unwrap();
    assert!(
        f.text(zh).contains("example.test. 以点结尾"),
        "{}",
        f.text(zh)
    );
    assert!(!round.federation_ok(), "Synapse cannot federate with it");
}

/// Issue 11 item 7: `Cache-Control: no-cache` means revalidate before every use (fetched each
/// time), and `Age` shortens `max-age` (`max-age=3600` with `Age: 3500` lives 100 s).
#[tokio::test]
async fn no_cache_refetches_and_age_shortens_max_age() {
    for (headers, ttl, fetches) in [
        (vec![("cache-control", "no-cache")], 0, 2),
        (
            vec![("cache-control", "max-age=3600"), ("age", "3500")],
            100,
            1,
        ),
    ] {
        let mut h = Harness::new().await;
        let hdrs = headers.clone();
        let (_origin, wk) = delegating(
            &mut h,
            handler(move |_| {
                hdrs.iter().fold(
                    Reply::json(json!({"m.server": "matrix.example.test:443"})),
                    |r, (k, v)| r.header(k, v),
                )
            }),
        );
        h.dns.a("matrix.example.test", "127.0.0.1".parse().unwrap());
        let services = h.services();
        let first = services.discovery.resolve("example.test").await;
        assert_eq!(first.well_known.status, WellKnownStatus::Delegated);
        assert_eq!(
            first.well_known.cache.as_ref().unwrap().ttl_s,
            ttl,
            "{headers:?}"
        );
        services.discovery.resolve("example.test").await;
        assert_eq!(wk.hits(WK).len(), fetches, "{headers:?}");
        if ttl == 100 {
            let left = first.valid_for.as_secs();
            // Refreshed when a fifth of the 100 s is left, as Synapse does.
            assert!((75..=80).contains(&left), "refreshed at 80 s: {left}");
        }
    }
}

/// Issue 11 item 9: as Synapse does, a valid delegation is refreshed once a fifth of its
/// lifetime is left; a transient failure then (5xx, no connection) keeps the delegation with a
/// warning, while the server's real answer (404) replaces it. After the delegation has
/// expired, a failure is cached for only 2 minutes, since the host was recently valid.
#[tokio::test]
async fn a_transient_failure_at_refresh_keeps_a_valid_delegation() {
    use std::sync::atomic::{AtomicU16, Ordering};
    for (failure, kept) in [(503u16, true), (404, false)] {
        let mut h = Harness::new().await;
        // 0 = a valid delegation with max-age=2; otherwise answer with that status.
        let answer = std::sync::Arc::new(AtomicU16::new(0));
        let a = answer.clone();
        let (_origin, wk) = delegating(
            &mut h,
            handler(move |_| match a.load(Ordering::SeqCst) {
                0 => Reply::json(json!({"m.server": "matrix.example.test:443"}))
                    .header("cache-control", "max-age=2"),
                status => Reply::status(status, "{}"),
            }),
        );
        h.dns.a("matrix.example.test", "127.0.0.1".parse().unwrap());
        let services = h.services();
        let first = services.discovery.resolve("example.test").await;
        assert_eq!(first.well_known.status, WellKnownStatus::Delegated);
        // Due for refresh after 80 % of the lifetime: the resolution expires then.
        assert!(
            first.valid_for <= std::time::Duration::from_millis(1600),
            "{:?}",
            first.valid_for
        );
        answer.store(failure, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
        let second = services.discovery.resolve("example.test").await;
        // Refreshed before expiry; the host is recently valid, so a transient failure is
        // retried (3 attempts, 500 ms apart) and a 404 is not.
        let at_refresh = if kept { 1 + 3 } else { 1 + 1 };
        assert_eq!(wk.hits(WK).len(), at_refresh, "refreshed before expiry");
        if kept {
            assert_eq!(second.well_known.status, WellKnownStatus::Delegated);
            assert_eq!(second.delegated_name, "matrix.example.test:443");
            assert!(
                has_finding(
                    &second,
                    Severity::Warning,
                    "refreshing the well-known failed"
                ) && second
                    .findings
                    .iter()
                    .any(|f| f.said.as_deref().is_some_and(|s| s.starts_with("HTTP 503"))),
                "{:?}",
                second.findings
            );
            // Once the delegation has expired, the failure stands, cached for 2 minutes.
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            let third = services.discovery.resolve("example.test").await;
            assert_eq!(third.well_known.status, WellKnownStatus::Invalid);
            let cache = third.well_known.cache.clone().unwrap();
            assert_eq!(cache.ttl_s, 120);
            assert!(
                cache.reason.contains("failure after a valid well-known"),
                "{}",
                cache.reason
            );
            assert_eq!(
                wk.hits(WK).len(),
                at_refresh + 3,
                "3 attempts after expiry too"
            );
        } else {
            assert_eq!(second.well_known.status, WellKnownStatus::NotFound);
            assert_eq!(second.delegated_name, "example.test");
        }
    }
}

/// Happy Eyeballs, as homeservers connect: a black-holed first address (here the AAAA record,
/// tried first, whose accept queue is full so connects hang) must not stall the well-known
/// fetch until the timeout; the next address is tried 300 ms later and answers.
#[tokio::test]
async fn a_black_holed_address_does_not_stall_the_well_known() {
    use tokio::net::TcpSocket;
    let mut h = Harness::new().await;
    let socket = TcpSocket::new_v6().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket
        .bind("[::1]:443".parse().unwrap())
        .expect("[::1]:443 free for the black hole");
    let _hole = socket.listen(0).unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            tokio::net::TcpStream::connect("[::1]:443"),
        )
        .await
        {
            fillers.push(s);
        }
    }
    h.dns.aaaa("example.test", "::1".parse().unwrap());
    let (_origin, wk) = delegating(
        &mut h,
        well_known(json!({"m.server": "matrix.example.test:443"})),
    );
    h.dns.a("matrix.example.test", "127.0.0.1".parse().unwrap());
    let started = std::time::Instant::now();
    let r = h.services().discovery.resolve("example.test").await;
    assert_eq!(
        r.well_known.status,
        WellKnownStatus::Delegated,
        "{:?}",
        r.well_known
    );
    assert_eq!(wk.hits(WK).len(), 1);
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_millis(1500),
        "the IPv4 address was tried after 300 ms, not after the 3 s timeout: {took:?}"
    );
}
