//! The status page in a real browser (headless Chromium): the browser-side pings actually
//! run against the loopback servers, the page works with JavaScript off, a script in a
//! server's version string never runs, and screenshots in both languages at phone and
//! desktop widths are saved for review.

use scraper::{Html, Selector};
use serde_json::json;

use crate::page::{setup, wait_states};
use crate::support::browser::Browser;
use crate::support::https::handler;
use crate::support::serve::Serve;
use crate::support::*;

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&Selector::parse(css).unwrap()).collect()
}

fn hosts(list: &[(&str, &TestHost)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, h)| ((*n).to_owned(), h.ip.to_string()))
        .collect()
}

/// Width and height of a PNG, from its header.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    (
        u32::from_be_bytes(b[16..20].try_into().unwrap()),
        u32::from_be_bytes(b[20..24].try_into().unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_pings_run_against_each_servers_resolved_address() {
    let (h, servers, _fast) = setup().await;
    let s = Serve::start(&h.dir.path().join("servers.toml")).await;
    wait_states(&s).await;
    let browser = Browser {
        hosts: hosts(&[
            ("matrix.example.test", &servers[1]),
            ("fast.test", &servers[2]),
            ("down.test", &servers[3]),
        ]),
        // A reader eight hours east of UTC, with no daylight saving time.
        time_zone: Some("Asia/Shanghai".into()),
        ..Browser::default()
    };
    let ready =
        "document.querySelectorAll('.browser[data-url]:not([data-state=done])').length === 0";
    // Cumulative layout shift over the whole visit, results arriving included.
    let cls = "new Promise(done => new PerformanceObserver(list => done(list.getEntries()
        .filter(e => !e.hadRecentInput).reduce((sum, e) => sum + e.value, 0)))
        .observe({type: 'layout-shift', buffered: true}))";
    let cls_or_none =
        format!("Promise.race([{cls}, new Promise(done => setTimeout(() => done(0), 500))])");
    let limit = std::time::Duration::from_secs(30);
    let (dom, values) = browser
        .live_eval(&s.url("/"), ready, limit, &[&cls_or_none])
        .await;
    assert!(
        values[0].as_f64().unwrap() < 0.01,
        "layout shift while results arrived: {}",
        values[0]
    );
    let dom = Html::parse_document(&dom);
    // The script wrote the page's time in the reader's zone, keeping the UTC text as a tooltip.
    let times = select(&dom, "time[datetime]");
    assert!(!times.is_empty());
    for time in &times {
        assert!(time.value().attr("data-local").is_some(), "{}", time.html());
        assert!(
            time.value()
                .attr("title")
                .is_some_and(|t| t.ends_with(" UTC")),
            "{}",
            time.html()
        );
        let at = time::OffsetDateTime::parse(
            time.value().attr("datetime").unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let local = at.to_offset(time::macros::offset!(+8));
        let text = time.text().collect::<String>();
        assert!(
            text.contains(&format!("{:02}:{:02}", local.hour(), local.minute())),
            "{text} is {at} in Shanghai"
        );
    }
    // The page's threshold between a fast and a slow answer. A loaded machine can make a
    // browser's first request (its TLS handshake) slow: the colour must follow the time
    // measured, whatever it is.
    let green: f64 = select(&dom, "#servers")[0]
        .value()
        .attr("data-green")
        .unwrap()
        .parse()
        .unwrap();
    for name in ["example.test", "fast.test"] {
        let cell = &select(
            &dom,
            &format!(r#"tr.server[data-server="{name}"] .browser"#),
        )[0];
        assert_eq!(
            cell.value().attr("data-state"),
            Some("done"),
            "{name}: {}",
            cell.html()
        );
        let pings: Vec<_> = cell.select(&Selector::parse(".p").unwrap()).collect();
        assert_eq!(pings.len(), 4);
        for p in &pings {
            let ms: f64 = p.value().attr("data-ms").unwrap().parse().unwrap();
            let colour = if ms < green { "green" } else { "yellow" };
            assert!(
                p.value().classes().any(|c| c == colour),
                "{name}: {colour} expected for {ms} ms: {}",
                p.html()
            );
            // The page's one way of writing a latency, in the browser too.
            let written = if ms < 1.0 {
                "< 1 ms".to_owned()
            } else {
                format!("{} ms", ms.round())
            };
            let text = p.text().collect::<String>();
            assert!(text.ends_with(&written), "{name}: {text} for {ms} ms");
        }
    }
    // The example server answers after 30 ms: the browser measured at least that.
    let example = &select(&dom, r#"tr.server[data-server="example.test"] .browser .p"#);
    assert!(
        example
            .iter()
            .all(|p| p.value().attr("data-ms").unwrap().parse::<f64>().unwrap() >= 30.0)
    );
    let down = &select(&dom, r#"tr.server[data-server="down.test"] .browser .p"#);
    assert!(
        down.iter().all(|p| p.value().classes().any(|c| c == "red")),
        "{}",
        down[0].html()
    );
    // A failed ping is a cross, which fits in every language; the words are in the tooltip
    // and the accessible name.
    for p in down {
        assert_eq!(p.text().collect::<String>(), "\u{D7}", "{}", p.html());
        assert_eq!(p.value().attr("title"), Some("unavailable"));
        assert_eq!(p.value().attr("aria-label"), Some("unavailable"));
    }
    // The servers saw the browser's requests: four each, besides the monitor's own.
    let example_server = h.https_on(servers[1].ip);
    let from_browser = example_server
        .hits("/_matrix/federation/v1/version")
        .into_iter()
        .filter(|s| {
            s.user_agent
                .as_deref()
                .is_some_and(|ua| ua.contains("Chrome"))
        })
        .count();
    assert_eq!(from_browser, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_complete_without_javascript() {
    let (h, servers, _fast) = setup().await;
    let s = Serve::start(&h.dir.path().join("servers.toml")).await;
    wait_states(&s).await;
    let browser = Browser {
        hosts: hosts(&[("matrix.example.test", &servers[1])]),
        no_script: true,
        ..Browser::default()
    };
    let dom = browser
        .live_dom(&s.url("/?lang=zh"), "true", std::time::Duration::ZERO)
        .await;
    let dom = Html::parse_document(&dom);
    let rows = select(&dom, "tr.server");
    assert_eq!(rows.len(), 3);
    let statuses: Vec<&str> = rows
        .iter()
        .map(|r| r.value().attr("data-status").unwrap())
        .collect();
    assert_eq!(statuses, ["green", "green", "red"]);
    assert!(
        select(&dom, ".browser .p")
            .iter()
            .all(|p| p.text().collect::<String>() == "–"),
        "nothing measured"
    );
    assert!(
        select(&dom, "[data-state]").is_empty(),
        "the script did not run"
    );
    let noscript = select(&dom, "noscript");
    assert_eq!(noscript.len(), 1);
    assert!(
        noscript[0].inner_html().contains("开启 JavaScript 后"),
        "the page says what JavaScript would add"
    );
    assert_eq!(select(&dom, "svg.bar").len(), 3, "history needs no script");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_in_a_version_string_never_runs() {
    let mut h = Harness::new().await;
    h.extra = "[monitor]\ninterval = \"1s\"\ntimeout = \"800ms\"\ncheck_keys = false\n".into();
    h.servers = vec!["evil.test".into()];
    let mut evil = h.host("evil.test");
    let leaf = h.ca.leaf(&["evil.test"]);
    h.serve(&mut evil, 8448, leaf, handler(|s| {
        if s.path == "/_matrix/federation/v1/version" {
            Reply::json(json!({"server": {
                "name": "<script>document.body.setAttribute('data-pwned','script')</script>",
                "version": "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
            }}))
        } else {
            Reply::not_found()
        }
    }));
    let s = Serve::start(&h.config_file()).await;
    s.wait_for(std::time::Duration::from_secs(10), "a round", || async {
        (s.server("evil.test").await["status"] == "green").then_some(())
    })
    .await;
    for page in ["/", "/server/evil.test"] {
        let dom = Browser::default().dom(&s.url(page), 3_000).await;
        let doc = Html::parse_document(&dom);
        let body = &select(&doc, "body")[0];
        assert_eq!(
            body.value().attr("data-pwned"),
            None,
            "{page}: injected code ran"
        );
        assert!(
            dom.contains("&lt;script&gt;document.body.setAttribute"),
            "{page}: shown as text"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_in_both_languages_at_phone_and_desktop_widths() {
    let (h, servers, _fast) = setup().await;
    let s = Serve::start(&h.dir.path().join("servers.toml")).await;
    wait_states(&s).await;
    let map = hosts(&[
        ("matrix.example.test", &servers[1]),
        ("fast.test", &servers[2]),
        ("down.test", &servers[3]),
    ]);
    // The four combinations at once: each waits mostly for its page's browser pings (four,
    // a second apart), which need no CPU.
    let shots = [
        ("en", 1280, 1000, "desktop"),
        ("zh", 1280, 1000, "desktop"),
        ("en", 390, 1600, "phone"),
        ("zh", 390, 1600, "phone"),
    ]
    .map(|(lang, width, height, device)| {
        let map = map.clone();
        let s = &s;
        async move {
            let browser = Browser {
                hosts: map,
                size: Some((width, height)),
                ..Browser::default()
            };
            let ready =
                "document.querySelectorAll('.browser[data-url]:not([data-state=done])').length === 0";
            for (page, path) in [
                ("index", "/"),
                ("detail", "/server/example.test"),
                ("failing", "/server/down.test"),
            ] {
                let url = s.url(&format!("{path}?lang={lang}"));
                let shot = browser
                    .live_screenshot(
                        &url,
                        ready,
                        std::time::Duration::from_secs(20),
                        &format!("{page}-{lang}-{device}.png"),
                    )
                    .await;
                assert_eq!(png_size(&shot), (width, height), "{}", shot.display());
            }
        }
    });
    futures_util::future::join_all(shots).await;
}

/// The server list as a person sees it at one window width (see the script's comment).
const IN_VIEW: &str = include_str!("in_view.js");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fact_is_in_view_without_sideways_scrolling_at_every_width() {
    let (h, servers, _fast) = setup().await;
    // Rows that try to break the layout: a long name and title, long descriptions in both
    // languages, an English-only one, and rows with none (nothing resolves for them, so they
    // are red with a reason to show).
    let long = "a-homeserver-whose-name-is-long-enough-to-wrap-in-its-cell.example.test";
    let mut config = std::fs::read_to_string(h.dir.path().join("servers.toml")).unwrap();
    config.push_str(&format!(
        "\n[[server]]\nname = \"{long}\"\ntitle = \"A community homeserver with a rather long title for a row\"\n\
         description.en = \"{}\"\ndescription.zh = \"{}\"\n",
        "A homeserver for a large community of writers, translators and readers, run by volunteers since 2019, with rooms in many languages and a code of conduct. ".repeat(2),
        "一个由志愿者自二零一九年起运营的家服务器，面向写作者、译者和读者组成的大型社区，有多种语言的聊天室和行为准则。".repeat(2),
    ));
    config.push_str(
        "\n[[server]]\nname = \"english-only.test\"\ndescription.en = \"Only described in English, shown on the Chinese page too.\"\n",
    );
    for i in 0..8 {
        config.push_str(&format!("\n[[server]]\nname = \"plain{i}.test\"\n"));
    }
    std::fs::write(h.dir.path().join("servers.toml"), config).unwrap();
    let s = Serve::start(&h.dir.path().join("servers.toml")).await;
    wait_states(&s).await;
    s.wait_for(
        std::time::Duration::from_secs(15),
        "the added servers checked",
        || async {
            for name in [long, "english-only.test", "plain7.test"] {
                if s.server(name).await["status"] == "unknown" {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let browser = Browser {
        hosts: hosts(&[
            ("matrix.example.test", &servers[1]),
            ("fast.test", &servers[2]),
            ("down.test", &servers[3]),
        ]),
        ..Browser::default()
    };
    let ready =
        "document.querySelectorAll('.browser[data-url]:not([data-state=done])').length === 0";
    // Desktop widths, the range between phone and desktop, and a phone.
    let widths = [
        (1920, 1080),
        (1440, 900),
        (1280, 800),
        (1024, 768),
        (800, 1000),
        (640, 1000),
        (390, 844),
    ];
    for lang in ["en", "zh"] {
        let values = browser
            .at_widths(
                &s.url(&format!("/?lang={lang}")),
                ready,
                std::time::Duration::from_secs(20),
                &widths,
                IN_VIEW,
                |w| format!("widths-{lang}-{w}.png"),
            )
            .await;
        for ((w, _), v) in widths.iter().zip(&values) {
            assert_eq!(v["width"], *w, "{lang} at {w}: {v}");
            assert_eq!(v["rows"], 13, "{lang} at {w}: {v}");
            assert!(
                v["scrollWidth"].as_u64().unwrap() <= u64::from(*w),
                "{lang} at {w}: the page scrolls sideways: {v}"
            );
            assert_eq!(v["out"], json!([]), "{lang} at {w}: outside the window");
            assert_eq!(v["cut"], json!([]), "{lang} at {w}: wider than its cell");
            assert_eq!(v["signup"], json!([]), "{lang} at {w}: sign-up not in view");
            assert_eq!(
                v["emoji"],
                json!([]),
                "{lang} at {w}: needs a colour-emoji font"
            );
        }
    }
}
