//! The Chinese pages read as Chinese. Every page a reader reaches in zh — the status page, the
//! detail page of a healthy, a failing, a delegated, an SRV and an IP-literal server, the
//! not-found page and the feed — has no English word outside an allow list (protocol names,
//! codes, units, server names and addresses) and outside what is quoted as it was said
//! (elements marked `lang="en"` or `said`, `<code>`), and no half-width `:;,()` between
//! Chinese characters.

use std::collections::BTreeSet;

use scraper::{ElementRef, Html, Node};

use crate::support::https::handler;
use crate::support::web::Web;
use crate::support::*;

const MONITOR: &str = "[monitor]\ninterval = \"1s\"\nretry_interval = \"300ms\"\ntimeout = \"800ms\"\npings = 2\n\
                       down_after = 2\nup_after = 2\n";

/// Words that stay as they are in Chinese text: protocol and product names, record types,
/// units. Tokens with a digit or an underscore (versions, cipher suites, codes) and server
/// names, addresses and paths are left alone too.
const ALLOWED: &[&str] = &[
    "mxping",
    "Matrix",
    "DNS",
    "SRV",
    "TLS",
    "SNI",
    "HTTP",
    "HTTPS",
    "IP",
    "JSON",
    "CSV",
    "API",
    "Atom",
    "Prometheus",
    "JavaScript",
    "Host",
    "CNAME",
    "well-known",
    "ms",
    "UTC",
    "Synapse",
    "Element",
    "Cinny",
    "FluffyChat",
    "HelloRetryRequest",
    "RFC",
    "GCM",
    "AES",
    "CHACHA",
    "POLY",
    "SHA",
    "m.server",
    "Google",
    "reCAPTCHA",
    "Dendrite",
    "gomatrixserverlib",
];

/// The text a reader sees, leaving out what is quoted as it was said (`lang="en"`, `<code>`),
/// scripts and styles.
fn visible_text(e: ElementRef<'_>, out: &mut String) {
    for child in e.children() {
        match child.value() {
            Node::Text(t) => {
                out.push_str(t);
            }
            Node::Element(el) => {
                // Quoted as said: marked English, or a server's own words (`said`).
                let quoted = el.attr("lang") == Some("en")
                    || el.has_class("said", scraper::CaseSensitivity::CaseSensitive)
                    || matches!(el.name(), "code" | "script" | "style" | "noscript");
                if !quoted && let Some(child) = ElementRef::wrap(child) {
                    visible_text(child, out);
                    out.push(' ');
                }
            }
            _ => {}
        }
    }
}

/// English words in `text` that are not server names, addresses, paths, codes or allowed words.
fn english_words(text: &str, names: &BTreeSet<String>) -> Vec<String> {
    let mut found = Vec::new();
    for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || "._-:/[]@".contains(c))) {
        let token = token.trim_matches(|c: char| ".:-".contains(c));
        let code_like = token.chars().any(|c| c.is_ascii_digit() || c == '_');
        if token.is_empty()
            || code_like
            || ALLOWED.contains(&token)
            || names
                .iter()
                .any(|n| token == n || (n.contains('.') && token.contains(n.as_str())))
            || token.contains('/')
            || token.parse::<std::net::IpAddr>().is_ok()
        {
            continue;
        }
        for word in token.split(|c: char| !c.is_ascii_alphabetic()) {
            if word.len() > 1 && !ALLOWED.contains(&word) {
                found.push(word.to_owned());
            }
        }
    }
    found
}

/// Half-width `:;,()` with a Chinese character on both sides (spaces between them count).
fn half_width_between_chinese(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let chinese = |c: char| ('\u{4e00}'..='\u{9fff}').contains(&c);
    let mut found = Vec::new();
    for (i, c) in chars.iter().enumerate() {
        if !":;,()".contains(*c) {
            continue;
        }
        let before = chars[..i].iter().rev().find(|c| !c.is_whitespace());
        let after = chars[i + 1..].iter().find(|c| !c.is_whitespace());
        if before.is_some_and(|b| chinese(*b)) && after.is_some_and(|a| chinese(*a)) {
            let from = i.saturating_sub(12);
            let to = (i + 12).min(chars.len());
            found.push(chars[from..to].iter().collect());
        }
    }
    found
}

/// What a Chinese reader of `page` would stumble on (of a feed: its titles and contents).
pub(crate) fn problems(page: &str, body: &str, names: &BTreeSet<String>) -> Vec<String> {
    let doc = Html::parse_document(body);
    let mut text = String::new();
    if body.starts_with("<?xml") {
        let read = scraper::Selector::parse("title, content").unwrap();
        for e in doc.select(&read) {
            visible_text(e, &mut text);
            text.push('\n');
        }
    } else {
        visible_text(doc.root_element(), &mut text);
    }
    let mut out: Vec<String> = english_words(&text, names)
        .into_iter()
        .map(|w| format!("{page}: English {w:?}"))
        .collect();
    out.extend(
        half_width_between_chinese(&text)
            .into_iter()
            .map(|s| format!("{page}: half-width punctuation in {s:?}")),
    );
    out
}

#[test]
fn the_checks_find_what_they_look_for() {
    let names = BTreeSet::from(["a.test".to_owned()]);
    assert_eq!(
        english_words("a.test 正常 skipped (from cache) 8448 ms", &names),
        ["skipped", "from", "cache"]
    );
    assert!(
        english_words(
            "127.0.0.1:8448 [::1]:8448 https://a.test/x DNS SRV TLSv1.3 TLS13_AES_256_GCM_SHA384 _matrix-fed._tcp.a.test",
            &names
        )
        .is_empty()
    );
    assert_eq!(half_width_between_chinese("排序: 状态"), ["排序: 状态"]);
    assert!(half_width_between_chinese("排序：状态 a.test: ok").is_empty());
    let body = r#"<html><body><p>数据 <code>timeout</code> <span lang="en">connection refused</span> words</p></body></html>"#;
    assert_eq!(problems("x", body, &names), ["x: English \"words\""]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_chinese_page_reads_as_chinese() {
    let mut h = Harness::new().await;
    h.extra = MONITOR.to_owned();
    // Delegated through the well-known, to a server that answers.
    let mut origin = h.host("delegated.test");
    h.serve(
        &mut origin,
        443,
        h.ca.leaf(&["delegated.test"]),
        handler(|s| match s.path.as_str() {
            "/.well-known/matrix/server" => {
                Reply::json(serde_json::json!({"m.server": "matrix.delegated.test:443"}))
            }
            _ => Reply::not_found(),
        }),
    );
    let mut m = h.host("matrix.delegated.test");
    h.homeserver(&mut m, 443, "matrix.delegated.test", "delegated.test");
    // Healthy on port 8448.
    let mut healthy = h.host("healthy.test");
    h.homeserver(&mut healthy, 8448, "healthy.test", "healthy.test");
    // Nothing listens: refused.
    let mut down = h.host("down.test");
    down.release();
    // An SRV record to another host.
    let mut target = h.host("fed.srv.test");
    h.homeserver(&mut target, 8448, "srv.test", "srv.test");
    h.dns
        .srv("_matrix-fed._tcp.srv.test", 10, 0, 8448, "fed.srv.test");
    // An IP literal.
    let mut literal = TestHost::claim();
    let ip = literal.ip.to_string();
    h.homeserver(&mut literal, 8448, &ip, &ip);
    h.servers = vec![
        "delegated.test".into(),
        "healthy.test".into(),
        "down.test".into(),
        "srv.test".into(),
        ip.clone(),
    ];
    let mut web = Web::new(h.config());
    web.rounds(3).await;
    for (name, status) in [
        ("delegated.test", "green"),
        ("healthy.test", "green"),
        ("down.test", "red"),
        ("srv.test", "green"),
        (ip.as_str(), "green"),
    ] {
        assert_eq!(web.server(name).await["status"], status, "{name}");
    }
    // The healthy server in a maintenance window, the failing one with an incident: the
    // operators' words are theirs (quoted as said), ours are Chinese.
    let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    web.show_operators(
        1,
        Some(mxping::testing::Active {
            start: at(now - 60),
            end: at(now + 3600),
            note: "升级 Synapse，14:00 恢复".into(),
            by: "运维".into(),
            source: mxping::testing::Source::Admin,
        }),
        None,
    );
    web.show_operators(
        2,
        None,
        Some(mxping::testing::Incident {
            opened_at: at(now - 30),
            resolved_at: None,
            until_recovered: true,
            notes: vec![mxping::testing::Note {
                at: at(now - 30),
                by: "@op:down.test".into(),
                text: "正在从备份恢复数据库".into(),
                resolves: false,
            }],
        }),
    );
    assert_eq!(web.server("healthy.test").await["status"], "maintenance");
    let mut names: BTreeSet<String> = h.servers.iter().cloned().collect();
    // Names the operator or the reader chose: the monitor's vantage name ("default" unless
    // `[web] vantage` says otherwise) and the name a reader asked for.
    names.extend(
        [
            "matrix.delegated.test",
            "fed.srv.test",
            "nothing.test",
            "default",
        ]
        .map(str::to_owned),
    );

    let mut pages = vec![
        "/?lang=zh".to_owned(),
        "/?lang=zh&filter=problems".to_owned(),
        "/server/nothing.test?lang=zh".to_owned(),
        "/feed.atom?lang=zh".to_owned(),
    ];
    pages.extend(h.servers.iter().map(|n| format!("/server/{n}?lang=zh")));
    let mut found = Vec::new();
    for page in &pages {
        let (_, body) = web.text(page).await;
        assert!(
            body.contains("lang=\"zh\"") || page.contains("feed"),
            "{page} is in Chinese"
        );
        found.extend(problems(page, &body, &names));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    let (_, index) = web.text("/?lang=zh").await;
    assert!(index.contains("维护中") && index.contains("正在从备份恢复数据库"));
    let (_, detail) = web.text("/server/down.test?lang=zh").await;
    assert!(
        detail.contains("事件经过") && detail.contains("的说明"),
        "{detail}"
    );
}
