//! The client API, discovered the way Matrix clients do it, on loopback.

use mxping::client_api::Discovery;
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
