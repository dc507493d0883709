//! `[[source]]` public server lists in: a local file and an HTTPS URL (through the guard)
//! merged with `[[server]]` (which wins), refreshed, and rejected whole when broken or
//! hostile while the last good copy keeps running — with `mxping serve` over real HTTP.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::https::handler;
use crate::support::serve::Serve;
use crate::support::*;

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    n.sort();
    n
}

fn list(names: &[&str]) -> String {
    let entries: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "description": format!("{n} from the list"), "staff_jur": "Iceland"}))
        .collect();
    json!({"public_servers": entries}).to_string()
}

#[tokio::test]
async fn lists_from_a_file_and_a_url_merge_refresh_and_survive_bad_copies() {
    let mut h = Harness::new().await;
    let dir = h.dir.path().to_owned();
    let file = dir.join("list.json");
    std::fs::write(&file, list(&["a.test", "b.test", "config.test"])).unwrap();
    // The URL list is served over HTTPS on loopback; what it serves can be changed.
    let served = std::sync::Arc::new(std::sync::Mutex::new(list(&["u.test"])));
    let mut lists = h.host("lists.test");
    let body = served.clone();
    h.serve(
        &mut lists,
        443,
        h.ca.leaf(&["lists.test"]),
        handler(move |s| match s.path.as_str() {
            "/servers.json" => Reply::status(200, body.lock().unwrap().clone()),
            _ => Reply::not_found(),
        }),
    );
    h.servers = vec!["config.test".into()];
    h.extra = format!(
        "[monitor]\ninterval = \"30s\"\ntimeout = \"2s\"\ncheck_signup = false\n\
         [[source]]\npath = \"{}\"\nrefresh = \"1s\"\nmax_servers = 5\n\
         [[source]]\nurl = \"https://lists.test/servers.json\"\nrefresh = \"1s\"\n",
        file.display()
    );
    let config = h.config_file();
    let text = std::fs::read_to_string(&config).unwrap();
    let title = text.replace(
        "[[server]]\nname = \"config.test\"\n",
        "[[server]]\nname = \"config.test\"\ntitle = \"From the config\"\n",
    );
    std::fs::write(&config, title).unwrap();
    let s = Serve::start(&config).await;
    let v = s.json("/api/v1/servers").await;
    assert_eq!(names(&v), ["a.test", "b.test", "config.test", "u.test"]);
    let c = s.server("config.test").await;
    assert_eq!(c["title"], "From the config", "the config's entry wins");
    assert!(
        c["facts"]["jurisdiction"].is_null(),
        "nothing of the list's entry"
    );
    let a = s.server("a.test").await;
    assert_eq!(a["description"]["en"], "a.test from the list");
    assert_eq!(a["facts"]["jurisdiction"], "Iceland");

    // The file changes: b.test leaves, c.test arrives.
    std::fs::write(&file, list(&["a.test", "c.test"])).unwrap();
    s.wait_for(Duration::from_secs(10), "the new file list", || async {
        let v = s.json("/api/v1/servers").await;
        (names(&v) == ["a.test", "c.test", "config.test", "u.test"]).then_some(())
    })
    .await;

    // Broken copies are rejected whole, each with its reason; the last good ones keep running.
    let bad_lists = [
        ("not JSON", "<html>oops</html>".to_owned()),
        (
            "too many",
            list(&[
                "s1.test", "s2.test", "s3.test", "s4.test", "s5.test", "s6.test",
            ]),
        ),
        ("an invalid name", list(&["fine.test", "not a name"])),
    ];
    for (what, bad) in bad_lists {
        std::fs::write(&file, bad).unwrap();
        let says = match what {
            "not JSON" => "the list is not JSON",
            "too many" => "6 entries, more than max_servers = 5",
            _ => "1 invalid entry: \"not a name\"",
        };
        s.wait_for(Duration::from_secs(10), what, || async {
            s.log_contains(says).then_some(())
        })
        .await;
        let v = s.json("/api/v1/servers").await;
        assert_eq!(
            names(&v),
            ["a.test", "c.test", "config.test", "u.test"],
            "{what}"
        );
    }
    assert!(s.log_contains("the last good copy (2 servers) keeps running"));
    let (_, metrics) = s.text("/metrics").await;
    let label = file.display().to_string();
    assert!(
        metrics.contains(&format!("mxping_source_ok{{source=\"{label}\"}} 0")),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("mxping_source_servers{{source=\"{label}\"}} 2")));
    assert!(metrics.contains("mxping_source_ok{source=\"https://lists.test/servers.json\"} 1"));

    // A huge body from the URL: rejected, bounded; then the URL list changes for real.
    *served.lock().unwrap() = " ".repeat(9 * 1024 * 1024);
    s.wait_for(
        Duration::from_secs(10),
        "the huge list rejected",
        || async { s.log_contains("larger than 8192 KiB").then_some(()) },
    )
    .await;
    *served.lock().unwrap() = list(&["u.test", "v.test"]);
    s.wait_for(Duration::from_secs(10), "the new URL list", || async {
        let v = s.json("/api/v1/servers").await;
        names(&v).contains(&"v.test".to_owned()).then_some(())
    })
    .await;
}

/// A list URL pointing at an address outside `[network] allow` is never fetched.
#[tokio::test]
async fn a_list_url_on_a_private_address_is_refused_by_the_guard() {
    let mut h = Harness::new().await;
    let trip = Tripwire::claim();
    let placeholder = TestHost::claim();
    h.allow_only = vec![placeholder.ip];
    h.servers = vec!["config.test".into()];
    h.extra = format!(
        "[monitor]\ninterval = \"30s\"\ntimeout = \"2s\"\ncheck_signup = false\n\
         [[source]]\nurl = \"https://{}/servers.json\"\n",
        trip.ip
    );
    let s = Serve::start(&h.config_file()).await;
    s.wait_for(Duration::from_secs(10), "the refusal", || async {
        s.log_contains("server list https://").then_some(())
    })
    .await;
    assert!(s.log_contains("blocked_address"), "the guard refused it");
    assert_eq!(names(&s.json("/api/v1/servers").await), ["config.test"]);
    trip.assert_untouched("a [[source]] url").await;
}
