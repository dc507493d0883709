//! The private-address guard cannot be bypassed; server-supplied strings are escaped and
//! capped; visitors cannot make the monitor contact anything.

use std::time::Duration;

use hickory_server::proto::rr::RecordType;
use mxping::error::ErrorKind;
use scraper::{Html, Selector};
use serde_json::json;

use crate::support::https::{handler, well_known};
use crate::support::serve::Serve;
use crate::support::*;

#[tokio::test]
async fn the_probe_connects_to_the_address_that_was_checked_even_when_dns_changes() {
    let mut h = Harness::new().await;
    let mut allowed = TestHost::claim();
    let blocked = TestHost::claim();
    // Only `allowed` is exempt from the guard; DNS alternates between the two on every query
    // (a rebinding attack: pass the check with one answer, connect with the next).
    let text = h.config_text().replace(
        r#"allow = ["127.0.0.0/8", "::1/128"]"#,
        &format!(r#"allow = ["{}/32"]"#, allowed.ip),
    );
    let config = mxping::config::Config::parse(&text, "t", None).unwrap();
    h.dns.rotate(
        "example.test",
        RecordType::A,
        vec![Rr::A(allowed.ip), Rr::A(blocked.ip)],
    );
    let mut blocked_listener = {
        let mut b = blocked;
        (b.take(443), b.take(8448))
    };
    blocked_listener.0.set_nonblocking(true).unwrap();
    blocked_listener.1.set_nonblocking(true).unwrap();
    let wk = h.serve(
        &mut allowed,
        443,
        h.ca.leaf(&["example.test"]),
        handler(|_| Reply::not_found()),
    );
    let server = h.homeserver(&mut allowed, 8448, "example.test", "example.test");
    let services = mxping::Services::new(&config).unwrap();
    for _ in 0..6 {
        let round = services.round("example.test").await;
        // Each resolution checks the answer it got and connects only there.
        for a in &round.addresses {
            if a.address.ip() == std::net::IpAddr::V4(allowed.ip) {
                assert!(a.ok, "{:?}", a.error);
            } else {
                assert_eq!(a.error.as_ref().unwrap().kind, ErrorKind::BlockedAddress);
                assert!(a.phases_ms.connect.is_none());
            }
        }
    }
    assert!(!server.seen().is_empty() && !wk.seen().is_empty());
    for l in [&blocked_listener.0, &blocked_listener.1] {
        match l.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("something connected to the blocked address: {other:?}"),
        }
    }
    let _ = &mut blocked_listener;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_supplied_strings_are_escaped_on_the_page_and_capped_in_labels() {
    let mut h = Harness::new().await;
    h.extra = "[monitor]\ninterval = \"1s\"\ntimeout = \"800ms\"\ncheck_keys = false\n".into();
    h.servers = vec!["evil.test".into()];
    let mut evil = h.host("evil.test");
    let name = format!(
        "<script>window.pwned=1</script>\u{7}\u{1b}[31m{}",
        "A".repeat(500)
    );
    let version = "<img src=x onerror=alert(1)>\"'&".to_owned();
    let leaf = h.ca.leaf(&["evil.test"]);
    h.serve(
        &mut evil,
        8448,
        leaf,
        handler(move |s| {
            if s.path == "/_matrix/federation/v1/version" {
                Reply::json(json!({"server": {"name": name, "version": version}}))
            } else {
                Reply::not_found()
            }
        }),
    );
    let s = Serve::start(&h.config_file()).await;
    s.wait_for(Duration::from_secs(10), "a round", || async {
        (s.server("evil.test").await["status"] == "green").then_some(())
    })
    .await;
    for (page, cell) in [("/", ".software"), ("/server/evil.test", "#software")] {
        let (_, body) = s.text(page).await;
        let doc = Html::parse_document(&body);
        let scripts: Vec<_> = doc.select(&Selector::parse("script").unwrap()).collect();
        assert!(
            scripts.iter().all(|s| matches!(
                s.value().attr("src"),
                Some("/static/ping.js" | "/static/time.js")
            ) && s.text().next().is_none()),
            "{page}: a script element that is not mxping's own"
        );
        assert!(
            doc.select(&Selector::parse("img").unwrap())
                .next()
                .is_none(),
            "{page}: an injected element"
        );
        let text: String = doc
            .select(&Selector::parse(cell).unwrap())
            .next()
            .unwrap()
            .text()
            .collect();
        assert!(
            text.contains("<script>window.pwned=1</script>"),
            "{page}: shown as text: {text}"
        );
        assert!(
            text.contains("<img src=x onerror=alert(1)>\"'&"),
            "{page}: {text}"
        );
        assert!(
            !body.contains('\u{1b}') && !body.contains('\u{7}'),
            "{page}: control characters removed"
        );
    }
    let api = s.server("evil.test").await;
    let shown = api["software"]["name"].as_str().unwrap();
    assert!(
        shown.chars().count() <= 129,
        "capped: {} chars",
        shown.chars().count()
    );
    let metrics = s.text("/metrics").await.1;
    let info = metrics
        .lines()
        .find(|l| l.starts_with("mxping_server_info{"))
        .unwrap();
    let software = info
        .split("software=\"")
        .nth(1)
        .unwrap()
        .split("\",")
        .next()
        .unwrap();
    assert!(software.chars().count() <= 65, "label capped: {software}");
    assert!(!info.contains('\u{1b}'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_to_the_web_app_makes_the_monitor_contact_a_host() {
    let mut h = Harness::new().await;
    h.extra = "[monitor]\ninterval = \"1s\"\ntimeout = \"800ms\"\n".into();
    h.servers = vec!["known.test".into()];
    let s = Serve::start(&h.config_file()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for path in [
        "/server/visitor.test",
        "/api/v1/servers/visitor.test",
        "/server/visitor.test:8448",
        "/api/v1/servers/%5B::1%5D",
        "/?server=visitor.test",
        "/check/visitor.test",
        "/metrics?target=visitor.test",
    ] {
        let (code, _) = s.text(path).await;
        assert!(code == 404 || code == 200, "{path}: {code}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked: Vec<_> = h
        .dns
        .queries()
        .into_iter()
        .filter(|(n, _)| n.contains("visitor"))
        .collect();
    assert!(
        asked.is_empty(),
        "the monitor looked up a visitor-supplied name: {asked:?}"
    );
}

/// Issue 11: every path that makes a connection — federation probe, server well-known and its
/// redirects, client well-known and its redirects, `base_url`, `/versions`, the identity
/// server — meets the guard where the socket is connected, IP literal or not. A tripwire
/// outside `[network] allow` fails the test if anything reaches it.
#[tokio::test]
async fn no_path_reaches_an_address_outside_allow() {
    let mut h = Harness::new().await;
    let trip = Tripwire::claim();
    let t = trip.ip;
    let mut origin = h.host("origin.test");
    let mut api = h.host("api.test");
    h.allow_only = vec![origin.ip, api.ip];
    let (tr, tr2) = (t.to_string(), t.to_string());
    // origin.test: its server well-known redirects to the tripwire; its client well-known
    // names the tripwire as base_url (plain http on a high port: an internal service), and
    // its federation is on api.test.
    h.serve(
        &mut origin,
        443,
        h.ca.leaf(&["origin.test"]),
        handler(move |s| match s.path.as_str() {
            "/.well-known/matrix/server" => {
                Reply::redirect(302, &format!("https://{tr}/.well-known/matrix/server"))
            }
            "/.well-known/matrix/client" => {
                Reply::json(json!({"m.homeserver": {"base_url": format!("http://{tr}:8080")}}))
            }
            _ => Reply::not_found(),
        }),
    );
    // api.test: its client well-known redirects to the tripwire, and names an identity server
    // on the tripwire; its /versions redirects there too.
    h.serve(
        &mut api,
        443,
        h.ca.leaf(&["api.test"]),
        handler(move |s| match s.path.as_str() {
            "/.well-known/matrix/client" => Reply::json(json!({
                "m.homeserver": {"base_url": "https://api.test"},
                "m.identity_server": {"base_url": format!("https://{tr2}")},
            })),
            "/_matrix/client/versions" => {
                Reply::redirect(307, &format!("https://{tr2}/_matrix/client/versions"))
            }
            _ => Reply::not_found(),
        }),
    );
    let services = h.services();

    let round = services.round("origin.test").await;
    let wk = &round.resolution.well_known;
    assert_eq!(wk.error_kind, Some(ErrorKind::BlockedAddress), "{wk:?}");
    let c = round.client.unwrap();
    assert!(!c.ok);
    assert!(
        c.error
            .as_deref()
            .unwrap()
            .contains("mxping does not contact such addresses"),
        "base_url on an IP literal is guarded: {:?}",
        c.error
    );

    let round = services.round("api.test").await;
    let c = round.client.unwrap();
    assert!(
        c.error
            .as_deref()
            .unwrap()
            .contains("mxping does not contact such addresses"),
        "a /versions redirect to an IP literal is guarded: {:?}",
        c.error
    );

    // The monitored name is itself an IP literal outside allow: federation is blocked, and
    // no other check (client API) contacts it either.
    let round = services.round(&format!("{t}:8448")).await;
    assert_eq!(
        round.resolution.error.as_ref().unwrap().kind,
        ErrorKind::BlockedAddress
    );
    assert!(
        round.client.is_none(),
        "no client-API check for a blocked server"
    );
    assert!(round.addresses.iter().all(|a| !a.ok));
    let round = services.round(&t.to_string()).await;
    assert!(round.client.is_none());

    // A well-known that delegates to the tripwire.
    let mut deleg = h.host("deleg.test");
    h.allow_only.push(deleg.ip);
    let services = h.services();
    h.serve(
        &mut deleg,
        443,
        h.ca.leaf(&["deleg.test"]),
        well_known(json!({"m.server": format!("{t}:443")})),
    );
    let round = services.round("deleg.test").await;
    assert_eq!(
        round.resolution.error.as_ref().unwrap().kind,
        ErrorKind::BlockedAddress
    );
    trip.assert_untouched("every path").await;
}

/// Names of digits and dots that are not four 1–3 digit decimals (decimal, octal and hex
/// spellings of 127.0.0.1) are DNS names by the grammar. Discovery never makes them an
/// address, and no path — the server well-known, the client well-known — reads them as IPv4
/// addresses (as a URL parser would: `2130706433` is 127.0.0.1 to WHATWG).
#[tokio::test]
async fn digit_names_are_looked_up_and_never_fetched_as_addresses() {
    let mut h = Harness::new().await;
    // Not even loopback is allowed: 127.0.0.1 would only be reached by misreading the name.
    let placeholder = TestHost::claim();
    h.allow_only = vec![placeholder.ip];
    let trip = Tripwire::at(std::net::Ipv4Addr::LOCALHOST, &[443, 8448]);
    let services = h.services();
    for name in [
        "2130706433",
        "0177.0.0.1",
        "0x7f.0.0.1",
        "127.1",
        "017700000001",
    ] {
        let round = services.round(name).await;
        let r = &round.resolution;
        assert_ne!(r.method, Some(mxping::testing::Method::IpLiteral), "{name}");
        assert!(
            r.targets.is_empty(),
            "{name} must never become an address: {:?}",
            r.targets
        );
        assert_eq!(
            r.error.as_ref().unwrap().kind,
            ErrorKind::NoAddress,
            "{name}"
        );
        let wk = &r.well_known;
        assert_eq!(
            wk.url.as_deref(),
            Some(format!("https://{name}/.well-known/matrix/server").as_str())
        );
        assert_eq!(wk.error_kind, Some(ErrorKind::NoAddress), "{name}: {wk:?}");
        assert!(
            h.dns.asked(name, RecordType::A),
            "{name} is looked up in DNS"
        );
        let c = round.client.unwrap();
        assert!(
            c.error
                .as_deref()
                .unwrap()
                .contains("has no A or AAAA record"),
            "{name}: the client well-known looks the name up too: {:?}",
            c.error
        );
    }
    trip.assert_untouched("digit names").await;
}
