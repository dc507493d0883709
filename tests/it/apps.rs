//! Which app works there, on the wire: stand-ins on loopback answering as Synapse does, and
//! each breaking one thing an app needs (no CORS on the well-known, a preflight answered 405,
//! no authenticated media, no sliding sync, next-generation auth only on the unstable paths),
//! checked by the real sign-up checker; then the page, the API and the metrics of a running
//! monitor, in both languages.

use std::sync::Arc;
use std::time::Duration;

use mxping::testing::{Newcomer, SignupStatus};
use scraper::{Html, Selector};
use serde_json::{Value, json};

use crate::support::https::handler;
use crate::support::serve::Serve;
use crate::support::*;

const CLIENT_WK: &str = "/.well-known/matrix/client";
const VERSIONS: &str = "/_matrix/client/versions";
const LOGIN: &str = "/_matrix/client/v3/login";
const REGISTER: &str = "/_matrix/client/v3/register";
const MEDIA_CONFIG: &str = "/_matrix/client/v1/media/config";
const METADATA: &str = "/_matrix/client/v1/auth_metadata";
const UNSTABLE_METADATA: &str = "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata";

/// How a stand-in differs from Synapse.
#[derive(Clone, Default)]
struct Breaks {
    /// No CORS headers on the client well-known.
    well_known_cors: bool,
    /// The preflight answered 405 (a reverse proxy that does not know OPTIONS).
    preflight_405: bool,
    /// `/v1/media/config` unknown (404 `M_UNRECOGNIZED`).
    no_media: bool,
    /// No simplified sliding sync in `unstable_features`.
    no_sliding_sync: bool,
    /// Login only through next-generation auth, advertised only on the unstable path.
    unstable_oauth_only: bool,
}

fn cors(reply: Reply) -> Reply {
    reply.header("access-control-allow-origin", "*")
}

/// A homeserver answering as Synapse does (CORS on every `/_matrix` answer and the client
/// well-known, 204 to a preflight, authenticated media, simplified sliding sync, password
/// login, registration disabled), except for `breaks`.
fn stand_in(breaks: Breaks) -> crate::support::https::Handler {
    handler(move |s| {
        let b = &breaks;
        if s.method == "OPTIONS" {
            if b.preflight_405 {
                return Reply::status(405, "Method Not Allowed");
            }
            return cors(Reply::status(204, ""))
                .header(
                    "access-control-allow-methods",
                    "GET, HEAD, POST, PUT, DELETE, OPTIONS",
                )
                .header(
                    "access-control-allow-headers",
                    "X-Requested-With, Content-Type, Authorization, Date",
                );
        }
        let unrecognized = || {
            cors(Reply::status(
                404,
                json!({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}).to_string(),
            ))
        };
        match s.path.as_str() {
            CLIENT_WK => {
                let host = s.host.clone().unwrap_or_default();
                let wk =
                    Reply::json(json!({"m.homeserver": {"base_url": format!("https://{host}")}}));
                if b.well_known_cors { wk } else { cors(wk) }
            }
            VERSIONS => {
                let mut features = json!({"org.matrix.msc3916.stable": true});
                if !b.no_sliding_sync {
                    features["org.matrix.simplified_msc3575"] = json!(true);
                }
                cors(Reply::json(json!({
                    "versions": ["r0.6.1", "v1.1", "v1.9", "v1.11", "v1.12"],
                    "unstable_features": features
                })))
            }
            MEDIA_CONFIG if b.no_media => unrecognized(),
            MEDIA_CONFIG => cors(Reply::status(
                401,
                json!({"errcode": "M_MISSING_TOKEN", "error": "Missing access token"}).to_string(),
            )),
            LOGIN if b.unstable_oauth_only => cors(Reply::json(
                json!({"flows": [{"type": "m.login.sso", "delegated_oidc_compatibility": true}, {"type": "m.login.token"}]}),
            )),
            LOGIN => cors(Reply::json(
                json!({"flows": [{"type": "m.login.password"}, {"type": "m.login.token"}]}),
            )),
            REGISTER if b.unstable_oauth_only => unrecognized(),
            REGISTER => cors(Reply::status(
                403,
                json!({"errcode": "M_FORBIDDEN", "error": "Registration has been disabled"})
                    .to_string(),
            )),
            UNSTABLE_METADATA if b.unstable_oauth_only => cors(Reply::json(json!({
                "issuer": "https://auth.unstable.test/",
                "authorization_endpoint": "https://auth.unstable.test/authorize",
                "prompt_values_supported": ["create"]
            }))),
            // Not on the stable path (the stand-in for a server that is behind on MSC2965).
            METADATA => unrecognized(),
            _ => unrecognized(),
        }
    })
}

/// The stand-ins: name → what it breaks.
fn stand_ins() -> Vec<(&'static str, Breaks)> {
    let one = |set: fn(&mut Breaks)| {
        let mut b = Breaks::default();
        set(&mut b);
        b
    };
    vec![
        ("synapse-like.test", Breaks::default()),
        ("nocors.test", one(|b| b.well_known_cors = true)),
        ("preflight.test", one(|b| b.preflight_405 = true)),
        ("nomedia.test", one(|b| b.no_media = true)),
        ("nosliding.test", one(|b| b.no_sliding_sync = true)),
        ("unstable.test", one(|b| b.unstable_oauth_only = true)),
    ]
}

/// A harness serving every stand-in on 443 of its own address, and the requests each saw.
async fn harness() -> (Harness, Vec<Arc<HttpsServer>>) {
    let mut h = Harness::new().await;
    let mut servers = Vec::new();
    for (name, breaks) in stand_ins() {
        let mut host = h.host(name);
        let leaf = h.ca.leaf(&[name]);
        servers.push(h.serve(&mut host, 443, leaf, stand_in(breaks)));
    }
    h.servers = stand_ins().iter().map(|(n, _)| (*n).to_owned()).collect();
    (h, servers)
}

/// `mxping serve` over every stand-in, once each has had its apps checked.
async fn serving() -> (Harness, Vec<Arc<HttpsServer>>, Serve) {
    let (mut h, servers) = harness().await;
    h.extra = "[monitor]\ninterval = \"3s\"\ntimeout = \"2s\"\ncheck_keys = false\n".into();
    let s = Serve::start(&h.config_file()).await;
    s.wait_for(Duration::from_secs(20), "every app check", || async {
        for (name, _) in stand_ins() {
            if s.server(name).await["clients"].is_null() {
                return None;
            }
        }
        Some(())
    })
    .await;
    (h, servers, s)
}

async fn check(h: &Harness, name: &str) -> Newcomer {
    let services = h.services();
    let checker = services.signup.as_ref().expect("sign-up checks are on");
    checker.check(&name.parse().unwrap()).await
}

/// Each app's verdict as (app, works), in the contract's order.
fn works(n: &Newcomer) -> Vec<(String, String)> {
    let v = serde_json::to_value(&n.clients).unwrap();
    [
        "element_web",
        "cinny",
        "element_x",
        "element_mobile",
        "fluffychat",
    ]
    .iter()
    .map(|a| {
        (
            (*a).to_owned(),
            v["apps"][a]["works"].as_str().unwrap().to_owned(),
        )
    })
    .collect()
}

fn expect(list: [&str; 5]) -> Vec<(String, String)> {
    [
        "element_web",
        "cinny",
        "element_x",
        "element_mobile",
        "fluffychat",
    ]
    .iter()
    .zip(list)
    .map(|(a, w)| ((*a).to_owned(), w.to_owned()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_app_verdict_is_right_for_synapse_like_answers_and_every_stand_in() {
    let (h, servers) = harness().await;
    let names: Vec<&str> = stand_ins().iter().map(|(n, _)| *n).collect();
    let checks = futures_util::future::join_all(names.iter().map(|n| check(&h, n))).await;
    let by = |name: &str| &checks[names.iter().position(|n| *n == name).unwrap()];

    // As Synapse answers: everything there, every app works.
    let good = by("synapse-like.test");
    let v = serde_json::to_value(&good.clients).unwrap();
    assert_eq!(v["spec_version"], "v1.12", "{v}");
    assert_eq!(v["sliding_sync"], true);
    assert_eq!(v["cors"], json!({"well_known": true, "client_api": true}));
    assert_eq!(v["authenticated_media"], true);
    assert_eq!(v["login"], json!(["password"]));
    assert!(v["checked_at"].as_str().unwrap().ends_with('Z'));
    assert!(v.get("notes").is_none(), "nothing failed: {v}");
    assert_eq!(works(good), expect(["yes"; 5]));
    assert_eq!(v["apps"]["element_x"]["reason"], Value::Null);
    assert_eq!(good.signup.status, SignupStatus::Closed);

    // The browser saw what a browser sends: the origin on the well-known and /versions, and a
    // preflight for an authenticated POST.
    let seen = servers[0].seen();
    let preflight = seen
        .iter()
        .find(|r| r.method == "OPTIONS")
        .expect("a preflight");
    assert_eq!(preflight.path, LOGIN);
    assert_eq!(preflight.header("origin"), Some("https://app.element.io"));
    assert_eq!(
        preflight.header("access-control-request-method"),
        Some("POST")
    );
    assert_eq!(
        preflight.header("access-control-request-headers"),
        Some("authorization,content-type")
    );
    for path in [CLIENT_WK, VERSIONS] {
        assert!(
            seen.iter()
                .any(|r| r.path == path && r.header("origin") == Some("https://app.element.io")),
            "{path} asked with an Origin"
        );
    }
    let media = seen
        .iter()
        .find(|r| r.path == MEDIA_CONFIG)
        .expect("media config asked");
    assert_eq!(media.header("authorization"), None, "never with a token");

    // No CORS on the well-known: the browser apps cannot find the server; phones can.
    let n = by("nocors.test");
    assert_eq!(works(n), expect(["no", "no", "yes", "yes", "yes"]));
    let v = serde_json::to_value(&n.clients).unwrap();
    assert_eq!(v["cors"], json!({"well_known": false, "client_api": true}));
    assert_eq!(
        v["apps"]["element_web"]["missing"],
        json!(["cors_well_known"])
    );
    assert!(
        v["apps"]["cinny"]["reason"]
            .as_str()
            .unwrap()
            .contains("/.well-known/matrix/client"),
        "{v}"
    );
    assert!(
        v["notes"][0]["said"]
            .as_str()
            .unwrap()
            .contains("no Access-Control-Allow-Origin"),
        "{v}"
    );

    // A preflight answered 405: browser apps cannot call the client API.
    let n = by("preflight.test");
    assert_eq!(works(n), expect(["no", "no", "yes", "yes", "yes"]));
    let v = serde_json::to_value(&n.clients).unwrap();
    assert_eq!(v["cors"], json!({"well_known": true, "client_api": false}));
    assert!(
        v["notes"][0]["said"]
            .as_str()
            .unwrap()
            .ends_with("HTTP 405"),
        "{v}"
    );

    // No authenticated media: every app works, but images do not load.
    let n = by("nomedia.test");
    assert_eq!(works(n), expect(["partly"; 5]));
    let v = serde_json::to_value(&n.clients).unwrap();
    assert_eq!(v["authenticated_media"], false);
    assert_eq!(
        v["apps"]["fluffychat"]["reason"],
        "images will not load: no authenticated media"
    );

    // No sliding sync: Element X does not work, the others do.
    let n = by("nosliding.test");
    assert_eq!(works(n), expect(["yes", "yes", "no", "yes", "yes"]));
    assert_eq!(n.clients.sliding_sync, Some(false));

    // Next-generation auth only on the unstable path: found (sign-up on the issuer's page,
    // not "closed"), and Element X can sign in.
    let n = by("unstable.test");
    assert_eq!(works(n), expect(["yes"; 5]));
    let v = serde_json::to_value(&n.clients).unwrap();
    assert_eq!(v["login"], json!(["sso", "oauth"]));
    assert_eq!(v["auth_metadata"], "unstable");
    assert_eq!(n.signup.status, SignupStatus::External, "{:?}", n.signup);
    assert_eq!(
        n.signup.issuer.as_deref(),
        Some("https://auth.unstable.test/")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_client_api_works_with_no_app_and_says_why() {
    let mut h = Harness::new().await;
    let mut host = h.host("noclient.test");
    let leaf = h.ca.leaf(&["noclient.test"]);
    h.serve(
        &mut host,
        443,
        leaf,
        handler(|_| Reply::status(502, "Bad Gateway")),
    );
    let n = check(&h, "noclient.test").await;
    assert_eq!(works(&n), expect(["no"; 5]));
    let v = serde_json::to_value(&n.clients).unwrap();
    assert_eq!(v["apps"]["fluffychat"]["missing"], json!(["client_api"]));
    assert!(
        v["notes"][0]["said"].as_str().unwrap().contains("502"),
        "{v}"
    );
    assert_eq!(v["sliding_sync"], Value::Null, "not measured");
}

/// What the hostile answers a browser check meets stay bounded: a well-known that never ends
/// and a preflight that hangs make the check give up within its budget, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_preflight_is_bounded_by_the_checks_budget() {
    let mut h = Harness::new().await;
    h.extra = "[monitor]\ntimeout = \"1s\"\n".into();
    let mut host = h.host("slow.test");
    let leaf = h.ca.leaf(&["slow.test"]);
    let inner = stand_in(Breaks::default());
    let slow = handler(move |s| {
        if s.method == "OPTIONS" {
            Reply::status(204, "").delay(Duration::from_secs(30))
        } else {
            (inner)(s)
        }
    });
    h.serve(&mut host, 443, leaf, slow);
    let started = std::time::Instant::now();
    let n = check(&h, "slow.test").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(works(&n), expect(["no"; 5]));
    assert!(
        n.clients.notes[0].said.contains("did not finish within 1s"),
        "{:?}",
        n.clients.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_shows_apps_in_the_api_metrics_page_and_filter_in_both_languages() {
    let (_h, _servers, s) = serving().await;
    let v = s.server("nosliding.test").await;
    assert_eq!(v["clients"]["apps"]["element_x"]["works"], "no", "{v}");
    assert_eq!(v["clients"]["sliding_sync"], false);

    let (_, metrics) = s.text("/metrics").await;
    for line in [
        r#"mxping_client_feature{server="nosliding.test",feature="sliding_sync"} 0"#,
        r#"mxping_client_feature{server="synapse-like.test",feature="sliding_sync"} 1"#,
        r#"mxping_client_feature{server="nocors.test",feature="cors_well_known"} 0"#,
        r#"mxping_client_feature{server="preflight.test",feature="cors_client_api"} 0"#,
        r#"mxping_client_feature{server="nomedia.test",feature="authenticated_media"} 0"#,
        r#"mxping_client_feature{server="unstable.test",feature="next_generation_auth"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let per_server = metrics
        .lines()
        .filter(|l| l.starts_with("mxping_client_feature{server=\"synapse-like.test\""))
        .count();
    assert_eq!(per_server, 5, "at most five series per server");

    // The API filters as the page does; an app it does not know is a 400 naming the apps.
    let names = |v: Value| -> Vec<String> {
        v["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(s.json("/api/v1/servers?app=element_x").await),
        [
            "synapse-like.test",
            "nocors.test",
            "preflight.test",
            "nomedia.test",
            "unstable.test"
        ]
    );
    assert_eq!(
        names(s.json("/api/v1/servers?app=element_web").await),
        [
            "synapse-like.test",
            "nomedia.test",
            "nosliding.test",
            "unstable.test"
        ]
    );
    let (status, body) = s.text("/api/v1/servers?app=nheko").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("element_x") && body.contains("nheko"),
        "{body}"
    );
    // Registration is closed on every stand-in but unstable.test (sign-up on the issuer's page).
    assert_eq!(
        names(s.json("/api/v1/servers?join=true").await),
        ["unstable.test"]
    );

    // The public list: sliding sync as measured.
    let list = s.json("/api/v1/public_servers.json?all=true").await;
    let entry = |name: &str| {
        list["public_servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(entry("synapse-like.test")["sliding_sync"], true);
    assert_eq!(entry("nosliding.test")["sliding_sync"], false);
    // Registration disabled: not a sign-up method a reader's sign-up list would keep.
    assert_eq!(entry("synapse-like.test")["reg_method"], Value::Null);
    assert_eq!(entry("unstable.test")["reg_method"], "SSO");

    let select = |doc: &Html, css: &str| -> Vec<String> {
        doc.select(&Selector::parse(css).unwrap())
            .map(|e| e.text().collect::<String>())
            .collect()
    };
    for (lang, works, element_x, partly_images) in [
        (
            "en",
            "works",
            "works with Element X",
            "images will not load",
        ),
        ("zh", "能用", "能用 Element X 的服务器", "图片无法显示"),
    ] {
        let (_, body) = s.text(&format!("/?lang={lang}")).await;
        let doc = Html::parse_document(&body);
        let row = |name: &str| format!(r#"tr.server[data-server="{name}"] td.apps li"#);
        let good = select(&doc, &row("synapse-like.test"));
        assert_eq!(good.len(), 5, "{lang}: {good:?}");
        assert!(
            good.iter().all(|x| x.starts_with('✓') && x.contains(works)),
            "{lang}: {good:?}"
        );
        let nosliding = select(&doc, &row("nosliding.test"));
        assert!(
            nosliding[2].starts_with('✗') && nosliding[2].contains("Element X"),
            "{lang}: {nosliding:?}"
        );
        let nomedia = select(&doc, &row("nomedia.test"));
        assert!(
            nomedia
                .iter()
                .all(|x| x.starts_with('◐') && x.contains(partly_images)),
            "{lang}: {nomedia:?}"
        );
        // The filter keeps the servers Element X works on.
        assert!(body.contains(element_x), "{lang}: the filter is offered");
        let (_, body) = s.text(&format!("/?lang={lang}&filter=element_x")).await;
        let doc = Html::parse_document(&body);
        let kept: Vec<String> = doc
            .select(&Selector::parse("tr.server").unwrap())
            .map(|r| r.value().attr("data-server").unwrap().to_owned())
            .collect();
        assert_eq!(
            kept,
            [
                "synapse-like.test",
                "nocors.test",
                "preflight.test",
                "nomedia.test",
                "unstable.test"
            ],
            "{lang}"
        );
        assert_eq!(select(&doc, "p.filter-note").len(), 1);
    }
    // Every Chinese page with every verdict and every fix reads as Chinese.
    let names: std::collections::BTreeSet<String> =
        stand_ins().iter().map(|(n, _)| (*n).to_owned()).collect();
    let mut found = Vec::new();
    let mut pages = vec![
        "/?lang=zh".to_owned(),
        "/?lang=zh&filter=element_x".to_owned(),
    ];
    pages.extend(names.iter().map(|n| format!("/server/{n}?lang=zh")));
    for page in &pages {
        let (_, body) = s.text(page).await;
        found.extend(crate::chinese::problems(page, &body, &names));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    // The detail page: each app, each check, and what the operator should fix.
    for (lang, fix) in [
        ("en", "add CORS headers to /.well-known/matrix/client"),
        ("zh", "让 /.well-known/matrix/client 允许跨域访问"),
    ] {
        let (_, body) = s.text(&format!("/server/nocors.test?lang={lang}")).await;
        let doc = Html::parse_document(&body);
        assert_eq!(select(&doc, "table#apps tbody tr").len(), 5, "{lang}");
        assert_eq!(select(&doc, "table#apps tr.no").len(), 2, "{lang}");
        let fixes = select(&doc, "#app-fixes li");
        assert_eq!(fixes.len(), 1, "{lang}: {fixes:?}");
        assert!(fixes[0].starts_with(fix), "{lang}: {fixes:?}");
        let checks = select(&doc, "#app-checks dd.check.no");
        assert_eq!(checks.len(), 1, "{lang}: {checks:?}");
        assert!(
            checks[0].contains("no Access-Control-Allow-Origin"),
            "{lang}: the answer quoted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mxping_check_prints_each_app_and_the_json_has_clients() {
    let (h, _servers) = harness().await;
    let config = h.config_file();
    let run = |args: Vec<String>| async move {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
            .args(&args)
            .env("MXPING_LOG", "off")
            .output()
            .await
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "check",
            "nomedia.test",
            "--config",
            config.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let text = run(args(&[])).await;
    for expected in [
        "Apps (/versions, CORS from https://app.element.io, /v1/media/config, login)",
        "spec         v1.12",
        "sliding sync yes",
        "auth. media  no",
        "◐ element_x        partly: images will not load: no authenticated media",
        "note (images will not load: no authenticated media): https://nomedia.test/_matrix/client/v1/media/config without a token: HTTP 404 M_UNRECOGNIZED",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
    let json: Value = serde_json::from_str(&run(args(&["--json"])).await).unwrap();
    assert_eq!(json["clients"]["authenticated_media"], false, "{json}");
    assert_eq!(json["clients"]["apps"]["cinny"]["works"], "partly");
}

/// Screenshots of the "Works with" column and the detail page's "Apps" section in both
/// languages, for review (`artifacts/screenshots/apps-*.png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_of_the_apps_column_and_section_in_both_languages() {
    let (_h, _servers, s) = serving().await;
    let browser = crate::support::browser::Browser {
        size: Some((1280, 900)),
        no_script: true,
        ..Default::default()
    };
    for lang in ["en", "zh"] {
        for (page, path) in [
            ("index", "/?sort=name".to_owned()),
            ("detail", "/server/nocors.test".to_owned()),
        ] {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = s.url(&format!("{path}{sep}lang={lang}#apps"));
            let shot = browser
                .live_screenshot(
                    &url,
                    "true",
                    Duration::ZERO,
                    &format!("apps-{page}-{lang}.png"),
                )
                .await;
            assert!(
                std::fs::metadata(&shot).unwrap().len() > 10_000,
                "{}",
                shot.display()
            );
        }
    }
}
