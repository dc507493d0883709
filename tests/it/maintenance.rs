//! Maintenance windows from the real `mxping serve`, started and ended with the real
//! `mxping maintenance` command and the admin API, against a target on loopback that goes down
//! on demand and a webhook receiver: during a window the server is shown as in maintenance,
//! its outage costs no uptime and alerts nothing, the window's start and end are one alert
//! each (or a down alert, when the server is still down at the end), the window survives
//! `kill -9`, and every wrong call is refused clearly without changing anything.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::https::{handler, homeserver};
use crate::support::serve::Serve;
use crate::support::{Harness, Reply, TestHost};

const TOKEN: &str = "an admin token of some length\n";

struct Setup {
    h: Harness,
    down: Arc<AtomicBool>,
    _target: TestHost,
    hook_host: TestHost,
}

/// A target that is green at once and red after two failed rounds, a webhook channel, a
/// store, and (`admin`) the admin API.
async fn setup(admin: bool, extra: &str) -> Setup {
    let mut h = Harness::new().await;
    let mut target = h.host("target.test");
    let down = Arc::new(AtomicBool::new(false));
    let leaf = h.ca.leaf(&["target.test"]);
    let up = homeserver("target.test");
    let d = down.clone();
    h.serve(
        &mut target,
        8448,
        leaf,
        handler(move |seen| {
            if d.load(Ordering::SeqCst) {
                Reply::status(503, "down")
            } else {
                up(seen)
            }
        }),
    );
    let hook_host = h.host("hooks.test");
    let secret = h.dir.path().join("webhook.secret");
    std::fs::write(&secret, "a webhook secret").unwrap();
    let token = h.dir.path().join("admin.token");
    std::fs::write(&token, TOKEN).unwrap();
    h.servers = vec!["target.test".into()];
    h.extra = format!(
        "[monitor]\ninterval = \"1s\"\nretry_interval = \"500ms\"\ntimeout = \"800ms\"\n\
         down_after = 2\nup_after = 2\ncheck_keys = false\ncheck_client = false\n\
         check_signup = false\n\
         [web]\n{admin}\
         [storage]\ndata_dir = \"{data}\"\n\
         [[alert]]\ntype = \"webhook\"\nurl = \"https://hooks.test/hook\"\nsecret_file = \"{secret}\"\n\
         {extra}",
        admin = if admin {
            format!("admin_token_file = \"{}\"\n", token.display())
        } else {
            String::new()
        },
        data = h.dir.path().join("data").display(),
        secret = secret.display(),
    );
    Setup {
        h,
        down,
        _target: target,
        hook_host,
    }
}

/// `mxping maintenance ARGS` against `s`: exit code, stdout, stderr.
async fn command(config: &Path, s: &Serve, args: &[&str]) -> (i32, String, String) {
    cli("maintenance", config, s, args).await
}

/// `mxping SUBCOMMAND ARGS` against `s`: exit code, stdout, stderr.
async fn cli(subcommand: &str, config: &Path, s: &Serve, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
        .arg(subcommand)
        .args(args)
        .args(["--config", config.to_str().unwrap(), "--url", &s.url("")])
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn status(s: &Serve) -> String {
    s.server("target.test").await["status"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn wait_status(s: &Serve, want: &str, limit: Duration) {
    s.wait_for(limit, want, || async {
        (status(s).await == want).then_some(())
    })
    .await;
}

async fn metric(s: &Serve, line_start: &str) -> Option<f64> {
    let (_, text) = s.text("/metrics").await;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Every webhook delivery, once per delivery ID: a POST that arrived just before a `kill -9`
/// is sent again with the same ID after the restart, and receivers deduplicate on it.
fn events(hooks: &crate::support::HttpsServer) -> Vec<Value> {
    let mut ids = std::collections::HashSet::new();
    hooks
        .seen()
        .iter()
        .filter(|x| ids.insert(x.header("webhook-id").unwrap_or_default().to_owned()))
        .map(|x| serde_json::from_slice(&x.body).unwrap())
        .collect()
}

#[tokio::test]
async fn an_outage_inside_a_window_costs_no_uptime_and_alerts_only_the_window() {
    let mut t = setup(true, "").await;
    let leaf = t.h.ca.leaf(&["hooks.test"]);
    let hooks = t.h.serve(
        &mut t.hook_host,
        443,
        leaf,
        handler(|_| Reply::status(204, "")),
    );
    let config = t.h.config_file();
    let s = Serve::start(&config).await;
    wait_status(&s, "green", Duration::from_secs(20)).await;
    assert_eq!(
        metric(&s, "mxping_maintenance{server=\"target.test\"}").await,
        Some(0.0)
    );

    let (code, out, err) = command(
        &config,
        &s,
        &[
            "start",
            "target.*",
            "--for",
            "10m",
            "--note",
            "upgrading Synapse, back at 14:00",
            "--by",
            "alice",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("maintenance of 1 server(s) until "), "{out}");
    assert!(out.contains("target.test"), "{out}");
    // Shown at once, not at the next round.
    wait_status(&s, "maintenance", Duration::from_millis(900)).await;
    let server = s.server("target.test").await;
    assert_eq!(
        server["maintenance"]["note"],
        "upgrading Synapse, back at 14:00"
    );
    assert_eq!(server["maintenance"]["by"], "alice");
    assert_eq!(server["maintenance"]["source"], "admin");
    assert!(
        server["reason"]
            .as_str()
            .unwrap()
            .contains("maintenance until"),
        "{server}"
    );
    assert_eq!(
        metric(&s, "mxping_maintenance{server=\"target.test\"}").await,
        Some(1.0)
    );
    assert_eq!(
        metric(
            &s,
            "mxping_status{server=\"target.test\",status=\"maintenance\"}"
        )
        .await,
        Some(1.0)
    );
    s.wait_for(Duration::from_secs(10), "the window's alert", || async {
        (!hooks.seen().is_empty()).then_some(())
    })
    .await;
    let sent = events(&hooks);
    assert_eq!(sent[0]["event"], "fired", "{sent:?}");
    assert_eq!(sent[0]["status"], "maintenance");
    assert!(
        sent[0]["text"]
            .as_str()
            .unwrap()
            .contains("upgrading Synapse"),
        "{sent:?}"
    );
    let page = s.text("/server/target.test").await.1;
    assert!(
        page.contains("in maintenance"),
        "the word, not only a colour"
    );
    assert!(page.contains("upgrading Synapse, back at 14:00"));
    let zh = s.text("/server/target.test?lang=zh").await.1;
    assert!(zh.contains("维护中") && zh.contains("计划维护"), "{zh}");
    let uptime_before = s.server("target.test").await["uptime"]["1h"].clone();
    assert_eq!(uptime_before, json!(1.0));

    // Down for many rounds, then up again, inside the window.
    t.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(status(&s).await, "maintenance");
    let server = s.server("target.test").await;
    assert!(server["failed_rounds"].as_u64().unwrap() >= 3, "{server}");
    t.down.store(false, Ordering::SeqCst);
    s.wait_for(Duration::from_secs(10), "the rounds to recover", || async {
        (s.server("target.test").await["failed_rounds"] == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server = s.server("target.test").await;
    assert_eq!(server["status"], "maintenance");
    assert_eq!(
        server["uptime"]["1h"], uptime_before,
        "the outage in the window is not counted"
    );
    assert_eq!(hooks.seen().len(), 1, "no alert inside the window");

    let (code, out, err) = command(&config, &s, &["end", "target.test"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("maintenance of target.test ended at"), "{out}");
    wait_status(&s, "green", Duration::from_millis(900)).await;
    s.wait_for(Duration::from_secs(10), "the window's end", || async {
        (hooks.seen().len() >= 2).then_some(())
    })
    .await;
    let sent = events(&hooks);
    assert_eq!(sent[1]["event"], "resolved", "{sent:?}");
    assert_eq!(sent[1]["previous"], "maintenance");
    assert_eq!(sent[1]["status"], "green");
    assert_eq!(s.server("target.test").await["maintenance"], Value::Null);
    let feed = s.text("/feed.atom").await.1;
    assert!(feed.contains("in maintenance"), "{feed}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hooks.seen().len(), 2, "{:?}", events(&hooks));
    assert_eq!(s.server("target.test").await["uptime"]["1h"], json!(1.0));
    // The export counts the window's seconds beside the uptime it left alone.
    let export = s
        .json("/api/v1/servers/target.test/history?step=hour")
        .await;
    let seconds = export["total"]["maintenance_s"].as_i64().unwrap();
    assert!((5..60).contains(&seconds), "{export}");
    let csv = s
        .text("/api/v1/servers/target.test/history?step=hour&format=csv")
        .await
        .1;
    assert!(
        csv.lines().next().unwrap().ends_with(",maintenance_s"),
        "{csv}"
    );
}

#[tokio::test]
async fn a_server_still_down_when_its_window_ends_alerts_at_once_and_a_window_survives_kill_9() {
    let mut t = setup(true, "").await;
    let leaf = t.h.ca.leaf(&["hooks.test"]);
    let hooks = t.h.serve(
        &mut t.hook_host,
        443,
        leaf,
        handler(|_| Reply::status(204, "")),
    );
    let config = t.h.config_file();
    let s = Serve::start(&config).await;
    wait_status(&s, "green", Duration::from_secs(20)).await;
    let (code, out, err) = command(
        &config,
        &s,
        &["start", "target.test", "--for", "1h", "--note", "disk swap"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    wait_status(&s, "maintenance", Duration::from_secs(2)).await;

    // Killed without a chance to save anything: the window is back after the restart.
    s.signal("KILL");
    drop(s);
    let s = Serve::start(&config).await;
    wait_status(&s, "maintenance", Duration::from_secs(5)).await;
    assert_eq!(
        s.server("target.test").await["maintenance"]["note"],
        "disk swap"
    );

    t.down.store(true, Ordering::SeqCst);
    s.wait_for(Duration::from_secs(15), "two failed rounds", || async {
        (s.server("target.test").await["failed_rounds"].as_u64() >= Some(2)).then_some(())
    })
    .await;
    assert_eq!(status(&s).await, "maintenance");
    let (code, out, err) = command(&config, &s, &["end", "target.test"]).await;
    assert_eq!(code, 0, "{out}{err}");
    // Red at once: the rounds in the window already confirmed it.
    wait_status(&s, "red", Duration::from_millis(900)).await;
    s.wait_for(Duration::from_secs(10), "the down alert", || async {
        events(&hooks)
            .iter()
            .any(|e| e["status"] == "red")
            .then_some(())
    })
    .await;
    let sent = events(&hooks);
    let red = sent.iter().find(|e| e["status"] == "red").unwrap();
    assert_eq!(red["event"], "changed", "{sent:?}");
    assert_eq!(red["previous"], "maintenance");
    // The window's start was announced once, though the monitor restarted within it.
    let started = sent.iter().filter(|e| e["status"] == "maintenance").count();
    assert_eq!(started, 1, "{sent:?}");
}

#[tokio::test]
async fn the_admin_api_refuses_clearly_and_changes_nothing() {
    let t = setup(true, "").await;
    let config = t.h.config_file();
    let s = Serve::start(&config).await;
    wait_status(&s, "green", Duration::from_secs(20)).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: &str, auth: Option<&str>, body: String| {
        let mut r = client
            .post(s.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let good = format!("Bearer {}", TOKEN.trim());
    let start = |servers: &str, duration: &str, note: &str| {
        json!({"servers": servers, "duration": duration, "note": note}).to_string()
    };
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (None, start("target.test", "1h", ""), 401, "unauthorized"),
        (
            Some("Bearer wrong token of the same size!!"),
            start("target.test", "1h", ""),
            401,
            "unauthorized",
        ),
        (
            Some(TOKEN.trim()),
            start("target.test", "1h", ""),
            401,
            "unauthorized",
        ),
        (
            Some(&good),
            start("nothing.test", "1h", ""),
            404,
            "no_server",
        ),
        (
            Some(&good),
            start("target.test", "30s", ""),
            400,
            "bad_duration",
        ),
        (
            Some(&good),
            start("target.test", "8d", ""),
            400,
            "bad_duration",
        ),
        (
            Some(&good),
            start("target.test", "soon", ""),
            400,
            "bad_duration",
        ),
        (
            Some(&good),
            start("target.test", "1h", &"x".repeat(100 * 1024)),
            413,
            "note_too_long",
        ),
        (Some(&good), "{\"servers\": 1}".into(), 400, "bad_request"),
        (Some(&good), "not json".into(), 400, "bad_request"),
    ];
    for (auth, body, want, code) in cases {
        let r = post("/api/v1/admin/maintenance", auth, body.clone())
            .await
            .unwrap();
        let got = r.status().as_u16();
        let doc: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(
            (got, doc["error"].as_str().unwrap()),
            (want, code),
            "{auth:?} {}: {doc}",
            &body[..body.len().min(80)]
        );
        assert!(!doc["message"].as_str().unwrap().is_empty());
    }
    let r = post(
        "/api/v1/admin/maintenance/end",
        Some(&good),
        json!({"server": "target.test"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("not in a maintenance window"),
        "ending what is not there"
    );
    for (auth, want) in [(None, 401), (Some("Bearer nope"), 401)] {
        let r = post(
            "/api/v1/admin/note",
            auth,
            json!({"server": "target.test", "text": "hi"}).to_string(),
        )
        .await
        .unwrap();
        assert_eq!(r.status().as_u16(), want);
    }
    let r = post(
        "/api/v1/admin/note",
        Some(&good),
        json!({"server": "target.test", "text": "hi", "colour": "red"}).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400, "unknown fields are refused");
    assert!(r.text().await.unwrap().contains("unknown field `colour`"));
    assert_eq!(s.server("target.test").await["incident"], Value::Null);
    assert!(s.log_contains("refused: missing or wrong token"));
    // Nothing changed.
    assert_eq!(status(&s).await, "green");
    assert_eq!(s.server("target.test").await["maintenance"], Value::Null);
    // The command line says the same, with exit code 1 for a refusal...
    let (code, _, err) = command(&config, &s, &["start", "nothing.test", "--for", "1h"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("\"nothing.test\" matches no monitored server"),
        "{err}"
    );
    // ...and 2 for what the command or config gets wrong.
    let (code, _, err) = command(&config, &s, &["start", "target.test"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--for"), "{err}");
}

#[tokio::test]
async fn without_a_token_file_there_is_no_admin_api_and_a_short_token_stops_the_start() {
    let t = setup(false, "").await;
    let config = t.h.config_file();
    let s = Serve::start(&config).await;
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(s.url("/api/v1/admin/maintenance"))
        .header("authorization", format!("Bearer {}", TOKEN.trim()))
        .body(json!({"servers": "target.test", "duration": "1h"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().await.unwrap().contains("admin_token_file"));
    let (code, _, err) = command(&config, &s, &["start", "target.test", "--for", "1h"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("has no [web] admin_token_file"), "{err}");
    drop(s);

    let t = setup(true, "").await;
    std::fs::write(t.h.dir.path().join("admin.token"), "short\n").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxping"))
        .args(Serve::args(&t.h.config_file(), "127.0.0.1:0"))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[web] admin_token_file") && err.contains("shorter than 16 characters"),
        "{err}"
    );
}

#[tokio::test]
async fn a_window_planned_in_the_config_shows_from_the_start() {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let fmt = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let t = setup(
        true,
        &format!(
            "[[maintenance]]\nservers = [\"target.*\"]\nstart = \"{}\"\nend = \"{}\"\nnote = \"planned move\"\n",
            fmt(now - 60),
            fmt(now + 3600)
        ),
    )
    .await;
    let config = t.h.config_file();
    let s = Serve::start(&config).await;
    wait_status(&s, "maintenance", Duration::from_secs(5)).await;
    let m = s.server("target.test").await["maintenance"].clone();
    assert_eq!(
        (m["note"].as_str(), m["source"].as_str()),
        (Some("planned move"), Some("config"))
    );
    // Planned in the config: ended by changing the config, which the refusal says.
    let (code, _, err) = command(&config, &s, &["end", "target.test"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("planned in the config"), "{err}");
}

/// `page` with the numeric entities of `<` and `>` (askama's) written as named ones (ours).
fn entities(page: &str) -> String {
    page.replace("&#60;", "&lt;").replace("&#62;", "&gt;")
}

/// `mxping note ARGS` against `s`: exit code, stdout, stderr.
async fn note(config: &Path, s: &Serve, args: &[&str]) -> (i32, String, String) {
    cli("note", config, s, args).await
}

#[tokio::test]
async fn a_note_on_a_real_outage_shows_on_the_pages_the_feed_and_the_alerts_and_ends_with_it() {
    let mut t = setup(true, "").await;
    let leaf = t.h.ca.leaf(&["hooks.test"]);
    let hooks = t.h.serve(
        &mut t.hook_host,
        443,
        leaf,
        handler(|_| Reply::status(204, "")),
    );
    let config = t.h.config_file();
    let s = Serve::start(&config).await;
    wait_status(&s, "green", Duration::from_secs(20)).await;
    // Nothing to resolve yet, and bad notes: refused, nothing kept.
    let (code, _, err) = note(&config, &s, &["target.test", "--resolve"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("has no open incident to resolve"), "{err}");
    let long = "x".repeat(100 * 1024);
    let (code, _, err) = note(&config, &s, &["target.test", &long]).await;
    assert_eq!(code, 1);
    assert!(err.contains("at most 500 are kept"), "{err}");
    let (code, _, err) = note(&config, &s, &["nothing.test", "hello"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("matches no monitored server"), "{err}");
    let (code, _, err) = note(&config, &s, &["target.test", " "]).await;
    assert_eq!(code, 1);
    assert!(err.contains("the note is empty"), "{err}");
    assert_eq!(s.server("target.test").await["incident"], Value::Null);

    t.down.store(true, Ordering::SeqCst);
    wait_status(&s, "red", Duration::from_secs(15)).await;
    s.wait_for(Duration::from_secs(10), "the down alert", || async {
        (!hooks.seen().is_empty()).then_some(())
    })
    .await;
    let text = "Restoring the <b>database</b> from backup; back by 14:00";
    let (code, out, err) = note(
        &config,
        &s,
        &["target.test", text, "--until-recovered", "--by", "alice"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("the incident of target.test has 1 note(s)"),
        "{out}"
    );
    s.wait_for(
        Duration::from_secs(2),
        "the incident in the API",
        || async {
            let i = s.server("target.test").await["incident"].clone();
            (i["notes"][0]["text"] == text).then_some(())
        },
    )
    .await;
    let incident = s.server("target.test").await["incident"].clone();
    assert_eq!(incident["notes"][0]["by"], "alice");
    assert_eq!(incident["resolved_at"], Value::Null);
    assert_eq!(incident["until_recovered"], true);
    let escaped = "Restoring the &lt;b&gt;database&lt;/b&gt; from backup";
    // The status page is rebuilt within a second of a change.
    let index = s
        .wait_for(
            Duration::from_secs(3),
            "the note on the status page",
            || async {
                let page = entities(&s.text("/").await.1);
                page.contains(escaped).then_some(page)
            },
        )
        .await;
    assert!(!index.contains("<b>database"), "never as HTML");
    let detail = entities(&s.text("/server/target.test").await.1);
    let section = &detail[detail
        .find("id=\"incident\"")
        .expect("the incident section")..];
    let section = &section[..section.find("</section>").unwrap()];
    assert!(section.contains(escaped), "{section}");
    assert!(
        section.contains("Note from <bdi class=\"said\">alice</bdi>"),
        "{section}"
    );
    assert!(
        section.contains("Status: operational → degraded")
            && section.contains("Status: degraded → down"),
        "the status changes of the outage are in the timeline: {section}"
    );
    let zh = s.text("/server/target.test?lang=zh").await.1;
    assert!(
        zh.contains("事件经过") && zh.contains("alice</bdi> 的说明"),
        "{zh}"
    );
    let feed = s.text("/feed.atom").await.1;
    assert!(feed.contains("target.test: note from alice"), "{feed}");
    assert!(feed.contains(escaped), "{feed}");
    s.wait_for(Duration::from_secs(10), "the note's POST", || async {
        events(&hooks)
            .iter()
            .any(|e| e["event"] == "note")
            .then_some(())
    })
    .await;
    let sent = events(&hooks);
    let posted = sent.iter().find(|e| e["event"] == "note").unwrap();
    assert_eq!(posted["note"], text);
    assert_eq!(posted["by"], "alice");

    // The outage ends: the incident opened "until recovered" ends with it.
    t.down.store(false, Ordering::SeqCst);
    wait_status(&s, "green", Duration::from_secs(15)).await;
    s.wait_for(Duration::from_secs(2), "the incident resolved", || async {
        let i = s.server("target.test").await["incident"].clone();
        i["resolved_at"].is_string().then_some(())
    })
    .await;
    s.wait_for(
        Duration::from_secs(3),
        "the note to leave the row",
        || async { (!entities(&s.text("/").await.1).contains(escaped)).then_some(()) },
    )
    .await;
    let detail = s.text("/server/target.test").await.1;
    assert!(
        detail.contains("Resolved by <bdi class=\"said\">mxping</bdi>"),
        "but stays on the detail page"
    );
    // Its notes survive a kill -9.
    s.signal("KILL");
    drop(s);
    let s = Serve::start(&config).await;
    let incident = s.server("target.test").await["incident"].clone();
    assert_eq!(incident["notes"][0]["text"], text, "{incident}");
    assert!(incident["resolved_at"].is_string());
}

#[tokio::test]
async fn the_monthly_report_gives_last_months_numbers_once() {
    use mxping::testing::{BucketRow, Delta, Event, Retention, RoundRecord, Sample, Store};
    let mut t = setup(true, "report = \"monthly\"\n").await;
    let leaf = t.h.ca.leaf(&["hooks.test"]);
    let hooks = t.h.serve(
        &mut t.hook_host,
        443,
        leaf,
        handler(|_| Reply::status(204, "")),
    );
    // Last month in the store: every day 2880 rounds, the 10th with 288 down, the third week
    // slower, and one outage.
    let now = time::OffsetDateTime::now_utc();
    let first = now.date().replace_day(1).unwrap();
    let last_month = first.previous_day().unwrap().replace_day(1).unwrap();
    let from = last_month.midnight().assume_utc().unix_timestamp();
    let to = first.midnight().assume_utc().unix_timestamp();
    let days = (to - from) / 86_400;
    let buckets: Vec<BucketRow> = (0..days)
        .map(|d| BucketRow {
            width: 86_400,
            start: from + d * 86_400,
            rounds: 2880,
            up: if d == 9 { 2880 - 288 } else { 2880 },
            latency_sum: if (14..21).contains(&d) {
                2880.0 * 300.0
            } else {
                2880.0 * 80.0
            },
            latency_n: 2880,
        })
        .collect();
    let data = t.h.dir.path().join("data");
    let retention = Retention {
        raw: Duration::from_secs(3 * 86_400),
        rollups: Duration::from_secs(400 * 86_400),
    };
    let store = Store::open(&data, Duration::from_millis(100), retention).unwrap();
    store.write(RoundRecord {
        server: "target.test".into(),
        delta: Delta {
            sample: Sample {
                at: now.unix_timestamp() - 10,
                up: true,
                all_ok: true,
                latency_ms: Some(80.0),
                error: None,
            },
            addresses: vec![],
            buckets,
            sketches: Vec::new(),
            open: Default::default(),
            state: Default::default(),
        },
        maintenance: false,
        software: None,
    });
    store.write_event(Event {
        server: "target.test".into(),
        at: from + 9 * 86_400 + 3600,
        from: mxping::testing::Status::Yellow,
        to: mxping::testing::Status::Red,
        reason: None,
    });
    store.close();

    let config = t.h.config_file();
    let s = Serve::start(&config).await;
    let report = s
        .wait_for(Duration::from_secs(10), "the report", || async {
            events(&hooks).into_iter().find(|e| e["event"] == "report")
        })
        .await;
    let month = format!("{}-{:02}", last_month.year(), u8::from(last_month.month()));
    assert_eq!(report["month"], month, "{report}");
    let line = &report["servers"][0];
    assert_eq!(line["server"], "target.test");
    let want = (days as f64 * 2880.0 - 288.0) / (days as f64 * 2880.0);
    assert!(
        (line["uptime"].as_f64().unwrap() - want).abs() < 1e-9,
        "{line}"
    );
    assert_eq!(line["incidents"], 1);
    assert_eq!(line["maintenance_s"], 0);
    assert_eq!(
        line["slowest_week"][0],
        from + 14 * 86_400,
        "the third week: {line}"
    );
    assert_eq!(line["slowest_week"][1], 300.0);
    let text = report["text"].as_str().unwrap();
    assert!(text.starts_with("📊 mxping report for "), "{text}");
    assert!(text.contains("target.test: uptime 99."), "{text}");
    // Once: a restart sends nothing more.
    s.signal("KILL");
    drop(s);
    let s = Serve::start(&config).await;
    wait_status(&s, "green", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reports = events(&hooks)
        .iter()
        .filter(|e| e["event"] == "report")
        .count();
    assert_eq!(reports, 1);
}
