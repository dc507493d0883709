//! Sign-up facts, asked of real HTTPS servers on loopback the way a client asks before showing
//! a sign-up form: every verdict from real answers, hostile answers, the private-address guard,
//! and that nothing but an empty `POST /register` is ever sent.

use std::time::{Duration, Instant};

use mxping::error::ErrorKind;
use mxping::testing::{Signup, SignupStatus};
use serde_json::{Value, json};

use crate::support::https::handler;
use crate::support::*;

const CLIENT_WK: &str = "/.well-known/matrix/client";
const SUPPORT_WK: &str = "/.well-known/matrix/support";
const REGISTER: &str = "/_matrix/client/v3/register";
const LOGIN: &str = "/_matrix/client/v3/login";
const METADATA: &str = "/_matrix/client/v1/auth_metadata";

fn unrecognized() -> Reply {
    Reply::status(
        404,
        json!({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}).to_string(),
    )
}

fn uia(flows: Value) -> Reply {
    Reply::status(
        401,
        json!({"flows": flows, "params": {}, "session": "abc"}).to_string(),
    )
}

async fn check(h: &Harness, name: &str) -> Signup {
    let services = h.services();
    let checker = services
        .signup
        .as_ref()
        .expect("sign-up checks are on by default");
    checker.check(&name.parse().unwrap()).await.signup
}

/// Serves `name` on 443 (a client API at `https://name`, no well-known) answering `/register`
/// with `register` and everything else with 404 `M_UNRECOGNIZED`.
fn serve_register(h: &mut Harness, name: &str, register: Reply) -> std::sync::Arc<HttpsServer> {
    let mut host = h.host(name);
    let leaf = h.ca.leaf(&[name]);
    h.serve(
        &mut host,
        443,
        leaf,
        handler(move |s| match s.path.as_str() {
            REGISTER => register.clone(),
            _ => Reply::not_found(),
        }),
    )
}

/// Waits until `mxping serve` shows `name`'s sign-up status as `status`; returns the server.
async fn signup_shown(s: &crate::support::serve::Serve, name: &str, status: &str) -> Value {
    s.wait_for(
        Duration::from_secs(10),
        &format!("{name}'s sign-up {status}"),
        || async {
            let v = s.server(name).await;
            (v["signup"]["status"] == status).then_some(v)
        },
    )
    .await
}

/// A server as Synapse answers with captcha, email and terms (and a token-only flow beside
/// them), SSO on `/login`, support contacts; the client API on another host.
#[tokio::test]
async fn a_synapse_like_server_with_email_captcha_terms_sso_and_support() {
    let mut h = Harness::new().await;
    let mut origin = h.host("example.test");
    let mut client = h.host("matrix.example.test");
    let origin_server = h.serve(
        &mut origin,
        443,
        h.ca.leaf(&["example.test"]),
        handler(|s| match s.path.as_str() {
            CLIENT_WK => {
                Reply::json(json!({"m.homeserver": {"base_url": "https://matrix.example.test"}}))
            }
            SUPPORT_WK => Reply::json(json!({
                "contacts": [{"matrix_id": "@admin:example.test", "role": "m.role.admin"},
                             {"email_address": "security@example.test", "role": "m.role.security"}],
                "support_page": "https://example.test/help"})),
            _ => Reply::not_found(),
        }),
    );
    let api = h.serve(
        &mut client,
        443,
        h.ca.leaf(&["matrix.example.test"]),
        handler(|s| match s.path.as_str() {
            REGISTER => Reply::status(401, json!({
                "flows": [{"stages": ["m.login.recaptcha", "m.login.terms", "m.login.email.identity"]},
                          {"stages": ["m.login.registration_token", "m.login.terms"]}],
                "params": {"m.login.recaptcha": {"public_key": "x"},
                           "m.login.terms": {"policies": {"privacy_policy": {"version": "1.0",
                               "en": {"name": "Privacy Policy", "url": "https://example.test/privacy"}}}}},
                "session": "abc"}).to_string()),
            LOGIN => Reply::json(json!({"flows": [
                {"type": "m.login.password"},
                {"type": "m.login.sso", "identity_providers": [{"id": "oidc-github", "name": "GitHub"}]},
                {"type": "m.login.token"}]})),
            METADATA => unrecognized(),
            _ => Reply::not_found(),
        }),
    );
    let s = check(&h, "example.test").await;
    assert_eq!(s.status, SignupStatus::RequiresVerification, "{s:?}");
    assert_eq!(
        s.stages,
        [
            "m.login.recaptcha",
            "m.login.terms",
            "m.login.email.identity",
            "m.login.registration_token"
        ]
    );
    assert_eq!(s.terms.len(), 1);
    assert_eq!(
        (s.terms[0].name.as_str(), s.terms[0].url.as_str()),
        ("Privacy Policy", "https://example.test/privacy")
    );
    assert_eq!(s.sso.len(), 1);
    assert_eq!(s.sso[0].name, "GitHub");
    assert_eq!(
        s.login,
        ["m.login.password", "m.login.sso", "m.login.token"]
    );
    assert_eq!(s.issuer, None);
    let support = s.support.as_ref().unwrap();
    assert_eq!(support.contacts.len(), 2);
    assert_eq!(support.page.as_deref(), Some("https://example.test/help"));
    assert_eq!(s.error, None);
    // Nothing was created: the only POST is an empty /register, with no auth (besides GETs
    // there is only the apps' CORS preflight, an OPTIONS).
    let posts: Vec<_> = api
        .seen()
        .into_iter()
        .chain(origin_server.seen())
        .filter(|r| r.method != "GET" && r.method != "OPTIONS")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(
        (posts[0].method.as_str(), posts[0].path.as_str()),
        ("POST", REGISTER)
    );
    assert_eq!(posts[0].body, b"{}");
    // The contract's JSON shape.
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["status"], "requires_verification");
    assert_eq!(v["terms"][0]["url"], "https://example.test/privacy");
    assert_eq!(v["sso"][0]["id"], "oidc-github");
    assert_eq!(
        v["support"]["contacts"][0]["matrix_id"],
        "@admin:example.test"
    );
    assert!(v["checked_at"].as_str().unwrap().ends_with('Z'));
    assert!(v["error"].is_null());
}

/// Every verdict, each from a server answering as the software that gives it does.
#[tokio::test]
async fn every_verdict_from_real_answers() {
    let mut h = Harness::new().await;
    let cases: Vec<(&str, Reply, Reply, Reply, SignupStatus)> = vec![
        // Synapse with enable_registration and no verification: a dummy flow.
        (
            "open.test",
            uia(json!([{"stages": ["m.login.dummy"]}])),
            Reply::json(json!({"flows": [{"type": "m.login.password"}]})),
            unrecognized(),
            SignupStatus::Open,
        ),
        // registration_requires_token.
        (
            "token.test",
            uia(json!([{"stages": ["m.login.registration_token", "m.login.dummy"]}])),
            Reply::json(json!({"flows": [{"type": "m.login.password"}]})),
            unrecognized(),
            SignupStatus::InviteOnly,
        ),
        // Registration disabled.
        (
            "closed.test",
            Reply::status(
                403,
                json!({"errcode": "M_FORBIDDEN", "error": "Registration has been disabled"})
                    .to_string(),
            ),
            Reply::json(json!({"flows": [{"type": "m.login.password"}]})),
            unrecognized(),
            SignupStatus::Closed,
        ),
        // Registration disabled, accounts made by signing in with SSO.
        (
            "sso.test",
            Reply::status(403, json!({"errcode": "M_FORBIDDEN"}).to_string()),
            Reply::json(
                json!({"flows": [{"type": "m.login.sso", "identity_providers": [{"id": "saml", "name": "University"}]}]}),
            ),
            unrecognized(),
            SignupStatus::External,
        ),
        // Next-generation auth (matrix-authentication-service): sign-up on the issuer's page.
        (
            "mas.test",
            unrecognized(),
            Reply::json(json!({"flows": [{"type": "m.login.sso"}]})),
            Reply::json(
                json!({"issuer": "https://auth.mas.test/", "authorization_endpoint": "https://auth.mas.test/authorize", "prompt_values_supported": ["create"]}),
            ),
            SignupStatus::External,
        ),
    ];
    for (name, ..) in &cases {
        let mut host = h.host(name);
        let case = cases.iter().find(|c| c.0 == *name).unwrap().clone();
        h.serve(
            &mut host,
            443,
            h.ca.leaf(&[name]),
            handler(move |s| match s.path.as_str() {
                REGISTER => case.1.clone(),
                LOGIN => case.2.clone(),
                METADATA => case.3.clone(),
                _ => Reply::not_found(),
            }),
        );
    }
    for (name, .., expected) in &cases {
        let s = check(&h, name).await;
        assert_eq!(s.status, *expected, "{name}: {s:?}");
        assert_eq!(s.error, None, "{name}");
    }
    let mas = check(&h, "mas.test").await;
    assert_eq!(mas.issuer.as_deref(), Some("https://auth.mas.test/"));
}

/// Hostile and broken answers give `unknown` with the reason, bounded in size and time; a
/// client well-known pointing at a private address is refused by the guard.
#[tokio::test]
async fn hostile_answers_are_unknown_with_a_reason_and_bounded() {
    let mut h = Harness::new().await;
    h.extra = "[monitor]\ntimeout = \"2s\"\n".to_owned();
    let trip = Tripwire::claim();
    let placeholder = h.host("guarded.test");
    let cases: Vec<(&str, Reply, ErrorKind, &str)> = vec![
        (
            "huge.test",
            Reply::status(401, vec![b' '; 200 * 1024]),
            ErrorKind::BodyTooLarge,
            "larger than 64 KiB",
        ),
        (
            "html.test",
            Reply::status(401, "<html><body>Unauthorized</body></html>"),
            ErrorKind::InvalidResponse,
            "without a JSON object",
        ),
        (
            "nonsense.test",
            uia(json!("everything")),
            ErrorKind::InvalidResponse,
            "\"flows\" list",
        ),
        (
            "proxy.test",
            Reply::status(502, "<html>Bad Gateway</html>"),
            ErrorKind::HttpStatus,
            "HTTP 502 without a Matrix error",
        ),
        (
            "stall.test",
            Reply::status(401, "{}").delay(Duration::from_secs(30)),
            ErrorKind::Timeout,
            "did not finish within 2s",
        ),
    ];
    let mut allowed = Vec::new();
    for (name, register, ..) in &cases {
        let server = serve_register(&mut h, name, register.clone());
        allowed.push(server.ip().unwrap());
    }
    // guarded.test names a base URL on an address outside [network] allow.
    let mut guarded = placeholder;
    let base = format!("https://{}:8448", trip.ip);
    h.serve(
        &mut guarded,
        443,
        h.ca.leaf(&["guarded.test"]),
        handler(move |s| match s.path.as_str() {
            CLIENT_WK => Reply::json(json!({"m.homeserver": {"base_url": base}})),
            _ => Reply::not_found(),
        }),
    );
    allowed.push(guarded.ip);
    h.allow_only = allowed;
    for (name, _, kind, says) in &cases {
        let started = Instant::now();
        let s = check(&h, name).await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{name} took {:?}",
            started.elapsed()
        );
        assert_eq!(s.status, SignupStatus::Unknown, "{name}");
        let e = s.error.unwrap_or_else(|| panic!("{name}: no reason"));
        assert_eq!(e.kind, *kind, "{name}: {}", e.message);
        assert!(e.message.contains(says), "{name}: {}", e.message);
    }
    let s = check(&h, "guarded.test").await;
    assert_eq!(s.status, SignupStatus::Unknown);
    assert_eq!(s.error.unwrap().kind, ErrorKind::BlockedAddress);
    trip.assert_untouched("the sign-up check").await;
}

/// `mxping serve`: sign-up checks run at start and every `[signup] interval` on their own
/// schedule, show in the JSON API and `/metrics`, and one that stalls delays no round.
#[tokio::test]
async fn serve_checks_sign_up_on_its_own_schedule_beside_the_rounds() {
    let mut h = Harness::new().await;
    h.extra =
        "[monitor]\ninterval = \"1s\"\nretry_interval = \"1s\"\ntimeout = \"900ms\"\npings = 1\n\
               [signup]\ninterval = \"2s\"\n"
            .to_owned();
    h.servers = vec![
        "open.test".into(),
        "stall.test".into(),
        "optout.test".into(),
    ];
    let open_server = serve_register(
        &mut h,
        "open.test",
        uia(json!([{"stages": ["m.login.dummy"]}])),
    );
    let mut open8448 = h.host("fed.open.test");
    h.dns
        .srv("_matrix-fed._tcp.open.test", 10, 0, 8448, "fed.open.test");
    h.homeserver(&mut open8448, 8448, "fed.open.test", "open.test");
    let stall = Reply::status(401, "{}").delay(Duration::from_secs(30));
    serve_register(&mut h, "stall.test", stall);
    // optout.test (the last [[server]]) turns its sign-up checks off.
    let optout_server = serve_register(
        &mut h,
        "optout.test",
        uia(json!([{"stages": ["m.login.dummy"]}])),
    );
    let config = h.config_file();
    let text = std::fs::read_to_string(&config).unwrap() + "check_signup = false\n";
    std::fs::write(&config, text).unwrap();
    let s = crate::support::serve::Serve::start(&config).await;
    let v = signup_shown(&s, "open.test", "open").await;
    assert_eq!(v["signup"]["stages"], json!(["m.login.dummy"]));
    let stalled = signup_shown(&s, "stall.test", "unknown").await;
    assert_eq!(stalled["signup"]["error"]["kind"], "timeout");
    let (_, metrics) = s.text("/metrics").await;
    assert!(
        metrics.contains("mxping_signup_info{server=\"open.test\",status=\"open\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mxping_signup_info{server=\"stall.test\",status=\"unknown\"} 1"));
    // Rounds of open.test went on every second while the other server's check stalled, and
    // the check is repeated every ~2 s (±10 %), not every round.
    let rounds_before = s.server("open.test").await["recent"]
        .as_array()
        .unwrap()
        .len();
    let checks_before = open_server.hits(REGISTER).len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rounds = s.server("open.test").await["recent"]
        .as_array()
        .unwrap()
        .len()
        - rounds_before;
    let checks = open_server.hits(REGISTER).len() - checks_before;
    assert!(
        (4..=6).contains(&rounds),
        "{rounds} rounds in 5 s at a 1 s interval"
    );
    assert!(
        (2..=3).contains(&checks),
        "{checks} sign-up checks in 5 s at a 2 s interval"
    );
    // The server that opted out was never asked, and shows no sign-up facts.
    assert!(optout_server.hits(REGISTER).is_empty());
    assert!(s.server("optout.test").await["signup"].is_null());
    assert!(!metrics.contains("mxping_signup_info{server=\"optout.test\""));
    // A reload that turns the checks off everywhere: no verdict is shown as current any more.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[monitor]\n", "[monitor]\ncheck_signup = false\n");
    std::fs::write(&config, text).unwrap();
    s.signal("HUP");
    s.wait_for(Duration::from_secs(10), "the verdict cleared", || async {
        s.server("open.test").await["signup"]
            .is_null()
            .then_some(())
    })
    .await;
    let (_, metrics) = s.text("/metrics").await;
    assert!(!metrics.contains("mxping_signup_info"), "{metrics}");
    let asked = open_server.hits(REGISTER).len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        open_server.hits(REGISTER).len(),
        asked,
        "no check after the reload"
    );
}

/// `[monitor] check_signup = false` turns the checks off everywhere.
#[tokio::test]
async fn sign_up_checks_can_be_turned_off_for_every_server() {
    let mut h = Harness::new().await;
    h.extra = "[monitor]\ntimeout = \"2s\"\ncheck_signup = false\n".to_owned();
    assert!(h.services().signup.is_none());
    assert!(!h.config().monitor.check_signup);
}

/// The status page's "Sign up" column in both languages, the "servers I can join now"
/// filter (plain links, no JavaScript), the detail page's facts (measured and from the
/// config), and the JSON API, from real checks of real servers.
#[tokio::test]
async fn pages_show_how_to_sign_up_in_both_languages_and_filter_joinable_servers() {
    use crate::support::web::Web;
    use scraper::{Html, Selector};

    let mut h = Harness::new().await;
    h.servers = vec![
        "closed.test".into(),
        "token.test".into(),
        "open.test".into(),
    ];
    let answers = [
        (
            "closed.test",
            Reply::status(403, json!({"errcode": "M_FORBIDDEN"}).to_string()),
        ),
        (
            "token.test",
            uia(json!([{"stages": ["m.login.registration_token"]}])),
        ),
        (
            "open.test",
            Reply::status(
                401,
                json!({
            "flows": [{"stages": ["m.login.terms", "m.login.dummy"]}],
            "params": {"m.login.terms": {"policies": {"rules": {"version": "2",
                "en": {"name": "Server rules", "url": "https://open.test/rules"}}}}}})
                .to_string(),
            ),
        ),
    ];
    for (name, register) in answers {
        let mut host = h.host(name);
        h.serve(
            &mut host,
            443,
            h.ca.leaf(&[name]),
            handler(move |s| match s.path.as_str() {
                REGISTER => register.clone(),
                // A client API the apps can use (the join filter wants one app that works).
                "/_matrix/client/versions" => Reply::json(json!({"versions": ["v1.11"]})),
                LOGIN => Reply::json(json!({"flows": [{"type": "m.login.sso",
                    "identity_providers": [{"id": "gl", "name": "GitLab"}]}]})),
                SUPPORT_WK => Reply::json(
                    json!({"contacts": [{"matrix_id": "@mod:open.test", "role": "m.role.admin"}]}),
                ),
                _ => Reply::not_found(),
            }),
        );
    }
    // Curated facts for open.test, the last [[server]] table.
    let text = h.config_text()
        + "jurisdiction = \"Germany (EU)\"\nlanguages = [\"en\", \"de\"]\n\
           privacy_url = \"https://open.test/privacy\"\nhomepage = \"https://open.test/about\"\nnote = \"Moderated; be kind.\"\n";
    let config = mxping::config::Config::parse(&text, "signup.toml", None).unwrap();
    let mut web = Web::new(config);
    let cells = |body: &str| -> Vec<(String, String)> {
        let doc = Html::parse_document(body);
        let row = Selector::parse("tr.server").unwrap();
        let cell = Selector::parse("td.signup").unwrap();
        doc.select(&row)
            .map(|r| {
                let name = r.value().attr("data-server").unwrap().to_owned();
                let c = r.select(&cell).next().unwrap();
                (
                    name,
                    c.text()
                        .collect::<String>()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            })
            .collect()
    };
    // Before any check: "not checked", and nobody is joinable yet.
    let (_, body) = web.text("/?lang=en").await;
    assert!(
        cells(&body).iter().all(|(_, c)| c == "not checked"),
        "{:?}",
        cells(&body)
    );
    let (_, body) = web.text("/?lang=en&filter=join").await;
    assert!(cells(&body).is_empty());
    assert!(body.contains("No server listed here lets newcomers sign up right now"));

    web.check_signups().await;
    let (_, body) = web.text("/?lang=en").await;
    assert_eq!(
        cells(&body),
        [
            ("closed.test".to_owned(), "↗ on the website".to_owned()),
            ("token.test".to_owned(), "⌨ invite code".to_owned()),
            ("open.test".to_owned(), "✓ open".to_owned()),
        ],
        "closed.test has SSO on /login, so accounts are made by signing in there"
    );
    let (_, body) = web.text("/?lang=zh").await;
    assert_eq!(cells(&body)[1].1, "⌨ 需邀请码");
    assert!(body.contains("现在可以注册的服务器"));
    let (_, body) = web.text("/?lang=en&filter=join").await;
    let joinable: Vec<String> = cells(&body).into_iter().map(|(n, _)| n).collect();
    assert_eq!(joinable, ["closed.test", "open.test"]);
    assert!(body.contains(r#"<strong aria-current="true">servers I can join now</strong>"#));

    let (_, detail) = web.text("/server/open.test?lang=en").await;
    for expected in [
        "anyone can make an account, with nothing to confirm.",
        r#"<a href="https://open.test/rules" rel="noopener nofollow" class="said" translate="no">Server rules</a>"#,
        "GitLab",
        "@mod:open.test (administrator)",
        "Germany (EU)",
        "en, de",
        "https://open.test/privacy",
        "Moderated; be kind.",
        "server list, not from a check",
    ] {
        assert!(
            detail.contains(expected),
            "{expected:?} missing from the detail page"
        );
    }
    // The Chinese pages read as Chinese; the operator's own facts, the identity provider's
    // name and the server names are kept as written.
    let names: std::collections::BTreeSet<String> = [
        "open.test",
        "token.test",
        "closed.test",
        "GitLab",
        "Germany",
        "EU",
        "Moderated",
        "be",
        "kind",
        "en",
        "de",
        "default",
    ]
    .map(str::to_owned)
    .into();
    let mut found = Vec::new();
    for page in [
        "/?lang=zh",
        "/?lang=zh&filter=join",
        "/server/open.test?lang=zh",
        "/server/token.test?lang=zh",
        "/server/closed.test?lang=zh",
    ] {
        let (_, body) = web.text(page).await;
        found.extend(crate::chinese::problems(page, &body, &names));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    // The contact's role in words, in Chinese too.
    let (_, detail) = web.text("/server/open.test?lang=zh").await;
    assert!(
        detail.contains("@mod:open.test（管理员）"),
        "the role in Chinese"
    );
    let (_, detail) = web.text("/server/token.test?lang=zh").await;
    assert!(detail.contains("注册需要服务器管理员提供的邀请码"));
    assert!(
        !detail.contains("司法管辖地"),
        "no facts configured for token.test"
    );

    let v = web.server("open.test").await;
    assert_eq!(v["signup"]["status"], "open");
    assert_eq!(v["facts"]["jurisdiction"], "Germany (EU)");
    assert_eq!(v["facts"]["languages"], json!(["en", "de"]));
    let (_, metrics) = web.text("/metrics").await;
    assert!(metrics.contains("mxping_signup_info{server=\"token.test\",status=\"invite_only\"} 1"));

    // The public list, as clients' server pickers read it: joinable servers only by default.
    let list = web.json("/api/v1/public_servers.json").await;
    let names: Vec<&str> = list["public_servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["closed.test", "open.test"]);
    let open = &list["public_servers"][1];
    assert_eq!(
        open["client_domain"], "open.test",
        "no client well-known: the name itself"
    );
    assert_eq!(open["reg_method"], "In-client");
    assert_eq!(open["using_vanilla_reg"], true);
    assert_eq!(
        (open["email"].clone(), open["captcha"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(open["staff_jur"], "Germany (EU)");
    assert_eq!(open["privacy"], "https://open.test/privacy");
    assert_eq!(
        open["website"], "https://open.test/about",
        "the list's homepage"
    );
    assert_eq!(open["languages"], json!(["en", "de"]));
    assert!(open["online_status"].is_u64());
    assert_eq!(open["mxping"]["signup_status"], "open");
    assert_eq!(list["public_servers"][0]["reg_method"], "SSO");
    let all = web.json("/api/v1/public_servers.json?all=true").await;
    assert_eq!(all["public_servers"].as_array().unwrap().len(), 3);
    assert_eq!(all["public_servers"][1]["reg_method"], "Registration token");
}
