//! Webhook alerts from the real `mxping serve`, to a real HTTPS receiver on loopback: signed,
//! retried with the same delivery ID after a 429 (waiting what it asked) and a 500, sent once
//! per confirmed change, kept across a restart while the receiver is down, and shown in
//! `/healthz`, the footer and the metrics while they fail. (Matrix rooms are tested against a
//! real Synapse in scripts/e2e-alerts.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::https::{handler, homeserver};
use crate::support::serve::Serve;
use crate::support::{Harness, HttpsServer, Reply, TestHost};

const SECRET: &str = "a webhook secret\n";

/// A target that answers like a homeserver, or with 503 while `down` is set (red after two
/// rounds).
fn switchable(name: &str, down: Arc<AtomicBool>) -> crate::support::Handler {
    let up = homeserver(name);
    handler(move |seen| {
        if down.load(Ordering::SeqCst) {
            Reply::status(503, "down")
        } else {
            up(seen)
        }
    })
}

struct Setup {
    h: Harness,
    down: Arc<AtomicBool>,
    _target: TestHost,
    hook_host: TestHost,
}

async fn setup() -> Setup {
    let mut h = Harness::new().await;
    let mut target = h.host("target.test");
    let down = Arc::new(AtomicBool::new(false));
    let leaf = h.ca.leaf(&["target.test"]);
    h.serve(
        &mut target,
        8448,
        leaf,
        switchable("target.test", down.clone()),
    );
    let hook_host = h.host("hooks.test");
    let secret = h.dir.path().join("webhook.secret");
    std::fs::write(&secret, SECRET).unwrap();
    h.servers = vec!["target.test".into()];
    h.extra = format!(
        "[monitor]\ninterval = \"1s\"\nretry_interval = \"500ms\"\ntimeout = \"800ms\"\n\
         down_after = 2\nup_after = 2\ncheck_keys = false\ncheck_client = false\n\
         check_signup = false\n\
         [web]\npublic_url = \"https://status.example.org\"\n\
         [storage]\ndata_dir = \"{data}\"\n\
         [[alert]]\ntype = \"webhook\"\nurl = \"https://hooks.test/hook?k=1\"\nsecret_file = \"{secret}\"\n",
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

fn signature_ok(seen: &crate::support::Seen) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.trim().as_bytes());
    let hex: String = ring::hmac::sign(&key, &seen.body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    seen.header("x-mxping-signature-256") == Some(format!("sha256={hex}").as_str())
        && standard_webhooks_ok(seen, SECRET.trim().as_bytes())
}

/// The Standard Webhooks check a receiver's library makes: `webhook-signature` is `v1,` and the
/// base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`, the timestamp is within
/// five minutes of now, and the ID is the delivery ID.
fn standard_webhooks_ok(seen: &crate::support::Seen, key: &[u8]) -> bool {
    use base64::Engine as _;
    let (Some(id), Some(ts), Some(sig)) = (
        seen.header("webhook-id"),
        seen.header("webhook-timestamp"),
        seen.header("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(at) = ts.parse::<i64>() else {
        return false;
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(&seen.body);
    let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), &signed);
    let want = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.as_ref())
    );
    (now - at).abs() <= 300
        && sig.split(' ').any(|s| s == want)
        && seen.header("x-mxping-delivery") == Some(id)
}

async fn status(s: &Serve) -> String {
    s.server("target.test").await["status"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn metric(s: &Serve, line_start: &str) -> f64 {
    let (_, text) = s.text("/metrics").await;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until the series `line` reads `n`: an attempt is counted once its answer is read,
/// which can be just after the receiver saw the request.
async fn wait_metric(s: &Serve, line: &str, n: f64) {
    s.wait_for(Duration::from_secs(5), line, || async {
        (metric(s, line).await == n).then_some(())
    })
    .await;
}

#[tokio::test]
async fn webhooks_are_signed_and_retried_with_one_delivery_id_after_429_and_500() {
    let mut t = setup().await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let times = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let (a, ts) = (attempts.clone(), times.clone());
    let leaf = t.h.ca.leaf(&["hooks.test"]);
    let hooks = t.h.serve(
        &mut t.hook_host,
        443,
        leaf,
        handler(move |_| {
            ts.lock().unwrap().push(Instant::now());
            match a.fetch_add(1, Ordering::SeqCst) {
                0 => Reply::status(429, "slow down").header("retry-after", "2"),
                1 => Reply::status(500, "oops"),
                _ => Reply::status(204, ""),
            }
        }),
    );
    let s = Serve::start(&t.h.config_file()).await;
    s.wait_for(Duration::from_secs(20), "green", || async {
        (status(&s).await == "green").then_some(())
    })
    .await;
    assert!(hooks.seen().is_empty(), "no alert before a change");

    t.down.store(true, Ordering::SeqCst);
    s.wait_for(
        Duration::from_secs(30),
        "the alert through 429 and 500",
        || async { (attempts.load(Ordering::SeqCst) >= 3).then_some(()) },
    )
    .await;
    let seen = hooks.seen();
    assert!(seen.iter().all(signature_ok), "every attempt is signed");
    let ids: Vec<_> = seen.iter().map(|x| x.header("x-mxping-delivery")).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0] && id.is_some()),
        "one ID: {ids:?}"
    );
    let t_ = times.lock().unwrap().clone();
    assert!(
        t_[1] - t_[0] >= Duration::from_secs(2),
        "the retry after a 429 waits its Retry-After: {:?}",
        t_[1] - t_[0]
    );
    let doc: Value = serde_json::from_slice(&seen[2].body).unwrap();
    assert_eq!(seen[2].method, "POST");
    assert_eq!(seen[2].path, "/hook");
    assert_eq!(seen[2].header("x-mxping-event"), Some("fired"));
    assert_eq!(doc["event"], "fired");
    assert_eq!(doc["server"], "target.test");
    assert_eq!(doc["status"], "red");
    assert_eq!(doc["url"], "https://status.example.org/server/target.test");
    assert!(
        doc["reason_text"]
            .as_str()
            .unwrap()
            .contains("it answers with an error"),
        "{doc}"
    );
    let channel = "channel=\"webhook:hooks.test/hook\"";
    for (result, n) in [("sent", 1.0), ("rate_limited", 1.0), ("unreachable", 1.0)] {
        let line = format!("mxping_alerts_sent_total{{{channel},result=\"{result}\"}}");
        wait_metric(&s, &line, n).await;
    }

    t.down.store(false, Ordering::SeqCst);
    s.wait_for(Duration::from_secs(30), "the recovery", || async {
        (attempts.load(Ordering::SeqCst) >= 4).then_some(())
    })
    .await;
    // Still down and up once: no more POSTs come.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = hooks.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    let last: Value = serde_json::from_slice(&seen[3].body).unwrap();
    assert_eq!(last["event"], "resolved");
    assert!(last["duration_s"].as_i64().unwrap() >= 1, "{last}");
    assert_ne!(seen[3].header("x-mxping-delivery"), ids[0]);
    let (_, health) = s.text("/healthz").await;
    assert!(
        health.contains("alerts webhook:hooks.test/hook: ok (0 queued)"),
        "{health}"
    );
    assert!(
        !health.contains("k=1"),
        "no query string (it may hold a secret): {health}"
    );
}

#[tokio::test]
async fn an_alert_waits_in_the_outbox_across_a_restart_and_failures_are_shown() {
    let mut t = setup().await;
    // Nothing listens on hooks.test:443 (connections are refused) until the restart.
    t.hook_host.release();
    let config = t.h.config_file();
    let s = Serve::start(&config).await;
    s.wait_for(Duration::from_secs(20), "green", || async {
        (status(&s).await == "green").then_some(())
    })
    .await;
    t.down.store(true, Ordering::SeqCst);
    let health = s
        .wait_for(
            Duration::from_secs(30),
            "the failure in /healthz",
            || async {
                let (_, h) = s.text("/healthz").await;
                h.contains("alerts webhook:hooks.test/hook: failing (1 queued)")
                    .then_some(h)
            },
        )
        .await;
    assert!(health.contains("refused"), "{health}");
    let (_, page) = s.text("/").await;
    assert!(
        page.contains("Alerts are not being delivered (1 of 1 channels)"),
        "the footer says so"
    );
    assert_eq!(
        metric(
            &s,
            "mxping_alert_queue_messages{channel=\"webhook:hooks.test/hook\"}"
        )
        .await,
        1.0
    );
    s.signal("TERM");
    let mut s = s;
    let _ = s.child.wait().await;

    // The receiver comes up while mxping is stopped; the restart delivers the alert once.
    let leaf = t.h.ca.leaf(&["hooks.test"]);
    let listener = std::net::TcpListener::bind((t.hook_host.ip, 443)).unwrap();
    let hooks = HttpsServer::start(listener, leaf, handler(|_| Reply::status(200, "")));
    let s = Serve::start(&config).await;
    s.wait_for(Duration::from_secs(20), "the queued alert", || async {
        (!hooks.seen().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = hooks.seen();
    let events: Vec<Value> = seen
        .iter()
        .map(|x| serde_json::from_slice::<Value>(&x.body).unwrap()["event"].clone())
        .collect();
    assert_eq!(events, vec!["fired"], "once, and not fired again: {seen:?}");
    assert!(signature_ok(&seen[0]));
    let (_, health) = s.text("/healthz").await;
    assert!(
        health.contains("hooks.test/hook: ok (0 queued)"),
        "{health}"
    );
}

#[tokio::test]
async fn an_alert_added_by_sighup_delivers_and_one_removed_stops() {
    let mut t = setup().await;
    let with_alert = t.h.extra.clone();
    let head = with_alert.split_once("[[alert]]").unwrap().0.to_owned();
    t.h.extra = head.clone();
    let config = t.h.config_file();
    let leaf = t.h.ca.leaf(&["hooks.test"]);
    let hooks = t.h.serve(
        &mut t.hook_host,
        443,
        leaf,
        handler(|_| Reply::status(204, "")),
    );
    let s = Serve::start(&config).await;
    let (_, health) = s.text("/healthz").await;
    assert_eq!(health, "ok\n", "no channels without [[alert]]");
    t.h.extra = with_alert.clone();
    t.h.config_file();
    s.signal("HUP");
    s.wait_for(
        Duration::from_secs(10),
        "the channel after SIGHUP",
        || async {
            let (_, h) = s.text("/healthz").await;
            h.contains("alerts webhook:hooks.test/hook: ok")
                .then_some(())
        },
    )
    .await;
    t.down.store(true, Ordering::SeqCst);
    s.wait_for(Duration::from_secs(30), "the alert", || async {
        (!hooks.seen().is_empty()).then_some(())
    })
    .await;
    t.h.extra = head.clone();
    t.h.config_file();
    s.signal("HUP");
    s.wait_for(Duration::from_secs(10), "the channel gone", || async {
        let (_, h) = s.text("/healthz").await;
        (h == "ok\n").then_some(())
    })
    .await;
    let (_, metrics) = s.text("/metrics").await;
    assert!(
        !metrics.contains("webhook:hooks.test"),
        "its series are removed with it"
    );
    t.down.store(false, Ordering::SeqCst);
    s.wait_for(Duration::from_secs(20), "green", || async {
        (status(&s).await == "green").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(hooks.seen().len(), 1, "a removed channel sends nothing");
}

/// Issue 30, alerts 10 and webhooks: a message refused for what it is (here a 404) is set
/// aside instead of holding every later message for a day; a 503 that says when to come back
/// is waited for; a `whsec_` secret is a Standard Webhooks secret (the bytes its base64 holds),
/// and every POST verifies as that standard says.
#[tokio::test]
async fn a_refused_message_is_set_aside_and_a_503_is_waited_for_as_asked() {
    use base64::Engine as _;
    let mut t = setup().await;
    let key = b"the key behind a whsec secret".to_vec();
    let whsec = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(&key)
    );
    std::fs::write(t.h.dir.path().join("webhook.secret"), &whsec).unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let times = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let (a, ts) = (attempts.clone(), times.clone());
    let leaf = t.h.ca.leaf(&["hooks.test"]);
    let hooks = t.h.serve(
        &mut t.hook_host,
        443,
        leaf,
        handler(move |_| {
            ts.lock().unwrap().push(Instant::now());
            match a.fetch_add(1, Ordering::SeqCst) {
                0 => Reply::status(404, "no such hook"),
                1 => Reply::status(503, "maintenance").header("retry-after", "2"),
                _ => Reply::status(204, ""),
            }
        }),
    );
    let s = Serve::start(&t.h.config_file()).await;
    s.wait_for(Duration::from_secs(20), "green", || async {
        (status(&s).await == "green").then_some(())
    })
    .await;
    t.down.store(true, Ordering::SeqCst);
    s.wait_for(Duration::from_secs(20), "the refused alert", || async {
        (attempts.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    t.down.store(false, Ordering::SeqCst);
    // The recovery goes out although the alert before it was refused: through a 503, after
    // the two seconds it asked for.
    s.wait_for(
        Duration::from_secs(30),
        "the recovery delivered",
        || async { (attempts.load(Ordering::SeqCst) >= 3).then_some(()) },
    )
    .await;
    let seen = hooks.seen();
    assert!(
        seen.iter().all(|x| standard_webhooks_ok(x, &key)),
        "{seen:?}"
    );
    let events: Vec<Value> = seen
        .iter()
        .map(|x| serde_json::from_slice::<Value>(&x.body).unwrap()["event"].clone())
        .collect();
    assert_eq!(events, vec!["fired", "resolved", "resolved"]);
    let t_ = times.lock().unwrap().clone();
    assert!(
        t_[2] - t_[1] >= Duration::from_secs(2),
        "the retry after a 503 waits its Retry-After: {:?}",
        t_[2] - t_[1]
    );
    assert!(s.log_contains("is set aside (POST to webhook:hooks.test/hook: HTTP 404)"));
    let channel = "channel=\"webhook:hooks.test/hook\"";
    for (result, n) in [("sent", 1.0), ("rejected", 1.0), ("unreachable", 1.0)] {
        let line = format!("mxping_alerts_sent_total{{{channel},result=\"{result}\"}}");
        wait_metric(&s, &line, n).await;
    }
    s.wait_for(Duration::from_secs(5), "/healthz ok", || async {
        s.text("/healthz")
            .await
            .1
            .contains("hooks.test/hook: ok (0 queued)")
            .then_some(())
    })
    .await;
}
