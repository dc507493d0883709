//! The client API, discovered the way Matrix clients do it, on loopback.

use mxping::testing::ClientDiscovery as Discovery;
use serde_json::json;

use crate::support::https::handler;
use crate::support::*;

const CLIENT_WK: &str = "/.well-known/matrix/client";
const VERSIONS: &str = "/_matrix/client/versions";

fn versions() -> Reply {
    Reply::json(json!({"versions": ["v1.1", "v1.11", "v1.12"], "unstable_features": {"org.matrix.msc3575": true}}))
        .header("access-control-allow-origin", "*")
}

#[tokio::test]
async fn well_known_then_versions() {
    let mut h = Harness::new().await;
    let mut origin = h.host("example.test");
    let mut client = h.host("client.example.test");
    h.serve(
        &mut origin,
        443,
        h.ca.leaf(&["example.test"]),
        handler(|s| match s.path.as_str() {
            CLIENT_WK => {
                Reply::json(json!({"m.homeserver": {"base_url": "https://client.example.test/"}}))
            }
            _ => Reply::not_found(),
        }),
    );
    let api = h.serve(
        &mut client,
        443,
        h.ca.leaf(&["client.example.test"]),
        handler(|s| match s.path.as_str() {
            VERSIONS => versions(),
            _ => Reply::not_found(),
        }),
    );
    let round = h.services().round("example.test").await;
    let c = round.client.clone().unwrap();
    assert_eq!(c.discovery, Discovery::Found);
    assert_eq!(c.base_url.as_deref(), Some("https://client.example.test/"));
    assert!(c.ok, "{:?}", c.error);
    assert_eq!(c.versions, ["v1.1", "v1.11", "v1.12"]);
    assert!(c.latency_ms.unwrap() > 0.0);
    assert_eq!(api.hits(VERSIONS).len(), 2, "a cold and a warm request");
    // Federation is down (nothing on :8448) while the client API works: reported separately.
    assert!(!round.any_ok());
}

#[tokio::test]
async fn outcomes_of_the_spec_table() {
    let cases: Vec<(Reply, Option<Reply>, Discovery, &str)> = vec![
        (Reply::not_found(), Some(versions()), Discovery::Ignore, ""),
        (
            Reply::status(500, "oops"),
            None,
            Discovery::FailPrompt,
            "HTTP 500",
        ),
        (
            Reply::status(200, "<html>"),
            None,
            Discovery::FailPrompt,
            "not JSON",
        ),
        (
            Reply::json(json!({"m.homeserver": {}})),
            None,
            Discovery::FailPrompt,
            "base_url is missing",
        ),
        (
            Reply::json(json!({"m.homeserver": {"base_url": "no url"}})),
            None,
            Discovery::FailError,
            "not an http(s) URL",
        ),
        (
            Reply::not_found(),
            Some(Reply::status(502, "bad gateway")),
            Discovery::FailError,
            "HTTP 502",
        ),
        (
            Reply::not_found(),
            Some(Reply::json(json!({"v": 1}))),
            Discovery::FailError,
            "\"versions\" is missing",
        ),
    ];
    for (wk, api, outcome, needle) in cases {
        let mut h = Harness::new().await;
        let mut origin = h.host("example.test");
        h.serve(
            &mut origin,
            443,
            h.ca.leaf(&["example.test"]),
            handler(move |s| match s.path.as_str() {
                CLIENT_WK => wk.clone(),
                VERSIONS => api.clone().unwrap_or_else(Reply::not_found),
                _ => Reply::not_found(),
            }),
        );
        let c = h.services().round("example.test").await.client.unwrap();
        assert_eq!(c.discovery, outcome, "{c:?}");
        assert_eq!(c.ok, outcome == Discovery::Ignore, "{c:?}");
        if !needle.is_empty() {
            assert!(c.error.as_deref().unwrap().contains(needle), "{c:?}");
        }
    }
}

/// Issue 11 item 2: the client well-known and `/versions` follow 30x redirects, as the spec
/// says they SHOULD and browsers and SDKs do — bounded, loops refused, HTTPS only.
#[tokio::test]
async fn redirects_are_followed_like_clients_do() {
    let mut h = Harness::new().await;
    let mut origin = h.host("example.test");
    let mut www = h.host("www.example.test");
    let mut api = h.host("api.example.test");
    h.serve(
        &mut origin,
        443,
        h.ca.leaf(&["example.test"]),
        handler(|s| match s.path.as_str() {
            CLIENT_WK => Reply::redirect(301, "https://www.example.test/.well-known/matrix/client"),
            _ => Reply::not_found(),
        }),
    );
    h.serve(
        &mut www,
        443,
        h.ca.leaf(&["www.example.test"]),
        handler(|s| match s.path.as_str() {
            CLIENT_WK => {
                Reply::json(json!({"m.homeserver": {"base_url": "https://api.example.test"}}))
            }
            _ => Reply::not_found(),
        }),
    );
    let server = h.serve(
        &mut api,
        443,
        h.ca.leaf(&["api.example.test"]),
        handler(|s| match s.path.as_str() {
            VERSIONS => Reply::redirect(308, "/v2/_matrix/client/versions"),
            "/v2/_matrix/client/versions" => versions(),
            _ => Reply::not_found(),
        }),
    );
    let c = h.services().round("example.test").await.client.unwrap();
    assert_eq!(c.discovery, Discovery::Found, "{c:?}");
    assert!(c.ok, "{c:?}");
    assert_eq!(c.base_url.as_deref(), Some("https://api.example.test"));
    assert_eq!(c.versions, ["v1.1", "v1.11", "v1.12"]);
    assert_eq!(
        c.redirects,
        [
            "https://www.example.test/.well-known/matrix/client",
            "https://api.example.test/v2/_matrix/client/versions"
        ]
    );
    // The warm request goes straight to where the first one ended, on the same connection.
    assert_eq!(server.hits(VERSIONS).len(), 1);
    assert_eq!(server.hits("/v2/_matrix/client/versions").len(), 2);
    assert!(c.latency_ms.is_some());

    // Loops and downgrades to plain HTTP end with the spec's outcome and a clear reason.
    for (location, needle) in [
        (
            "https://example.test/.well-known/matrix/client",
            "redirect loop",
        ),
        ("http://example.test/.well-known/matrix/client", "not HTTPS"),
    ] {
        let mut h = Harness::new().await;
        let mut origin = h.host("example.test");
        let location = location.to_owned();
        h.serve(
            &mut origin,
            443,
            h.ca.leaf(&["example.test"]),
            handler(move |_| Reply::redirect(302, &location)),
        );
        let c = h.services().round("example.test").await.client.unwrap();
        assert_eq!(c.discovery, Discovery::FailPrompt, "{c:?}");
        assert!(c.error.as_deref().unwrap().contains(needle), "{c:?}");
    }
}

/// Issue 11 item 3: `m.identity_server` per the spec's discovery table: present without
/// `base_url` → FAIL_PROMPT; its `/_matrix/identity/v2` not answering → FAIL_ERROR; answering
/// → FOUND with the identity server shown.
#[tokio::test]
async fn identity_server_is_validated_as_the_spec_says() {
    for (identity, is_answer, outcome, needle) in [
        (json!({}), None, Discovery::FailPrompt, "has no base_url"),
        (
            json!({"base_url": "https://id.example.test"}),
            Some(Reply::status(500, "down")),
            Discovery::FailError,
            "HTTP 500",
        ),
        (
            json!({"base_url": "https://id.example.test"}),
            Some(Reply::json(json!({}))),
            Discovery::Found,
            "",
        ),
    ] {
        let mut h = Harness::new().await;
        let mut origin = h.host("example.test");
        let mut id = h.host("id.example.test");
        h.serve(
            &mut origin,
            443,
            h.ca.leaf(&["example.test"]),
            handler(move |s| match s.path.as_str() {
                CLIENT_WK => Reply::json(json!({
                    "m.homeserver": {"base_url": "https://example.test"},
                    "m.identity_server": identity,
                })),
                VERSIONS => versions(),
                _ => Reply::not_found(),
            }),
        );
        let is = h.serve(
            &mut id,
            443,
            h.ca.leaf(&["id.example.test"]),
            handler(move |s| match (s.path.as_str(), &is_answer) {
                ("/_matrix/identity/v2", Some(r)) => r.clone(),
                _ => Reply::not_found(),
            }),
        );
        let c = h.services().round("example.test").await.client.unwrap();
        assert_eq!(c.discovery, outcome, "{c:?}");
        assert_eq!(
            c.versions,
            ["v1.1", "v1.11", "v1.12"],
            "the homeserver itself is fine"
        );
        if needle.is_empty() {
            assert!(c.error.is_none(), "{c:?}");
            let found = c.identity_server.unwrap();
            assert!(found.ok);
            assert_eq!(found.base_url, "https://id.example.test");
            assert_eq!(is.hits("/_matrix/identity/v2").len(), 1);
        } else {
            assert!(c.error.as_deref().unwrap().contains(needle), "{c:?}");
        }
    }
}
