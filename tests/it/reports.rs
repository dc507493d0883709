//! Reports: `GET /api/v1/servers/{name}/history` exports the stored history per hour or day,
//! as JSON and CSV, with the same numbers the page shows for the same window; every bad
//! request gets a clear 400, and a monitor without a store says why it has nothing to export.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::https::handler;
use crate::support::serve::Serve;
use crate::support::*;

const MONITOR: &str = "[monitor]\ninterval = \"1s\"\nretry_interval = \"1s\"\ntimeout = \"800ms\"\n\
                       pings = 1\ndown_after = 2\nup_after = 1\ncheck_keys = false\n\
                       check_signup = false\ncheck_client = false\n\
                       [storage]\nflush_interval = \"100ms\"\n";

/// `up.test` answers, `flaky.test` answers every other request, `down.test` has no server.
async fn setup() -> Harness {
    let mut h = Harness::new().await;
    h.extra = MONITOR.to_owned();
    h.servers = vec!["up.test".into(), "flaky.test".into(), "down.test".into()];
    let mut up = h.host("up.test");
    h.homeserver(&mut up, 8448, "up.test", "up.test");
    std::mem::forget(up);
    let mut flaky = h.host("flaky.test");
    let n = Arc::new(AtomicU64::new(0));
    h.serve(
        &mut flaky,
        8448,
        h.ca.leaf(&["flaky.test"]),
        handler(move |_| {
            if n.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                Reply::json(json!({"server": {"name": "Synapse", "version": "1.163.2"}}))
            } else {
                Reply::status(502, "Bad Gateway")
            }
        }),
    );
    std::mem::forget(flaky);
    drop(h.host("down.test"));
    h
}

fn export_path(name: &str, step: &str, from: i64) -> String {
    format!("/api/v1/servers/{name}/history?step={step}&from={from}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_export_has_the_pages_numbers_as_json_and_csv() {
    let h = setup().await;
    let s = Serve::start(&h.config_file()).await;
    s.wait_for(
        Duration::from_secs(20),
        "down.test red, rounds of flaky.test",
        || async {
            let down = s.server("down.test").await;
            let flaky = s.server("flaky.test").await;
            (down["status"] == "red" && flaky["recent"].as_array()?.len() >= 6).then_some(())
        },
    )
    .await;

    // The page's uptime per window against the export's totals over the same window; read
    // until no round came between the reads (and the store has flushed).
    for name in ["up.test", "flaky.test", "down.test"] {
        let compared = s
            .wait_for(
                Duration::from_secs(15),
                &format!("{name}: the same numbers"),
                || async {
                    let before = s.server(name).await;
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    let mut exports = Vec::new();
                    for (window, step, span) in [
                        ("24h", "hour", 86_400),
                        ("7d", "hour", 7 * 86_400),
                        ("30d", "day", 30 * 86_400),
                        ("90d", "day", 90 * 86_400),
                    ] {
                        let e = s.json(&export_path(name, step, now - span)).await;
                        exports.push((window, e));
                    }
                    let after = s.server(name).await;
                    if before["recent"] != after["recent"] {
                        return None;
                    }
                    let same = exports
                        .iter()
                        .all(|(w, e)| e["total"]["uptime"] == after["uptime"][*w]);
                    same.then_some((after, exports))
                },
            )
            .await;
        let (view, exports) = compared;
        let (_, day) = &exports[2];
        assert!(day["total"]["rounds"].as_u64().unwrap() >= 2, "{day}");
        if name == "flaky.test" {
            let u = view["uptime"]["24h"].as_f64().unwrap();
            assert!(u > 0.2 && u < 0.8, "every other round: {u}");
        }
        if name == "down.test" {
            assert_eq!(view["uptime"]["24h"], 0.0);
            assert_eq!(day["total"]["incidents"], 1, "one outage began: {day}");
        }
        // The steps: 30 days of day steps (31 when the window starts mid-day), empty ones
        // with null uptime.
        let steps = day["steps"].as_array().unwrap();
        assert!((30..=31).contains(&steps.len()), "{}", steps.len());
        assert!(steps[0]["uptime"].is_null() && steps[0]["rounds"] == 0);
        let today = steps.last().unwrap();
        assert_eq!(today["rounds"], day["total"]["rounds"]);
        if name == "up.test" {
            let p50 = today["latency_p50_ms"].as_f64().unwrap();
            assert!(p50 > 0.0 && today["latency_mean_ms"].as_f64().unwrap() > 0.0);
            // Within the same hour, the 24-hour median the page shows is the day's.
            let (_, hour) = &exports[0];
            let with_rounds = hour["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["rounds"].as_u64().unwrap() > 0)
                .count();
            if with_rounds == 1 {
                assert_eq!(view["latency_p50_ms"].as_f64().unwrap(), p50, "{view}");
            }
        }
    }

    // CSV: a header and one line per step, the same numbers.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let r = s
        .get(&format!(
            "{}&format=csv",
            export_path("flaky.test", "day", now - 3 * 86_400)
        ))
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "start,rounds,up,uptime,latency_mean_ms,latency_p50_ms,latency_p95_ms,incidents,maintenance_s"
    );
    assert!((4..=5).contains(&lines.len()), "{csv}");
    assert!(
        lines[1].ends_with(",0,0,,,,,0,0"),
        "an empty day: {}",
        lines[1]
    );
    let last: Vec<&str> = lines.last().unwrap().split(',').collect();
    assert_eq!(last.len(), 9);
    assert!(last[1].parse::<u32>().unwrap() >= 2 && last[2].parse::<u32>().unwrap() >= 1);

    // Dates and RFC 3339 times are read; the end is excluded.
    let today = time::OffsetDateTime::now_utc().date();
    let e = s
        .json(&format!(
            "/api/v1/servers/up.test/history?from={today}&to={}",
            today.next_day().unwrap()
        ))
        .await;
    assert_eq!(e["steps"].as_array().unwrap().len(), 1, "{e}");
    assert_eq!(e["from"], format!("{today}T00:00:00Z"));

    // Bad requests.
    for (query, says) in [
        ("step=week", "step=\"week\" is not a step; use hour or day"),
        ("format=xml", "format=\"xml\": use json or csv"),
        ("from=yesterday", "from=\"yesterday\" is not a time"),
        ("from=2026-13-40", "is not a time"),
        ("from=2030-01-02&to=2030-01-01", "must be before to"),
        (
            "step=hour&from=2020-01-01",
            "hour steps are kept for 7 days",
        ),
        (
            "step=day&from=2000-01-01",
            "day steps are kept for 400 days",
        ),
    ] {
        let (code, body) = s
            .text(&format!("/api/v1/servers/up.test/history?{query}"))
            .await;
        assert_eq!(code, 400, "{query}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["message"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
    let (code, body) = s.text("/api/v1/servers/nowhere.test/history").await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("is not monitored here"));
    // The detail page links the CSV in both languages.
    for (lang, words) in [
        ("en", "Uptime and latency per day"),
        ("zh", "每天的可用率与延迟"),
    ] {
        let (_, page) = s.text(&format!("/server/up.test?lang={lang}")).await;
        let doc = scraper::Html::parse_document(&page);
        let link = doc
            .select(&scraper::Selector::parse("a[download]").unwrap())
            .next()
            .unwrap_or_else(|| panic!("{lang}: no download link"));
        assert_eq!(
            link.value().attr("href"),
            Some("/api/v1/servers/up.test/history?step=day&format=csv")
        );
        assert!(link.text().collect::<String>().contains(words), "{lang}");
    }
    // The monitor is unharmed.
    assert_eq!(s.server("up.test").await["status"], "green");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_there_is_nothing_to_export_and_it_says_so() {
    let mut h = setup().await;
    h.extra = MONITOR.replace("[storage]\n", "[storage]\ndata_dir = \"\"\n");
    let s = Serve::start(&h.config_file()).await;
    let (code, body) = s.text("/api/v1/servers/up.test/history").await;
    assert_eq!(code, 404, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "no_history");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("[storage] data_dir is empty")
    );
}
