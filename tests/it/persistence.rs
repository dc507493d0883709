//! History that survives restarts and crashes: the real binary with a store in the harness's
//! temp directory, stopped cleanly, killed with SIGKILL at random moments, and given damaged
//! files.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use crate::support::serve::Serve;
use crate::support::*;

const MONITOR: &str = "[monitor]\ninterval = \"1s\"\nretry_interval = \"300ms\"\ntimeout = \"800ms\"\n\
                       pings = 2\ndown_after = 3\nup_after = 2\n[storage]\nflush_interval = \"200ms\"\n";

async fn setup() -> Harness {
    let mut h = Harness::new().await;
    h.extra = MONITOR.to_owned();
    h.servers = vec!["up.test".into(), "down.test".into()];
    let mut up = h.host("up.test");
    h.homeserver(&mut up, 8448, "up.test", "up.test");
    std::mem::forget(up);
    drop(h.host("down.test"));
    h
}

/// Round times (Unix s) and results in the API's `recent` list.
fn recent(v: &Value) -> Vec<(i64, bool)> {
    v["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["at"].as_i64().unwrap(), s["up"].as_bool().unwrap()))
        .collect()
}

async fn wait_status(s: &Serve, name: &str, status: &str) {
    s.wait_for(
        Duration::from_secs(15),
        &format!("{name} {status}"),
        || async { (s.server(name).await["status"] == status).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_status_uptime_and_history() {
    let h = setup().await;
    let config = h.config_file();
    let mut s = Serve::start(&config).await;
    wait_status(&s, "down.test", "red").await;
    wait_status(&s, "up.test", "green").await;
    let before_up = s.server("up.test").await;
    let before_down = s.server("down.test").await;
    s.signal("TERM");
    assert!(s.child.wait().await.unwrap().success());
    assert!(h.dir.path().join("mxping-data/mxping.sqlite3").exists());

    let s = Serve::start(&config).await;
    // Immediately, before any round of the new run: the saved state is shown.
    let up = s.server("up.test").await;
    let down = s.server("down.test").await;
    assert_eq!(up["status"], "green");
    assert_eq!(down["status"], "red");
    // A round may have finished between the last look and the stop: the restored history is
    // what was seen then, plus at most those last rounds.
    let cause = |v: &Value| {
        v["reason"]
            .as_str()
            .unwrap()
            .split_once(" failed rounds: ")
            .unwrap()
            .1
            .to_owned()
    };
    assert_eq!(cause(&down), cause(&before_down));
    assert_eq!(up["software"]["name"], "Synapse");
    assert!(up["checked_at"].as_str() >= before_up["checked_at"].as_str());
    let (restored, seen) = (recent(&up), recent(&before_up));
    let aligned = (0..=2).any(|extra| {
        restored.len() >= extra
            && restored.len() - extra <= seen.len()
            && restored[..restored.len() - extra] == seen[seen.len() - (restored.len() - extra)..]
    });
    assert!(
        aligned,
        "the same rounds, in order: {seen:?} then {restored:?}"
    );
    assert!(restored.len() >= seen.len().min(58));
    assert_eq!(up["uptime"]["1h"], 1.0);
    let metrics = s.text("/metrics").await.1;
    assert!(metrics.contains("mxping_status{server=\"down.test\",status=\"red\"} 1"));
    // And the history continues: the next rounds are appended to it.
    let n = recent(&up).len();
    s.wait_for(Duration::from_secs(10), "a new round", || async {
        (recent(&s.server("up.test").await).len() > n).then_some(())
    })
    .await;
    // A red server stays red across the restart (no flapping through unknown or yellow).
    let mut seen = BTreeSet::new();
    for _ in 0..10 {
        seen.insert(
            s.server("down.test").await["status"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, BTreeSet::from(["red".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_never_corrupts_and_loses_at_most_a_flush_interval() {
    let h = setup().await;
    // Twenty kills in all, as two monitors with their own stores killed side by side (ten
    // each), so the test waits half as long for the same number of crashes.
    let lineage = |n: usize| {
        let dir = h.dir.path().join(format!("run-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("servers.toml");
        std::fs::write(&config, h.config_text()).unwrap();
        kill_repeatedly(config, 10)
    };
    tokio::join!(lineage(0), lineage(1));
}

/// Starts and SIGKILLs `serve` on `config` `kills` times at random moments, then checks that
/// every round older than a kill's last flush interval survived and the store is intact.
async fn kill_repeatedly(config: std::path::PathBuf, kills: usize) {
    // Rounds that must have survived: seen before a kill and older than that kill's last
    // flush interval (+ 2 s for the whole-second timestamps). Younger ones may be lost.
    let mut must_survive: BTreeSet<(i64, bool)> = BTreeSet::new();
    for i in 0..kills {
        // Each start opens the store and runs SQLite's integrity check: a damaged file would
        // make `serve` exit instead of listening.
        let mut s = Serve::start(&config).await;
        let restored = recent(&s.server("up.test").await);
        let restored_set: BTreeSet<_> = restored.iter().copied().collect();
        let window_start = restored.first().map_or(i64::MAX, |(t, _)| *t);
        for round in must_survive.iter().filter(|(t, _)| *t >= window_start) {
            assert!(
                restored_set.contains(round),
                "run {i}: round {round:?} was lost; restored {restored:?}"
            );
        }
        let pause = rand::rng().random_range(300..1800);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let seen = recent(&s.server("up.test").await);
        // SIGKILL: no flush, no cleanup.
        s.signal("KILL");
        let killed_at = time::OffsetDateTime::now_utc().unix_timestamp();
        let status = s.child.wait().await.unwrap();
        assert!(!status.success());
        must_survive.extend(seen.into_iter().filter(|(t, _)| *t < killed_at - 2));
    }
    // One entry per second (timestamps are whole seconds): rounds of several seconds must
    // have been required to survive, or the kills tested nothing.
    assert!(
        must_survive.len() >= 3,
        "the kills came too early to test anything: {must_survive:?}"
    );
    // After the crashes the history is one continuous record of the runs.
    let s = Serve::start(&config).await;
    let v = s.server("up.test").await;
    let restored: BTreeSet<_> = recent(&v).into_iter().collect();
    let window_start = restored.first().map_or(i64::MAX, |(t, _)| *t);
    for round in must_survive.iter().filter(|(t, _)| *t >= window_start) {
        assert!(
            restored.contains(round),
            "after the last kill: round {round:?} was lost"
        );
    }
    assert!(restored.len() >= 5, "rounds from many runs: {restored:?}");
    assert!(v["uptime"]["1h"].as_f64().unwrap() > 0.99);
    let store = config.with_file_name("mxping-data").join("mxping.sqlite3");
    let conn = rusqlite::Connection::open(store).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test]
async fn a_damaged_store_stops_serve_with_a_clear_error_and_is_left_untouched() {
    let h = setup().await;
    let config = h.config_file();
    let data = h.dir.path().join("mxping-data");
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join("mxping.sqlite3");
    std::fs::write(&file, b"this is not a database").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mxping.sqlite3: the file is not an SQLite database"),
        "{err}"
    );
    assert!(err.contains("never overwrites"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"this is not a database");
    assert!(h.dns.queries().is_empty(), "nothing was probed");
}

#[tokio::test]
async fn an_empty_data_dir_setting_keeps_history_in_memory_only() {
    let mut h = setup().await;
    h.extra = MONITOR.replace("[storage]\n", "[storage]\ndata_dir = \"\"\n");
    let s = Serve::start(&h.config_file()).await;
    wait_status(&s, "up.test", "green").await;
    assert!(!h.dir.path().join("mxping-data").exists());
    assert!(s.log_contains("memory only"));
}
