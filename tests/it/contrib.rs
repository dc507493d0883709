//! What ships for operators: the alert rules and their unit tests pass promtool, every PromQL
//! expression of the Grafana dashboard is valid, and every mxping metric they use exists in a
//! running monitor's /metrics.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::serve::Serve;
use crate::support::*;

const CONTRIB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib");

fn promtool(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool is needed: apt-get install prometheus (.ci/run does)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Every `expr` of every panel target, with Grafana's variables replaced by values Prometheus
/// accepts.
pub(crate) fn dashboard_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("{CONTRIB}/grafana/mxping-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "5m")
                .replace("$__range", "1h")
                .replace("$__interval", "1m")
                .replace("$server", ".*");
            let name = format!(
                "{} / {}",
                panel["title"].as_str().unwrap(),
                target["refId"].as_str().unwrap()
            );
            out.push((name, expr));
        }
    }
    out
}

#[test]
fn alert_rules_are_valid_and_their_unit_tests_pass() {
    let (ok, out) = promtool(&[
        "check",
        "rules",
        &format!("{CONTRIB}/prometheus/alerts.yml"),
    ]);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&[
        "test",
        "rules",
        &format!("{CONTRIB}/prometheus/alerts_test.yml"),
    ]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    let (ok, out) = promtool(&[
        "check",
        "config",
        &format!("{CONTRIB}/prometheus/prometheus.yml"),
    ]);
    assert!(ok, "{out}");
}

#[test]
fn every_dashboard_expression_is_valid_promql() {
    let text = std::fs::read_to_string(format!("{CONTRIB}/grafana/mxping-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    // A datasource variable, used by every panel, so the dashboard imports anywhere.
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource")
    );
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
    }
    let exprs = dashboard_expressions();
    assert!(exprs.len() >= 9);
    // promtool checks PromQL in rule files: one recording rule per expression.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in exprs.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-rules.yml");
    std::fs::write(&path, rules).unwrap();
    let (ok, out) = promtool(&["check", "rules", path.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_use_exists() {
    let mut h = Harness::new().await;
    // A hub (one [[vantage]]), so the hub's metrics the rules use are exported too.
    h.extra = "[monitor]\ninterval = \"1s\"\ntimeout = \"800ms\"\n[[vantage]]\nname = \"asia\"\n\
               public_key = \"BgmJc/3d2sA6R9cB27/VhgPZ6v6cDEzN3xO7kF8Z9SI\"\n"
        .into();
    h.servers = vec!["example.test".into()];
    let mut host = h.host("example.test");
    h.homeserver(&mut host, 8448, "example.test", "example.test");
    let s = Serve::start(&h.config_file()).await;
    s.wait_for(Duration::from_secs(10), "a round", || async {
        (s.server("example.test").await["status"] == "green").then_some(())
    })
    .await;
    let metrics = s.text("/metrics").await.1;
    let exposed: BTreeSet<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut used = BTreeSet::new();
    let alerts = std::fs::read_to_string(format!("{CONTRIB}/prometheus/alerts.yml")).unwrap();
    let exprs: Vec<String> = dashboard_expressions()
        .into_iter()
        .map(|(_, e)| e)
        .chain([alerts])
        .collect();
    for expr in &exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("mxping_") {
                let base = word
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_count")
                    .trim_end_matches("_sum");
                used.insert(base.to_owned());
            }
        }
    }
    assert!(used.len() >= 10, "{used:?}");
    for name in &used {
        assert!(
            exposed.contains(name.as_str()),
            "{name} is used but not exported; exported: {exposed:?}"
        );
    }
}
