//! The scheduler on a paused clock (`start_paused`: tokio advances time whenever every task
//! waits), with scripted rounds in place of the network: start-up jitter, the cadence of
//! healthy and failing servers, reuse of a resolution until it expires, re-resolution after a
//! failed round, hysteresis as published on the board, the concurrency cap, and shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mxping::config::Config;
use mxping::error::{ErrorKind, ProbeError};
use mxping::testing::AddressReport;
use mxping::testing::Metrics;
use mxping::testing::Round;
use mxping::testing::ServerName;
use mxping::testing::{KeyFetches, Outbound, Outcome, Status};
use mxping::testing::{Monitor, Rounds};
use mxping::testing::{Resolution, Target};
use tokio::time::Instant;

/// (when, server, `resolve` or `probe`) of every call.
type Log = Arc<Mutex<Vec<(Instant, String, &'static str)>>>;

/// Rounds without a network: every server has one address, up or down as the test says; a
/// resolution is valid for `valid_for`. Every call is logged with the (paused) time.
#[derive(Clone)]
struct Scripted {
    up: Arc<Mutex<HashMap<String, bool>>>,
    /// Servers whose only address this monitor cannot reach (it has no IPv6).
    unreachable: Arc<Mutex<Vec<String>>>,
    /// Servers that answer every other round (probes so far, by server).
    flapping: Arc<Mutex<HashMap<String, u64>>>,
    /// The outcomes of a server's signed federation checks, in order (then no more checks).
    outbound: Arc<Mutex<HashMap<String, std::collections::VecDeque<Outcome>>>>,
    log: Log,
    in_flight: Arc<Mutex<(usize, usize)>>,
    valid_for: Duration,
    round_takes: Duration,
    start: Instant,
}

impl Scripted {
    fn new(valid_for: Duration, round_takes: Duration) -> Scripted {
        Scripted {
            up: Arc::default(),
            unreachable: Arc::default(),
            flapping: Arc::default(),
            outbound: Arc::default(),
            log: Arc::default(),
            in_flight: Arc::default(),
            valid_for,
            round_takes,
            start: Instant::now(),
        }
    }

    fn set_up(&self, name: &str, up: bool) {
        self.up.lock().unwrap().insert(name.to_owned(), up);
    }

    /// Seconds since start of each `what` call (`resolve` or `probe`) for `name`.
    fn times(&self, name: &str, what: &str) -> Vec<f64> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, n, w)| n == name && *w == what)
            .map(|(t, _, _)| (*t - self.start).as_secs_f64())
            .collect()
    }
}

impl Rounds for Scripted {
    async fn resolve(&self, name: &ServerName) -> Resolution {
        let name = name.as_str();
        self.log
            .lock()
            .unwrap()
            .push((Instant::now(), name.to_owned(), "resolve"));
        let mut r = Resolution::new(name);
        let address: SocketAddr = "203.0.113.7:8448".parse().unwrap();
        r.targets.push(Target {
            address,
            host_header: name.to_owned(),
            tls_name: Some(name.to_owned()),
            via: name.to_owned(),
            srv: None,
            blocked: None,
        });
        r.valid_for = self.valid_for;
        r
    }

    async fn probe(&self, resolution: Arc<Resolution>, name: &str) -> Round {
        self.log
            .lock()
            .unwrap()
            .push((Instant::now(), name.to_owned(), "probe"));
        {
            let mut f = self.in_flight.lock().unwrap();
            f.0 += 1;
            f.1 = f.1.max(f.0);
        }
        tokio::time::sleep(self.round_takes).await;
        self.in_flight.lock().unwrap().0 -= 1;
        let mut up = *self.up.lock().unwrap().get(name).unwrap_or(&true);
        if let Some(n) = self.flapping.lock().unwrap().get_mut(name) {
            *n += 1;
            up = *n % 2 == 0;
        }
        let mut a = AddressReport::new(resolution.targets[0].address);
        if self.unreachable.lock().unwrap().iter().any(|n| n == name) {
            let mut e = ProbeError::new(ErrorKind::Connect, "this monitor has no IPv6");
            e.monitor_side = true;
            a.error = Some(e);
        } else if up {
            a.ok = true;
            a.latency_ms = Some(20.0);
            a.phases_ms.requests = vec![20.0];
        } else {
            a.error = Some(ProbeError::new(ErrorKind::ConnectRefused, "refused"));
        }
        Round {
            resolution,
            addresses: vec![a],
            client: None,
            finished_at: time::OffsetDateTime::now_utc(),
        }
    }

    async fn federation(
        &self,
        name: &ServerName,
        _: Option<Arc<Resolution>>,
        _: Arc<KeyFetches>,
    ) -> Option<Outbound> {
        let outcome = self
            .outbound
            .lock()
            .unwrap()
            .get_mut(name.as_str())?
            .pop_front()?;
        self.log
            .lock()
            .unwrap()
            .push((Instant::now(), name.as_str().to_owned(), "federation"));
        Some(Outbound {
            outbound: outcome,
            error: (outcome != Outcome::BothWays).then(|| {
                ProbeError::new(
                    ErrorKind::HttpStatus,
                    "HTTP 401 Unauthorized: M_UNAUTHORIZED: Failed to find any key to satisfy",
                )
            }),
            elapsed_ms: Some(12.0),
            key_fetched_by: None,
            directory: None,
            checked_at: time::OffsetDateTime::now_utc(),
        })
    }
}

fn config(concurrency: usize) -> Config {
    let text = format!(
        "[monitor]\ninterval = \"30s\"\nretry_interval = \"10s\"\ntimeout = \"5s\"\n\
         down_after = 2\nup_after = 2\nconcurrency = {concurrency}\n\
         [storage]\ndata_dir = \"\"\n\
         [[server]]\nname = \"up.test\"\n[[server]]\nname = \"down.test\"\n"
    );
    Config::parse(&text, "scheduler.toml", None).unwrap()
}

/// The monitor on `config`, its rounds scripted by `script`, no store.
fn start(script: &Scripted, config: Config) -> Arc<Monitor<Scripted>> {
    let rounds = script.clone();
    Monitor::start_with(
        config,
        Arc::new(Metrics::new()),
        None,
        None,
        Box::new(move |_| Ok(rounds.clone())),
    )
    .unwrap()
}

fn gaps(times: &[f64]) -> Vec<f64> {
    times.windows(2).map(|w| (w[1] - w[0]).round()).collect()
}

#[tokio::test(start_paused = true)]
async fn cadence_retries_reresolution_and_hysteresis() {
    let script = Scripted::new(Duration::from_secs(45), Duration::from_millis(100));
    script.set_up("down.test", false);
    let monitor = start(&script, config(64));
    let board = monitor.board();
    // Before any round: unknown.
    assert_eq!(
        board.server("up.test").unwrap().1.status().as_str(),
        "unknown"
    );

    tokio::time::sleep(Duration::from_secs(151)).await;

    // Start-up jitter: the first round of each server within the first interval.
    let up = script.times("up.test", "probe");
    let down = script.times("down.test", "probe");
    assert!(up[0] < 30.0 && down[0] < 30.0, "{up:?} {down:?}");
    // A healthy server every interval (30 s), a failing one every retry_interval (10 s),
    // with no drift.
    assert!(gaps(&up).iter().all(|g| *g == 30.0), "{up:?}");
    assert!(gaps(&down).iter().all(|g| *g == 10.0), "{down:?}");
    assert!(up.len() >= 4 && down.len() >= 12, "{up:?} {down:?}");
    // A working resolution (valid 45 s) is reused by the next round and resolved again after
    // it expires; a failed round drops it, so every round of the failing server resolves.
    let resolved = script.times("up.test", "resolve");
    assert_eq!(resolved.len(), up.len().div_ceil(2), "{resolved:?} {up:?}");
    assert_eq!(script.times("down.test", "resolve").len(), down.len());

    // Hysteresis as the board shows it: red after down_after (2) failed rounds.
    assert_eq!(
        board.server("up.test").unwrap().1.status().as_str(),
        "green"
    );
    assert_eq!(
        board.server("down.test").unwrap().1.status().as_str(),
        "red"
    );
    // The failing server recovers: yellow (recovering) after one good round, green after two.
    script.set_up("down.test", true);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (status, reason) = {
        let v = board.server("down.test").unwrap().1;
        (
            v.status().as_str(),
            v.report.reason.clone().map(|r| r.to_string()),
        )
    };
    assert_eq!(
        (status, reason.as_deref()),
        ("yellow", Some("recovering (1 of 2 good rounds)"))
    );
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(
        board.server("down.test").unwrap().1.status().as_str(),
        "green"
    );
    let feed: Vec<String> = board
        .events()
        .iter()
        .map(|e| format!("{:?}->{:?}", e.from, e.to))
        .collect();
    assert_eq!(
        feed,
        ["Yellow->Green", "Red->Yellow", "Yellow->Red"],
        "newest first"
    );

    assert!(
        monitor.shutdown(Duration::from_secs(1)).await,
        "every loop stops"
    );
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_cap_holds() {
    // Ten servers whose rounds take 4 s, at most two at once.
    let script = Scripted::new(Duration::from_secs(45), Duration::from_secs(4));
    let mut text = "[monitor]\ninterval = \"30s\"\ntimeout = \"5s\"\nconcurrency = 2\n\
                    [storage]\ndata_dir = \"\"\n"
        .to_owned();
    for i in 0..10 {
        text.push_str(&format!("[[server]]\nname = \"s{i}.test\"\n"));
    }
    let config = Config::parse(&text, "cap.toml", None).unwrap();
    let monitor = start(&script, config);
    tokio::time::sleep(Duration::from_secs(90)).await;
    let (_, most) = *script.in_flight.lock().unwrap();
    assert_eq!(most, 2, "at most [monitor] concurrency rounds at once");
    for i in 0..10 {
        assert!(
            script.times(&format!("s{i}.test"), "probe").len() >= 2,
            "every server still gets its rounds"
        );
    }
    assert!(monitor.shutdown(Duration::from_secs(1)).await);
}

/// Issue 11 item 8, through the scheduler: a round in which this monitor could reach none of
/// the addresses (it has no IPv6) is shown but not counted: the status stays unknown, no
/// history sample is kept and no status change is announced.
#[tokio::test(start_paused = true)]
async fn rounds_this_monitor_cannot_make_are_not_counted() {
    let script = Scripted::new(Duration::from_secs(45), Duration::from_millis(100));
    script
        .unreachable
        .lock()
        .unwrap()
        .push("down.test".to_owned());
    let monitor = start(&script, config(64));
    let board = monitor.board();
    tokio::time::sleep(Duration::from_secs(151)).await;
    let probes = script.times("down.test", "probe");
    assert!(probes.len() >= 4, "{probes:?}");
    // Such a round is not a failure: the normal interval, not the retry one, and the
    // resolution kept until it expires (45 s: every other round), not made again each time.
    assert!(gaps(&probes).iter().all(|g| *g == 30.0), "{probes:?}");
    let resolved = script.times("down.test", "resolve");
    assert_eq!(resolved.len(), probes.len().div_ceil(2), "{resolved:?}");
    let view = board.server("down.test").unwrap().1;
    assert_eq!(
        view.status().as_str(),
        "unknown",
        "not counted against the server"
    );
    assert!(
        view.report.addresses[0]
            .error
            .as_ref()
            .unwrap()
            .monitor_side,
        "but shown"
    );
    assert_eq!(view.recent().len(), 0, "no history sample");
    assert!(board.events().is_empty(), "no status change announced");
    assert_eq!(
        board.server("up.test").unwrap().1.status().as_str(),
        "green"
    );
    assert!(monitor.shutdown(Duration::from_secs(1)).await);
}

/// Start-up reads the saved histories in batches, on more than one thread: every server gets
/// its own history back, whichever batch and thread read it (700 servers are several batches
/// for each reader).
#[tokio::test(start_paused = true)]
async fn every_server_gets_its_own_saved_history_back() {
    use mxping::testing::Sketch;
    use mxping::testing::Status;
    use mxping::testing::{BucketRow, Delta, Sample, SketchRow, StatusState};
    use mxping::testing::{Retention, RoundRecord, Store};

    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..700).map(|i| format!("s{i:03}.test")).collect();
    let at = time::OffsetDateTime::now_utc().unix_timestamp() - 60;
    let latency = |i: usize| 10.0 + i as f64;
    let store = Store::open(
        dir.path(),
        Duration::from_millis(50),
        Retention {
            raw: Duration::from_secs(3 * 86_400),
            rollups: Duration::from_secs(90 * 86_400),
        },
    )
    .unwrap();
    for (i, name) in names.iter().enumerate() {
        // Every third server was red when the monitor stopped; each has a latency of its own.
        let down = i % 3 == 0;
        let mut sketch = Sketch::default();
        sketch.add(latency(i));
        store.write(RoundRecord {
            server: name.clone(),
            delta: Delta {
                sample: Sample {
                    at,
                    up: !down,
                    all_ok: !down,
                    latency_ms: (!down).then_some(latency(i) as f32),
                    error: None,
                },
                addresses: Vec::new(),
                buckets: vec![BucketRow {
                    width: 300,
                    start: at - at.rem_euclid(300),
                    rounds: 1,
                    up: u32::from(!down),
                    latency_sum: if down { 0.0 } else { latency(i) },
                    latency_n: u32::from(!down),
                }],
                sketches: if down {
                    Vec::new()
                } else {
                    vec![SketchRow {
                        width: 3600,
                        start: at - at.rem_euclid(3600),
                        sketch,
                    }]
                },
                open: Default::default(),
                state: StatusState {
                    status: Some(if down { Status::Red } else { Status::Green }),
                    reason: None,
                    failed_rounds: if down { 3 } else { 0 },
                    good_rounds: 0,
                    down,
                },
            },
            maintenance: false,
            software: None,
        });
    }
    store.flush();
    let mut text = "[monitor]\ninterval = \"30s\"\n[storage]\ndata_dir = \"\"\n".to_owned();
    for name in &names {
        text += &format!("[[server]]\nname = \"{name}\"\n");
    }
    let rounds = Scripted::new(Duration::from_secs(45), Duration::from_millis(100));
    let monitor = Monitor::start_with(
        Config::parse(&text, "restore.toml", None).unwrap(),
        Arc::new(Metrics::new()),
        Some(store),
        None,
        Box::new(move |_| Ok(rounds.clone())),
    )
    .unwrap();
    // Before any round of this run (the clock is paused): what the store gave back.
    let board = monitor.board();
    for (i, name) in names.iter().enumerate() {
        let v = board.server(name).unwrap().1;
        let down = i % 3 == 0;
        assert_eq!(
            (v.status().as_str(), v.failed_rounds),
            if down { ("red", 3) } else { ("green", 0) },
            "{name}"
        );
        match v.latency_p50_ms {
            None => assert!(down, "{name} lost its latency"),
            Some(p50) => {
                assert!(!down, "{name} has a latency it never had");
                // A sketch's accuracy: 1 %, or 0.25 ms below 25 ms.
                let within = (0.01 * latency(i)).max(0.25) + 1e-9;
                assert!((p50 - latency(i)).abs() <= within, "{name}: {p50}");
            }
        }
    }
}

/// Issue 30: a reload that restarts a server's loop while one of its rounds is being
/// published must not record that round twice (in the old loop's history, and again in the
/// new loop's copy taken before it), which announced one change twice. A server that changes
/// status every round, 5 ms apart, restarted by hundreds of reloads on two threads: its status
/// changes, oldest first, must form one chain (each starts where the last ended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_racing_rounds_announces_each_change_once() {
    let script = Scripted::new(Duration::from_secs(3600), Duration::ZERO);
    script
        .flapping
        .lock()
        .unwrap()
        .insert("flap.test".into(), 0);
    let config = |title: &str| {
        let text = format!(
            "[monitor]\ninterval = \"5ms\"\nretry_interval = \"5ms\"\ntimeout = \"2ms\"\n\
             down_after = 1\nup_after = 1\n[storage]\ndata_dir = \"\"\n\
             [[server]]\nname = \"flap.test\"\ntitle = \"{title}\"\n"
        );
        Config::parse(&text, "race.toml", None).unwrap()
    };
    let monitor = start(&script, config("a"));
    // 400 reloads, and on a loaded machine more until enough changes were announced to test
    // anything (at most 20 s).
    let started = std::time::Instant::now();
    let mut i = 0;
    while i < 400
        || (monitor.board().events().len() <= 10 && started.elapsed() < Duration::from_secs(20))
    {
        // A changed title restarts the server's loop, keeping its history.
        monitor
            .reload(config(if i % 2 == 0 { "b" } else { "a" }))
            .unwrap();
        tokio::time::sleep(Duration::from_micros(700)).await;
        i += 1;
    }
    assert!(monitor.shutdown(Duration::from_secs(1)).await);
    let board = monitor.board();
    let mut events = board.events();
    events.reverse();
    assert!(events.len() > 5, "{} changes", events.len());
    for pair in events.windows(2) {
        assert_eq!(
            pair[0].to, pair[1].from,
            "a change announced twice, or one lost: {:?} then {:?}",
            pair[0], pair[1]
        );
    }
}

/// With `[federation]`: a server whose rounds are green turns yellow when its signed check
/// fails and green when it passes again, each change announced once (the feed, alerts) with
/// the check's reason, and shown in the status series. The checks run on their own schedule,
/// every `[federation] interval` (±10 %).
#[tokio::test(start_paused = true)]
async fn the_signed_check_turns_a_green_server_yellow_and_back() {
    use Outcome::*;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("federation.key");
    std::fs::write(&key, mxping::Key::generate().to_file()).unwrap();
    let text = format!(
        "[monitor]\ninterval = \"30s\"\nretry_interval = \"10s\"\ntimeout = \"5s\"\n\
         down_after = 2\nup_after = 2\n[storage]\ndata_dir = \"\"\n\
         [federation]\nserver_name = \"status.test\"\nkey_file = \"{}\"\ninterval = \"1m\"\n\
         [[server]]\nname = \"up.test\"\n",
        key.display()
    );
    let config = Config::parse(&text, "federation.toml", None).unwrap();
    let script = Scripted::new(Duration::from_secs(3600), Duration::from_millis(100));
    script.outbound.lock().unwrap().insert(
        "up.test".into(),
        [BothWays, CannotReachUs, CannotReachUs, BothWays].into(),
    );
    let metrics = Arc::new(Metrics::new());
    let rounds = script.clone();
    let monitor = Monitor::start_with(
        config,
        metrics.clone(),
        None,
        None,
        Box::new(move |_| Ok(rounds.clone())),
    )
    .unwrap();
    let board = monitor.board();
    let status = || board.server("up.test").unwrap().1.status();
    // First round and first check (both ways): green.
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(status(), Status::Green);
    // The second check, 54 to 66 s after the first, fails: yellow, with the reason.
    tokio::time::sleep(Duration::from_secs(70)).await;
    let (_, view) = board.server("up.test").unwrap();
    assert_eq!(view.status(), Status::Yellow);
    let reason = view.report.reason.as_ref().unwrap().to_string();
    assert!(
        reason.starts_with("cannot fetch other servers' keys: HTTP 401"),
        "{reason}"
    );
    assert!(
        metrics
            .render()
            .contains("mxping_status{server=\"up.test\",status=\"yellow\"} 1")
    );
    // Rounds go on green; the view stays yellow while the check fails (the third check).
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(status(), Status::Yellow);
    // The fourth passes: green again.
    tokio::time::sleep(Duration::from_secs(70)).await;
    assert_eq!(status(), Status::Green);
    assert_eq!(script.times("up.test", "federation").len(), 4);
    let gaps = gaps(&script.times("up.test", "federation"));
    assert!(gaps.iter().all(|g| (54.0..=67.0).contains(g)), "{gaps:?}");
    let mut events = board.events();
    events.reverse();
    let changes: Vec<(Status, Status)> = events.iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(
        changes,
        [
            (Status::Green, Status::Yellow),
            (Status::Yellow, Status::Green)
        ],
        "each change once: {events:?}"
    );
    assert!(
        events[0]
            .reason
            .as_ref()
            .unwrap()
            .to_string()
            .contains("cannot fetch other servers' keys")
    );
    assert!(monitor.shutdown(Duration::from_secs(1)).await);
}
