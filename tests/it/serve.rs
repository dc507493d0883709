//! `mxping serve` started on loopback against the harness, asserted over real HTTP: the JSON
//! of each server, status transitions with hysteresis, the pages (by selector), the metrics,
//! reload on SIGHUP and shutdown on SIGTERM.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scraper::{Html, Selector};
use serde_json::{Value, json};

use crate::support::https::{self, handler};
use crate::support::serve::Serve;
use crate::support::web::Web;
use crate::support::*;

const VERSION: &str = "/_matrix/federation/v1/version";

/// Fast cadence so hysteresis plays out in seconds.
const MONITOR: &str = "[monitor]\ninterval = \"2s\"\nretry_interval = \"400ms\"\ntimeout = \"1200ms\"\n\
                       pings = 2\ngreen_below = \"200ms\"\ndown_after = 3\nup_after = 2\n\
                       [web]\nvantage = \"test-lab\"\nrefresh = \"5s\"\n";

struct Zoo {
    h: Harness,
    flappy: TestHost,
    flappy_server: Option<HttpsServer>,
}

/// healthy, slow, IPv6-broken, down, TLS-broken and a server we can stop and start.
async fn zoo() -> Zoo {
    let mut h = Harness::new().await;
    h.extra = MONITOR.to_owned();
    for name in [
        "healthy.test",
        "slow.test",
        "v6broken.test",
        "down.test",
        "tlsbroken.test",
        "flappy.test",
    ] {
        h.servers.push(name.to_owned());
    }
    let mut healthy = h.host("healthy.test");
    h.homeserver(&mut healthy, 8448, "healthy.test", "healthy.test");

    let mut slow = h.host("slow.test");
    let leaf = h.ca.leaf(&["slow.test"]);
    h.serve(
        &mut slow,
        8448,
        leaf,
        handler(|s| match s.path.as_str() {
            VERSION => Reply::json(json!({"server": {"name": "Slow", "version": "0.1"}}))
                .delay(Duration::from_millis(260)),
            _ => Reply::json(https::signed_keys("slow.test", i64::MAX)),
        }),
    );

    let mut dual = h.host("dual.test");
    h.dns.aaaa("dual.test", "::1".parse().unwrap());
    h.dns
        .srv("_matrix-fed._tcp.v6broken.test", 10, 0, 8448, "dual.test");
    h.homeserver(&mut dual, 8448, "v6broken.test", "v6broken.test");

    let down = h.host("down.test");
    drop(down);

    let mut broken = h.host("tlsbroken.test");
    h.homeserver(&mut broken, 8448, "other.test", "tlsbroken.test");

    let mut flappy = h.host("flappy.test");
    let listener = flappy.take(8448);
    flappy.release();
    let flappy_server = Some(HttpsServer::start(
        listener,
        h.ca.leaf(&["flappy.test"]),
        https::homeserver("flappy.test"),
    ));
    // Keep the hosts alive by leaking them into the harness's lifetime.
    std::mem::forget((healthy, slow, dual, broken));
    Zoo {
        h,
        flappy,
        flappy_server,
    }
}

/// Polls the list API every 50 ms from the moment the service starts and records, per server,
/// every distinct (status, reason) in order, so no transition is missed.
/// Per server, the distinct (status, reason) pairs seen, in order.
type Seen = Arc<Mutex<HashMap<String, Vec<(String, String)>>>>;

struct Watcher {
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watcher {
    fn start(s: &Serve) -> Watcher {
        let seen: Seen = Arc::default();
        let url = s.url("/api/v1/servers");
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            loop {
                if let Ok(r) = client.get(&url).send().await
                    && let Ok(text) = r.text().await
                    && let Ok(v) = serde_json::from_str::<Value>(&text)
                {
                    let mut seen = seen2.lock().unwrap();
                    for server in v["servers"].as_array().into_iter().flatten() {
                        let name = server["name"].as_str().unwrap_or_default().to_owned();
                        let now = (
                            server["status"].as_str().unwrap_or_default().to_owned(),
                            server["reason"].as_str().unwrap_or_default().to_owned(),
                        );
                        let list = seen.entry(name).or_default();
                        if list.last() != Some(&now) {
                            list.push(now);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Watcher { seen, task }
    }

    /// Statuses `name` went through after its first round (consecutive duplicates merged).
    /// Whether the first poll still saw `unknown` depends on the random start-up delay, so
    /// that is asserted separately, over all servers.
    fn statuses(&self, name: &str) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        let mut out: Vec<String> = Vec::new();
        for (status, _) in seen.get(name).into_iter().flatten() {
            if out.last() != Some(status) && status != "unknown" {
                out.push(status.clone());
            }
        }
        out
    }

    /// The servers first seen as `unknown`.
    fn first_unknown(&self) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.values()
            .filter(|l| l.first().is_some_and(|(s, _)| s == "unknown"))
            .count()
    }

    /// Waits until `name` is `status` with a reason containing `reason`; returns the reason.
    async fn until(&self, name: &str, status: &str, reason: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let last = self
                .seen
                .lock()
                .unwrap()
                .get(name)
                .and_then(|l| l.last().cloned());
            if let Some((st, why)) = &last
                && st == status
                && why.contains(reason)
            {
                return why.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never became {status} ({reason}); went {:?}, last {last:?}",
                self.statuses(name)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The start-up behaviour of the binary: every server is unknown, with no data, until its
/// first round, and first rounds are spread over the interval (start-up jitter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_start_unknown_and_first_rounds_are_spread() {
    let zoo = zoo().await;
    let s = Serve::start(&zoo.h.config_file()).await;
    let first = s.json("/api/v1/servers").await;
    for v in first["servers"].as_array().unwrap() {
        if v["status"] == "unknown" {
            assert_eq!(v["checked_at"], Value::Null);
            assert_eq!(v["addresses"], json!([]));
        }
    }
    let w = Watcher::start(&s);
    w.until("healthy.test", "green", "").await;
    assert_eq!(w.statuses("healthy.test"), ["green"]);
    // Start-up jitter spreads first rounds over the 2 s interval: most start unknown.
    assert!(
        w.first_unknown() >= 3,
        "servers start unknown until their first round"
    );
}

/// The design's status table with hysteresis, round by round: real rounds against the zoo,
/// recorded as the scheduler records them (in-process: no cadence to wait for).
#[tokio::test]
async fn statuses_follow_the_design_table_with_hysteresis() {
    let mut zoo = zoo().await;
    let mut s = Web::new(zoo.h.config());
    let state = |v: Value| {
        (
            v["status"].as_str().unwrap().to_owned(),
            v["reason"].as_str().unwrap_or("").to_owned(),
        )
    };
    // Before its first round a server is unknown, with no data.
    for v in s.json("/api/v1/servers").await["servers"]
        .as_array()
        .unwrap()
    {
        assert_eq!(v["status"], "unknown");
        assert_eq!(v["checked_at"], Value::Null);
        assert_eq!(v["addresses"], json!([]));
    }

    s.round().await;
    assert_eq!(
        state(s.server("healthy.test").await),
        ("green".into(), "".into())
    );
    let (status, why) = state(s.server("slow.test").await);
    assert_eq!(status, "yellow");
    assert!(
        why.starts_with("latency ") && why.contains("≥ 200 ms"),
        "{why}"
    );
    let (status, why) = state(s.server("v6broken.test").await);
    assert_eq!(status, "yellow");
    assert!(
        why.contains("IPv6 address [::1]:8448 failing") && why.contains("connect_refused"),
        "{why}"
    );
    // Down: yellow while unconfirmed, then red after down_after (3) failed rounds.
    let (status, why) = state(s.server("down.test").await);
    assert_eq!(status, "yellow");
    assert!(why.contains("1 of 3 failed rounds"), "{why}");
    s.round_of(&["down.test", "tlsbroken.test"]).await;
    let (status, why) = state(s.server("down.test").await);
    assert_eq!(status, "yellow");
    assert!(why.contains("2 of 3 failed rounds"), "{why}");
    s.round_of(&["down.test", "tlsbroken.test"]).await;
    let (status, why) = state(s.server("down.test").await);
    assert_eq!(status, "red");
    assert!(why.contains("3 failed rounds: connect_refused"), "{why}");
    let (status, why) = state(s.server("tlsbroken.test").await);
    assert_eq!(status, "red");
    assert!(why.contains("tls_certificate"), "{why}");

    // Flappy: green, then stopped → yellow → red, then started → recovering → green.
    assert_eq!(state(s.server("flappy.test").await).0, "green");
    zoo.flappy_server = None; // stop it: connections are refused
    let mut seen = Vec::new();
    for _ in 0..3 {
        s.round_of(&["flappy.test"]).await;
        seen.push(state(s.server("flappy.test").await));
    }
    assert_eq!(
        seen.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["yellow", "yellow", "red"]
    );
    assert!(seen[2].1.contains("connect_refused"), "{:?}", seen[2]);
    zoo.flappy_server = Some(HttpsServer::start(
        zoo.flappy.take(8448),
        zoo.h.ca.leaf(&["flappy.test"]),
        https::homeserver("flappy.test"),
    ));
    s.round_of(&["flappy.test"]).await;
    assert_eq!(
        state(s.server("flappy.test").await),
        ("yellow".into(), "recovering (1 of 2 good rounds)".into()),
        "recovery takes up_after (2) good rounds"
    );
    s.round_of(&["flappy.test"]).await;
    assert_eq!(state(s.server("flappy.test").await).0, "green");
    let feed = s.text("/feed.atom").await.1;
    for change in [
        "flappy.test: operational → degraded",
        "flappy.test: degraded → down",
        "flappy.test: down → degraded",
        "flappy.test: degraded → operational",
    ] {
        assert!(
            feed.contains(&format!("<title>{change}</title>")),
            "{change}"
        );
    }

    // The JSON contract for a healthy server.
    let v = s.server("healthy.test").await;
    assert_eq!(v["vantage"], "test-lab");
    assert_eq!(v["name"], "healthy.test");
    assert!(v["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(v["checked_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["software"]["name"], "Synapse");
    assert_eq!(v["discovery"]["well_known"], "error");
    assert_eq!(v["discovery"]["method"], "default_port");
    assert_eq!(v["discovery"]["delegated_name"], "healthy.test");
    assert_eq!(v["discovery"]["targets"][0]["host_header"], "healthy.test");
    assert_eq!(v["addresses"][0]["ok"], true);
    assert_eq!(
        v["addresses"][0]["phases_ms"]["requests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(v["error"], Value::Null);
    assert!(v["uptime"]["1h"].as_f64().unwrap() > 0.99);
    assert!(v["latency_p50_ms"].as_f64().is_some());
    // A red server explains itself in the same shape.
    let down = s.server("down.test").await;
    assert_eq!(down["error"]["kind"], "connect_refused");
    assert_eq!(down["addresses"][0]["ok"], false);
    assert!(down["uptime"]["1h"].as_f64().unwrap() < 0.01);

    // The list endpoint.
    let list = s.json("/api/v1/servers").await;
    assert_eq!(list["vantage"], "test-lab");
    assert_eq!(list["servers"].as_array().unwrap().len(), 6);
    assert_eq!(list["summary"]["total"], 6);
    let (code, body) = s.text("/api/v1/servers/nope.test").await;
    assert_eq!(code, 404);
    assert!(body.contains("not monitored"));
}

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&Selector::parse(css).unwrap()).collect()
}

fn text(e: &scraper::ElementRef<'_>) -> String {
    e.text()
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_show_status_latency_uptime_and_the_discovery_chain() {
    let zoo = zoo().await;
    let mut s = Web::new(zoo.h.config());
    // One round of everything, then down.test's 2nd and 3rd (down_after = 3) to turn it red.
    s.round().await;
    s.round_of(&["down.test"]).await;
    s.round_of(&["down.test"]).await;
    assert_eq!(s.server("healthy.test").await["status"], "green");
    assert_eq!(s.server("down.test").await["status"], "red");
    assert_eq!(s.server("v6broken.test").await["status"], "yellow");

    let (code, body) = s.text("/").await;
    assert_eq!(code, 200);
    let doc = Html::parse_document(&body);
    assert_eq!(select(&doc, "tr.server").len(), 6);
    let healthy = &select(&doc, r#"tr.server[data-server="healthy.test"]"#)[0];
    let badge = healthy
        .select(&Selector::parse(".status .badge.green").unwrap())
        .next()
        .expect("green badge");
    assert_eq!(
        text(&badge),
        "● operational",
        "symbol and word, not colour alone"
    );
    let latency = text(
        &healthy
            .select(&Selector::parse(".latency .headline").unwrap())
            .next()
            .unwrap(),
    );
    assert!(latency.ends_with(" ms"), "{latency}");
    assert_eq!(
        healthy
            .select(&Selector::parse(".pings .ping").unwrap())
            .count(),
        2,
        "the last round's pings"
    );
    let detail = healthy
        .select(&Selector::parse("a.detail").unwrap())
        .next()
        .unwrap();
    assert_eq!(detail.value().attr("href"), Some("/server/healthy.test"));
    let down = &select(&doc, r#"tr.server[data-server="down.test"]"#)[0];
    assert_eq!(
        text(
            &down
                .select(&Selector::parse(".badge.red").unwrap())
                .next()
                .unwrap()
        ),
        "✖ down"
    );
    let reason = down
        .select(&Selector::parse(".reason").unwrap())
        .next()
        .unwrap();
    assert!(text(&reason).starts_with("down for"), "{}", text(&reason));
    assert!(
        text(&reason).contains("the connection is refused"),
        "plain words: {}",
        text(&reason)
    );
    assert!(
        reason
            .value()
            .attr("title")
            .unwrap()
            .contains("connect_refused"),
        "technical details kept"
    );
    let v6 = &select(&doc, r#"tr.server[data-server="v6broken.test"]"#)[0];
    assert!(
        text(
            &v6.select(&Selector::parse(".reason").unwrap())
                .next()
                .unwrap()
        )
        .contains("IPv6 address")
    );
    assert!(text(&select(&doc, "#summary")[0]).contains("of 6 servers operational"));
    // Refreshes itself, needs no script, and is readable on a phone.
    assert_eq!(
        select(&doc, r#"meta[http-equiv="refresh"]"#)[0]
            .value()
            .attr("content"),
        Some("5")
    );
    // The only scripts are mxping's own files: no inline script.
    let scripts = select(&doc, "script");
    let sources: Vec<_> = scripts.iter().map(|s| s.value().attr("src")).collect();
    assert_eq!(sources, [Some("/static/time.js"), Some("/static/ping.js")]);
    assert!(scripts.iter().all(|s| text(s).is_empty()));
    assert!(select(&doc, r#"meta[name="viewport"]"#).len() == 1);

    // The detail page.
    let (code, body) = s.text("/server/v6broken.test").await;
    assert_eq!(code, 200);
    let doc = Html::parse_document(&body);
    assert!(text(&select(&doc, "#status")[0]).contains("degraded"));
    let chain = text(&select(&doc, "#discovery")[0]);
    assert!(
        chain.contains(
            "SRV _matrix-fed._tcp.v6broken.test → found priority 10 weight 0 port 8448 target dual.test"
        ),
        "{chain}"
    );
    assert!(chain.contains("DNS dual.test"), "{chain}");
    let rows = select(&doc, "#addresses tr.address");
    assert_eq!(rows.len(), 2);
    assert!(
        select(
            &doc,
            r#"#addresses tr.address.failing[data-address="[::1]:8448"]"#
        )
        .len()
            == 1
    );
    let ok_row = text(&select(&doc, "#addresses tr.address.ok")[0]);
    assert!(
        ok_row.contains("v6broken.test; expires"),
        "certificate expiry shown: {ok_row}"
    );
    assert_eq!(select(&doc, "#chart svg").len(), 1, "server-side SVG chart");
    assert_eq!(select(&doc, "#uptime th").len(), 5, "1h 24h 7d 30d 90d");
    assert!(!select(&doc, "#recent tbody tr").is_empty());

    // Unknown names get a real 404 page.
    let (code, body) = s.text("/server/nope.test").await;
    assert_eq!(code, 404);
    let doc = Html::parse_document(&body);
    assert!(text(&select(&doc, "#message")[0]).contains("not monitored"));
    let (code, _) = s.text("/no/such/page").await;
    assert_eq!(code, 404);
    let (code, body) = s.text("/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    // Security headers.
    let (_, headers, _) = s.get_with("/", &[]).await;
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
}

/// Parses the text exposition into (name, labels, value).
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => {
                    let body = rest.trim_end_matches('}');
                    let labels = body
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once("=\"").unwrap();
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (n.to_owned(), labels)
                }
                None => (series.to_owned(), BTreeMap::new()),
            };
            (name, labels, value.parse().unwrap())
        })
        .collect()
}

fn find<'a>(
    all: &'a [(String, BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> Vec<&'a (String, BTreeMap<String, String>, f64)> {
    all.iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_contract_and_pass_promtool() {
    let zoo = zoo().await;
    // healthy.test alone has its own phase histograms; the others share the pooled ones.
    let config = zoo.h.config_file();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "name = \"healthy.test\"\n",
        "name = \"healthy.test\"\nper_server_phases = true\n",
    );
    std::fs::write(&config, text).unwrap();
    let s = Serve::start(&config).await;
    let w = Watcher::start(&s);
    w.until("healthy.test", "green", "").await;
    w.until("down.test", "red", "").await;
    w.until("v6broken.test", "yellow", "IPv6").await;
    w.until("tlsbroken.test", "red", "").await;
    let r = s.get("/metrics").await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    // Sent in parts, with its length up front as a single buffer's.
    let length: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = r.text().await.unwrap();
    assert_eq!(body.len(), length);
    assert!(body.ends_with('\n') && body.contains("\n# TYPE mxping_up gauge\nmxping_up{"));
    // Prometheus asks for gzip; what it gets is the same exposition, compressed.
    let gz = s.get_gzip("/metrics").await;
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "Accept-Encoding");
    let mut unzipped = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&gz.bytes().await.unwrap()[..]),
        &mut unzipped,
    )
    .unwrap();
    let families = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(families(&unzipped), families(&body));
    assert!(unzipped.contains("mxping_up{server=\"healthy.test\"} 1\n"));
    let all = samples(&body);
    let one = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let found = find(&all, name, labels);
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].2
    };
    assert_eq!(one("mxping_up", &[("server", "healthy.test")]), 1.0);
    assert_eq!(one("mxping_up", &[("server", "down.test")]), 0.0);
    assert_eq!(
        one(
            "mxping_status",
            &[("server", "healthy.test"), ("status", "green")]
        ),
        1.0
    );
    assert_eq!(
        one(
            "mxping_status",
            &[("server", "healthy.test"), ("status", "red")]
        ),
        0.0
    );
    assert_eq!(
        one(
            "mxping_status",
            &[("server", "down.test"), ("status", "red")]
        ),
        1.0
    );
    // One series per status: green, yellow, red, maintenance, unknown.
    assert_eq!(
        find(&all, "mxping_status", &[("server", "down.test")]).len(),
        5
    );
    assert_eq!(one("mxping_maintenance", &[("server", "down.test")]), 0.0);
    let latency = one("mxping_latency_seconds", &[("server", "healthy.test")]);
    assert!(latency > 0.0 && latency < 0.2, "{latency} is in seconds");
    assert!(find(&all, "mxping_latency_seconds", &[("server", "down.test")]).is_empty());
    for phase in ["discovery", "connect", "tls", "request"] {
        let count = one(
            "mxping_phase_duration_seconds_count",
            &[("server", "healthy.test"), ("phase", phase)],
        );
        assert!(count >= 1.0, "{phase}");
        assert_eq!(
            find(
                &all,
                "mxping_phase_duration_seconds_bucket",
                &[("server", "healthy.test"), ("phase", phase)]
            )
            .len(),
            18
        );
    }
    // The pooled histograms (no server label) hold every other server's phases; no other
    // server has series of its own, so each costs few series (issue 17: ~830,000 series at
    // 10,000 servers before, most of them phase buckets).
    let pooled = |name: &str, phase: &str| -> Vec<f64> {
        find(&all, name, &[("phase", phase)])
            .into_iter()
            .filter(|(_, l, _)| !l.contains_key("server"))
            .map(|(_, _, v)| *v)
            .collect()
    };
    for phase in ["connect", "request"] {
        assert_eq!(
            pooled("mxping_phase_duration_seconds_count", phase).len(),
            1,
            "{phase}"
        );
        assert!(pooled("mxping_phase_duration_seconds_count", phase)[0] >= 1.0);
        assert_eq!(
            pooled("mxping_phase_duration_seconds_bucket", phase).len(),
            18
        );
    }
    assert!(
        find(
            &all,
            "mxping_phase_duration_seconds_count",
            &[("server", "slow.test")]
        )
        .is_empty()
    );
    let per_server = all
        .iter()
        .filter(|(_, l, _)| l.get("server").map(String::as_str) == Some("slow.test"))
        .count();
    assert!(per_server <= 25, "{per_server} series for one server");
    assert!(
        one(
            "mxping_probes_total",
            &[
                ("server", "healthy.test"),
                ("ip_family", "ipv4"),
                ("result", "ok")
            ]
        ) >= 1.0
    );
    assert!(
        one(
            "mxping_probes_total",
            &[
                ("server", "down.test"),
                ("ip_family", "ipv4"),
                ("result", "connect_refused")
            ]
        ) >= 3.0
    );
    assert!(
        one(
            "mxping_probes_total",
            &[
                ("server", "v6broken.test"),
                ("ip_family", "ipv6"),
                ("result", "connect_refused")
            ]
        ) >= 1.0
    );
    assert!(
        one(
            "mxping_probes_total",
            &[
                ("server", "tlsbroken.test"),
                ("ip_family", "ipv4"),
                ("result", "tls_certificate")
            ]
        ) >= 1.0
    );
    let expiry = find(
        &all,
        "mxping_tls_certificate_expiry_timestamp_seconds",
        &[("server", "healthy.test")],
    );
    assert_eq!(expiry.len(), 1);
    assert!(expiry[0].1["address"].ends_with(":8448"));
    assert!(expiry[0].2 > time::OffsetDateTime::now_utc().unix_timestamp() as f64);
    assert_eq!(
        one(
            "mxping_server_info",
            &[
                ("server", "healthy.test"),
                ("software", "Synapse"),
                ("version", "1.163.2")
            ]
        ),
        1.0
    );
    assert_eq!(
        one(
            "mxping_discovery_info",
            &[
                ("server", "v6broken.test"),
                ("method", "srv_matrix_fed"),
                ("delegated_name", "v6broken.test")
            ]
        ),
        1.0
    );
    for window in ["1h", "24h", "7d", "30d", "90d"] {
        one(
            "mxping_uptime_ratio",
            &[("server", "healthy.test"), ("window", window)],
        );
    }
    assert_eq!(
        one(
            "mxping_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(one("mxping_config_last_reload_successful", &[]), 1.0);
    // Every family has HELP and TYPE.
    for family in [
        "mxping_up",
        "mxping_status",
        "mxping_latency_seconds",
        "mxping_phase_duration_seconds",
        "mxping_probes_total",
        "mxping_tls_certificate_expiry_timestamp_seconds",
        "mxping_server_info",
        "mxping_discovery_info",
        "mxping_uptime_ratio",
        "mxping_build_info",
    ] {
        assert!(body.contains(&format!("# HELP {family} ")), "{family}");
        assert!(body.contains(&format!("# TYPE {family} ")), "{family}");
    }

    // promtool (Debian package `prometheus`, installed by .ci/run) must find nothing to lint.
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed for this test: apt-get install prometheus (.ci/run does)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_a_bad_file_keeps_the_old_config() {
    let mut h = Harness::new().await;
    h.extra = MONITOR.to_owned();
    h.servers = vec!["one.test".into(), "two.test".into()];
    let mut one = h.host("one.test");
    h.homeserver(&mut one, 8448, "one.test", "one.test");
    let mut three = h.host("three.test");
    h.homeserver(&mut three, 8448, "three.test", "three.test");
    let mut two = h.host("two.test");
    h.homeserver(&mut two, 8448, "two.test", "two.test");
    let path = h.config_file();
    let s = Serve::start(&path).await;
    let w = Watcher::start(&s);
    w.until("two.test", "green", "").await;
    w.until("one.test", "green", "").await;
    let before = s.server("one.test").await["uptime"]["1h"].clone();

    // Remove two, add three; one keeps its history.
    h.servers = vec!["one.test".into(), "three.test".into()];
    std::fs::write(&path, h.config_text()).unwrap();
    s.signal("HUP");
    s.wait_for(Duration::from_secs(10), "two.test to disappear", || async {
        (s.text("/api/v1/servers/two.test").await.0 == 404).then_some(())
    })
    .await;
    w.until("three.test", "green", "").await;
    assert_eq!(s.server("one.test").await["status"], "green");
    assert!(
        s.server("one.test").await["uptime"]["1h"].is_number(),
        "kept: {before}"
    );
    let metrics = s.text("/metrics").await.1;
    assert!(
        !metrics.contains("server=\"two.test\""),
        "series of removed servers are dropped"
    );
    assert!(metrics.contains("mxping_up{server=\"three.test\"} 1"));
    assert!(metrics.contains("mxping_config_last_reload_successful 1"));
    assert!(
        s.log_contains("1 server(s) added"),
        "{:?}",
        s.log.lock().unwrap()
    );

    // A broken file is rejected, logged, and the old config keeps running.
    std::fs::write(&path, "[monitor]\ninterval = \"often\"\n").unwrap();
    s.signal("HUP");
    s.wait_for(Duration::from_secs(10), "the reload failure", || async {
        s.text("/metrics")
            .await
            .1
            .contains("mxping_config_last_reload_successful 0")
            .then_some(())
    })
    .await;
    assert!(s.log_contains("reload failed, the previous configuration keeps running"));
    assert!(s.log_contains("\"often\" is not a duration"));
    let list = s.json("/api/v1/servers").await;
    let names: Vec<&str> = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one.test", "three.test"]);
    // And it keeps probing.
    let checked = s.server("three.test").await["checked_at"].clone();
    s.wait_for(Duration::from_secs(10), "another round", || async {
        (s.server("three.test").await["checked_at"] != checked).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_within_the_grace_period() {
    let mut h = Harness::new().await;
    h.extra = MONITOR.to_owned();
    // A server that stalls every round: shutdown must not wait for it.
    h.servers = vec!["stall.test".into()];
    let mut stall = h.host("stall.test");
    let _held = stall.take(8448);
    stall.release();
    let mut s = Serve::start(&h.config_file()).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let started = std::time::Instant::now();
    s.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(7), s.child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(s.log_contains("SIGTERM: shutting down") && s.log_contains("stopped"));
}

/// The variables of a running process, as the kernel has them for its current program.
fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[tokio::test]
async fn serve_limits_glibc_to_one_malloc_arena_unless_the_operator_chose() {
    let mut h = Harness::new().await;
    h.servers = vec!["arenas.test".into()];
    let config = h.config_file();
    // Not set: serve starts itself again with it, keeping its process ID, and works.
    let s = Serve::start_with(&config, |c| {
        c.env_remove("MALLOC_ARENA_MAX")
            .env_remove("GLIBC_TUNABLES");
    })
    .await;
    let vars = environ(s.child.id().unwrap());
    assert!(vars.iter().any(|v| v == "MALLOC_ARENA_MAX=1"), "{vars:?}");
    assert_eq!(s.get("/healthz").await.status(), 200);
    // The operator's own choice, either way it can be made, is left alone.
    let s = Serve::start_with(&config, |c| {
        c.env("MALLOC_ARENA_MAX", "4");
    })
    .await;
    let vars = environ(s.child.id().unwrap());
    assert!(vars.iter().any(|v| v == "MALLOC_ARENA_MAX=4"), "{vars:?}");
    let s = Serve::start_with(&config, |c| {
        c.env_remove("MALLOC_ARENA_MAX")
            .env("GLIBC_TUNABLES", "glibc.malloc.arena_max=8");
    })
    .await;
    let vars = environ(s.child.id().unwrap());
    assert!(
        !vars.iter().any(|v| v.starts_with("MALLOC_ARENA_MAX=")),
        "{vars:?}"
    );
}

#[tokio::test]
async fn serve_refuses_a_bad_config_or_a_busy_port_before_probing() {
    let h = Harness::new().await;
    let bad = h.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[web]\nlisten = \"nowhere\"\n[[server]]\nname = \"a.test\"\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
        .args(["serve", "--config", bad.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:2:10: [web] listen: \"nowhere\" is not an address and port"),
        "{err}"
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let config = h.config_file();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            &addr,
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("in use"),
        "{err}"
    );
    assert!(h.dns.queries().is_empty(), "nothing was probed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_reruns_when_dns_records_expire_and_failing_servers_are_probed_sooner() {
    let mut h = Harness::new().await;
    h.extra = MONITOR.replace("interval = \"2s\"", "interval = \"1500ms\"");
    h.dns.set_ttl(1);
    h.servers = vec!["moving.test".into(), "down.test".into()];
    let mut first = h.host("moving.test");
    h.homeserver(&mut first, 8448, "moving.test", "moving.test");
    let mut second = TestHost::claim();
    h.homeserver(&mut second, 8448, "moving.test", "moving.test");
    drop(h.host("down.test"));
    let s = Serve::start(&h.config_file()).await;
    let w = Watcher::start(&s);
    w.until("moving.test", "green", "").await;
    let address = |v: &Value| {
        v["addresses"][0]["address"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        address(&s.server("moving.test").await),
        format!("{}:8448", first.ip)
    );

    // The record changes; once its 1 s TTL has passed, the next round resolves again.
    h.dns.clear("moving.test");
    h.dns.a("moving.test", second.ip);
    let want = format!("{}:8448", second.ip);
    s.wait_for(
        Duration::from_secs(10),
        "the new address to be probed",
        || async { (address(&s.server("moving.test").await) == want).then_some(()) },
    )
    .await;
    assert_eq!(s.server("moving.test").await["status"], "green");

    // A failing server runs rounds every retry_interval (400 ms), a healthy one every 1.5 s.
    w.until("down.test", "red", "").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rounds = |v: Value| v["recent"].as_array().unwrap().len();
    let down = rounds(s.server("down.test").await);
    let healthy = rounds(s.server("moving.test").await);
    assert!(
        down >= healthy + 3,
        "down.test had {down} rounds, moving.test {healthy}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reload_under_load_keeps_the_old_config_serving() {
    let mut h = Harness::new().await;
    h.extra =
        "[monitor]\ninterval = \"1s\"\nretry_interval = \"500ms\"\ntimeout = \"800ms\"\npings = 1\n\
               check_keys = false\nconcurrency = 32\n[storage]\ndata_dir = \"\"\n"
            .into();
    let mut host = TestHost::claim();
    let leaf = h.ca.leaf(&["load.test"]);
    h.serve(&mut host, 8448, leaf, https::homeserver("load.test"));
    for i in 0..300 {
        let name = format!("s{i}.load.test");
        h.dns.srv(
            &format!("_matrix-fed._tcp.{name}"),
            10,
            0,
            8448,
            "load.test",
        );
        h.servers.push(name);
    }
    h.dns.a("load.test", host.ip);
    // The SRV records point every name at load.test, whose certificate must match each name:
    // they are not valid for it, so all 300 are probed to the TLS certificate check and fail
    // there — a full round each, which is the load wanted here.
    let path = h.config_file();
    let s = Serve::start(&path).await;
    s.wait_for(
        Duration::from_secs(15),
        "every server to have a round",
        || async {
            let list = s.json("/api/v1/servers").await;
            (list["summary"]["unknown"] == 0).then_some(())
        },
    )
    .await;
    std::fs::write(&path, "[monitor]\npings = \"many\"\n").unwrap();
    s.signal("HUP");
    s.wait_for(Duration::from_secs(10), "the failed reload", || async {
        s.text("/metrics")
            .await
            .1
            .contains("mxping_config_last_reload_successful 0")
            .then_some(())
    })
    .await;
    let list = s.json("/api/v1/servers").await;
    assert_eq!(list["servers"].as_array().unwrap().len(), 300);
    // Rounds go on for all of them after the failed reload.
    let before: Vec<Value> = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["checked_at"].clone())
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = s.json("/api/v1/servers").await;
    let moved = after["servers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&before)
        .filter(|(v, b)| v["checked_at"] != **b)
        .count();
    assert!(
        moved >= 290,
        "only {moved} of 300 servers were probed again"
    );
    let started = std::time::Instant::now();
    let (code, _) = s.text("/").await;
    assert_eq!(code, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
}
