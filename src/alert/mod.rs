//! Alerts: confirmed status changes (the status with its hysteresis, so no flapping) posted
//! into Matrix rooms, or POSTed to webhooks signed with HMAC-SHA256, each message exactly once.
//!
//! A status change is turned into messages in one outbox transaction ([`outbox`]): a new
//! alert's first message, or an edit of that message and a reply in its thread when the
//! status changes or recovers ("✓ resolved after 14 min"), so the room shows what is still
//! down. Each `[[alert]]` is a channel with its own delivery task: messages go out in order,
//! one at a time, with the transaction ID fixed when they were queued; failures back off
//! (1 s doubling to 5 min), a 429 waits exactly what the homeserver asked (`retry_after_ms`
//! or `Retry-After`), and a message is given up only after a day. A Matrix channel checks its
//! token, room, membership, power and encryption at start and after any refusal, and uses its
//! fallback room (often on another homeserver) for a message the main room has not taken
//! within a minute.
//!
//! Failures are visible: log lines, `/healthz`, the page's footer, and the metrics
//! `mxping_alerts_sent_total{channel,result}` and `mxping_alert_queue_messages{channel}`.

pub mod matrix;
pub mod message;
pub mod outbox;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use hyper::header::{HeaderName, HeaderValue};
use rand::Rng;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{AlertConfig, AlertTarget, Config};
use crate::history::events::Event;
use crate::metrics::Metrics;
use crate::net::fetch::{Endpoint, Fetcher};
use message::{Decision, Facts, decide};
use outbox::{Kind, Message, Open, Outbox};

/// A message not delivered within this long is given up (`result="expired"`).
pub const MAX_AGE: Duration = Duration::from_secs(86_400);
/// A message the main room has not taken within this long goes to the fallback room.
pub const FALLBACK_AFTER: Duration = Duration::from_secs(60);
/// The longest wait between attempts (a 429 may ask for longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Why an attempt failed, and the `result` label it counts under.
#[derive(Clone, Debug)]
pub struct Failure {
    /// `rate_limited`, `unreachable`, `rejected` or `failed`.
    pub result: &'static str,
    /// What happened, for logs, `/healthz` and the footer.
    pub detail: String,
    /// How long the other side asked us to wait.
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// No answer (connection, TLS, timeout) or a server error: tried again.
    pub fn unreachable(detail: String) -> Failure {
        Failure {
            result: "unreachable",
            detail,
            retry_after: None,
        }
    }

    /// Refused (token, room, power, a 4xx): checked again, then tried again.
    pub fn rejected(detail: String) -> Failure {
        Failure {
            result: "rejected",
            detail,
            retry_after: None,
        }
    }

    /// A 429: tried again after the time asked.
    pub fn rate_limited(detail: String, after: Option<Duration>) -> Failure {
        Failure {
            result: "rate_limited",
            detail,
            retry_after: after,
        }
    }
}

/// How each channel is doing, for `/healthz` and the page's footer.
#[derive(Default)]
pub struct AlertHealth {
    channels: Mutex<BTreeMap<String, ChannelState>>,
}

/// One channel's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelState {
    /// True until a Matrix channel's room was checked once.
    pub checking: bool,
    /// Why alerts are not getting through, while they are not.
    pub problem: Option<String>,
    /// Messages waiting.
    pub queued: usize,
}

impl AlertHealth {
    /// Every channel, by label.
    pub fn channels(&self) -> Vec<(String, ChannelState)> {
        let map = self.channels.lock().expect("health lock");
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The channels failing now, with why.
    pub fn failing(&self) -> Vec<(String, String)> {
        self.channels()
            .into_iter()
            .filter_map(|(label, s)| s.problem.map(|p| (label, p)))
            .collect()
    }

    fn update(&self, label: &str, f: impl FnOnce(&mut ChannelState)) {
        let mut map = self.channels.lock().expect("health lock");
        f(map.entry(label.to_owned()).or_default());
    }

    fn remove(&self, label: &str) {
        self.channels.lock().expect("health lock").remove(label);
    }
}

/// A channel's outbox key (stable across restarts, so queued messages find their channel
/// again) and its label in metrics, logs and `/healthz` (no secrets, no query strings).
fn identity(a: &AlertConfig) -> (String, String) {
    match &a.target {
        // The room alone: a new homeserver URL or token for the same room keeps its queue.
        AlertTarget::Matrix { room, .. } => (
            format!("matrix {}", room.room),
            format!("matrix:{}", room.room),
        ),
        AlertTarget::Webhook { url, .. } => {
            let label = url::Url::parse(url).map_or_else(
                |_| url.clone(),
                |u| format!("{}{}", u.host_str().unwrap_or(""), u.path()),
            );
            (format!("webhook {url}"), format!("webhook:{label}"))
        }
    }
}

/// What a reload compares: the settings that shape channels.
#[derive(Clone, PartialEq)]
struct Settings {
    alerts: Vec<AlertConfig>,
    public_url: Option<String>,
    tls: crate::config::TlsConfig,
    dns: crate::config::DnsConfig,
}

impl Settings {
    fn of(config: &Config) -> Settings {
        Settings {
            alerts: config.alerts.clone(),
            public_url: config.web.public_url.clone(),
            tls: config.tls.clone(),
            dns: config.dns.clone(),
        }
    }
}

struct Live {
    settings: Settings,
    channels: Vec<Arc<Channel>>,
}

/// The alert channels of the running config, and the outbox they share.
pub struct Alerts {
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
    health: Arc<AlertHealth>,
    live: RwLock<Live>,
    tracker: TaskTracker,
}

impl Alerts {
    /// Opens the outbox (in the store file `store`, or in memory) and starts a delivery task
    /// per `[[alert]]`. Queued messages of channels no longer configured stay queued.
    pub fn start(
        config: &Config,
        store: Option<&Path>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Alerts>, String> {
        let outbox = Arc::new(Outbox::open(store)?);
        let alerts = Arc::new(Alerts {
            outbox,
            metrics,
            health: Arc::default(),
            live: RwLock::new(Live {
                settings: Settings::of(config),
                channels: Vec::new(),
            }),
            tracker: TaskTracker::new(),
        });
        let channels = alerts.channels_for(config)?;
        alerts.spawn(&channels);
        alerts.live.write().expect("alerts lock").channels = channels;
        alerts.note_orphans();
        Ok(alerts)
    }

    /// Channel health, for `/healthz` and the footer.
    pub fn health(&self) -> Arc<AlertHealth> {
        self.health.clone()
    }

    /// The channels of `config`, not started yet (see [`Alerts::spawn`]).
    fn channels_for(&self, config: &Config) -> Result<Vec<Arc<Channel>>, String> {
        if config.alerts.is_empty() {
            return Ok(Vec::new());
        }
        let fetcher = Fetcher::trusted_for(config).map_err(|e| e.to_string())?;
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut channels = Vec::new();
        for a in &config.alerts {
            let (mut id, mut label) = identity(a);
            // Two [[alert]]s to one room (different servers or statuses) are two channels.
            let n = seen.entry(id.clone()).or_default();
            *n += 1;
            if *n > 1 {
                id = format!("{id} #{n}");
                label = format!("{label} #{n}");
            }
            channels.push(Arc::new(Channel {
                id,
                label,
                config: a.clone(),
                public_url: config.web.public_url.clone(),
                fetcher: fetcher.clone(),
                wake: Notify::new(),
                cancel: CancellationToken::new(),
                outbox: self.outbox.clone(),
                metrics: self.metrics.clone(),
                health: self.health.clone(),
            }));
        }
        Ok(channels)
    }

    /// Starts the delivery tasks of `channels`.
    fn spawn(&self, channels: &[Arc<Channel>]) {
        for channel in channels {
            let matrix = matches!(channel.config.target, AlertTarget::Matrix { .. });
            self.health.update(&channel.label, |s| s.checking = matrix);
            self.tracker.spawn(channel.clone().run());
        }
    }

    fn note_orphans(&self) {
        let live = self.live.read().expect("alerts lock");
        let Ok(queued) = self.outbox.channels() else {
            return;
        };
        for (id, n) in queued {
            if !live.channels.iter().any(|c| c.id == id) {
                warn!(
                    "alerts: {n} message(s) for {id}, which is no longer configured, stay queued until it is configured again"
                );
            }
        }
    }

    /// Applies a reloaded config: channels whose settings changed restart (their queued
    /// messages carry over), removed ones stop.
    pub fn reload(&self, config: &Config) {
        let settings = Settings::of(config);
        if self.live.read().expect("alerts lock").settings == settings {
            return;
        }
        let channels = match self.channels_for(config) {
            Ok(c) => c,
            Err(e) => {
                error!(
                    "alerts: the reloaded settings cannot be used, the previous channels keep running: {e}"
                );
                return;
            }
        };
        // The old tasks are told to stop before the new ones start. Should a new task reach a
        // message an old one is still sending, both use its one transaction ID (delivery ID),
        // so the overlap cannot post it twice.
        let mut live = self.live.write().expect("alerts lock");
        for old in &live.channels {
            old.cancel.cancel();
            if !channels.iter().any(|c| c.label == old.label) {
                self.health.remove(&old.label);
                self.metrics.remove_alert_channel(&old.label);
            }
        }
        self.spawn(&channels);
        live.settings = settings;
        live.channels = channels;
        drop(live);
        self.note_orphans();
    }

    /// Turns a confirmed status change into queued messages, on every channel it concerns.
    /// The messages are committed to the outbox before this returns.
    pub fn notify(&self, event: &Event) {
        let live = self.live.read().expect("alerts lock");
        for ch in &live.channels {
            if !ch.config.covers(&event.server) {
                continue;
            }
            match ch.queue(event) {
                Ok(0) => {}
                Ok(_) => ch.wake.notify_one(),
                Err(e) => error!(
                    "alerts: {}: the alert about {} could not be written to the outbox: {e}",
                    ch.label, event.server
                ),
            }
        }
    }

    /// Stops the delivery tasks (a message in flight is sent again at the next start, with
    /// the same transaction ID). Waits at most `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        for ch in &self.live.read().expect("alerts lock").channels {
            ch.cancel.cancel();
        }
        self.tracker.close();
        let _ = tokio::time::timeout(grace, self.tracker.wait()).await;
    }
}

/// Waits between failed attempts: 1 s doubling to [`MAX_BACKOFF`], ±20 %.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let base = Duration::from_secs(1u64 << self.failures.min(9)).min(MAX_BACKOFF);
        self.failures += 1;
        base.mul_f64(rand::rng().random_range(0.8..1.2))
    }
}

/// Checked rooms of a Matrix channel (`None`: not checked yet, or checked again after a
/// refusal).
#[derive(Default)]
struct Sessions {
    main: Option<matrix::Session>,
    fallback: Option<matrix::Session>,
    /// Why the main room's last check failed.
    main_problem: Option<Failure>,
    /// Since when the main room has taken nothing (`None`: it is working).
    main_failing_since: Option<tokio::time::Instant>,
}

/// One `[[alert]]`: its settings and its delivery task's handles.
struct Channel {
    id: String,
    label: String,
    config: AlertConfig,
    public_url: Option<String>,
    fetcher: Fetcher,
    wake: Notify,
    cancel: CancellationToken,
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
    health: Arc<AlertHealth>,
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

impl Channel {
    /// Queues what `event` means for this channel; how many messages were queued.
    fn queue(&self, event: &Event) -> rusqlite::Result<usize> {
        let t = crate::i18n::find(&self.config.language).unwrap_or_else(crate::i18n::english);
        let facts = Facts {
            t,
            server: &event.server,
            public_url: self.public_url.as_deref(),
        };
        let webhook = matches!(self.config.target, AlertTarget::Webhook { .. });
        let reason = event
            .reason
            .as_ref()
            .map(|r| crate::web::reason_words(t, r))
            .unwrap_or_default();
        let queued = self
            .outbox
            .apply(&self.id, &event.server, event.at, |open, txn| {
                let decision = decide(open.as_ref().map(|o| o.status), event.to, &self.config.on);
                let after = match decision {
                    Decision::Fire => Some(Open {
                        status: event.to,
                        since: event.at,
                        reason: reason.clone(),
                        thread: txn.to_owned(),
                    }),
                    Decision::Change => open.clone().map(|o| Open {
                        status: event.to,
                        reason: reason.clone(),
                        ..o
                    }),
                    Decision::Nothing => open.clone(),
                    Decision::Resolve | Decision::Close => None,
                };
                let messages =
                    facts.messages(decision, event, open.as_ref(), after.as_ref(), webhook);
                (after, messages)
            })?;
        if queued > 0 {
            info!(
                "alerts: {}: {} is {}; {queued} message(s) queued",
                self.label,
                event.server,
                event.to.as_str()
            );
            self.publish_queue();
        }
        Ok(queued)
    }

    fn publish_queue(&self) {
        let queued = self.outbox.queued(&self.id).unwrap_or(0);
        self.metrics.alert_queue(&self.label, queued);
        self.health.update(&self.label, |s| s.queued = queued);
    }

    fn set_problem(&self, problem: Option<String>) {
        let mut changed = false;
        self.health.update(&self.label, |s| {
            changed = s.problem != problem || s.checking;
            s.checking = false;
            s.problem = problem.clone();
        });
        if changed {
            match &problem {
                Some(p) => error!("alerts: {}: {p}", self.label),
                None => info!("alerts: {}: delivering", self.label),
            }
        }
    }

    /// Sleeps `d`; false when the channel is stopped meanwhile.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            () = self.cancel.cancelled() => false,
            () = tokio::time::sleep(d) => true,
        }
    }

    async fn run(self: Arc<Self>) {
        let mut backoff = Backoff::default();
        let mut sessions = Sessions::default();
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            // A Matrix room is checked at start and after a refusal, queue or not, so a
            // wrong token or room shows at once, not at the first outage.
            if let AlertTarget::Matrix { room, .. } = &self.config.target
                && sessions.main.is_none()
            {
                match matrix::Session::open(&self.fetcher, room).await {
                    Ok(s) => {
                        info!(
                            "alerts: {}: {} posts to {} ({})",
                            self.label, s.user_id, s.room, s.room_id
                        );
                        sessions.main = Some(s);
                        backoff = Backoff::default();
                        self.set_problem(None);
                    }
                    Err(f) => {
                        self.set_problem(Some(f.detail.clone()));
                        sessions.main_problem = Some(f.clone());
                        let queued = self.outbox.queued(&self.id).unwrap_or(0);
                        let has_fallback = matches!(
                            &self.config.target,
                            AlertTarget::Matrix {
                                fallback: Some(_),
                                ..
                            }
                        );
                        if queued == 0 || !has_fallback {
                            let wait = f.retry_after.unwrap_or_else(|| backoff.next());
                            tokio::select! {
                                () = self.cancel.cancelled() => return,
                                () = tokio::time::sleep(wait) => {}
                                () = self.wake.notified() => {}
                            }
                            continue;
                        }
                    }
                }
            }
            let next = match self.outbox.next(&self.id) {
                Ok(n) => n,
                Err(e) => {
                    self.set_problem(Some(format!("the outbox cannot be read: {e}")));
                    if !self.pause(Duration::from_secs(5)).await {
                        return;
                    }
                    continue;
                }
            };
            self.publish_queue();
            let Some(m) = next else {
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    () = self.wake.notified() => {}
                }
                continue;
            };
            if now() - m.created_at > MAX_AGE.as_secs() as i64 {
                error!(
                    "alerts: {}: giving up a message queued more than a day ago (last attempt failed {} times): {}",
                    self.label, m.attempts, m.body
                );
                self.metrics.alert_attempt(&self.label, "expired");
                let _ = self.outbox.done(m.id, None, now());
                continue;
            }
            let attempt = tokio::select! {
                () = self.cancel.cancelled() => return,
                r = self.deliver(&m, &mut sessions) => r,
            };
            match attempt {
                Ok(root) => {
                    let root = root
                        .as_ref()
                        .map(|(room, ev)| (m.thread.as_str(), room.as_str(), ev.as_str()));
                    if let Err(e) = self.outbox.done(m.id, root, now()) {
                        // Sent but not recorded: the retry reuses the transaction ID.
                        error!(
                            "alerts: {}: a delivered message could not be recorded: {e}",
                            self.label
                        );
                    }
                    self.metrics.alert_attempt(&self.label, "sent");
                    self.publish_queue();
                    backoff = Backoff::default();
                    // Through the fallback room, the main room's problem stands.
                    if sessions.main_failing_since.is_none() {
                        self.set_problem(None);
                    }
                }
                Err(f) => {
                    let _ = self.outbox.failed(m.id, &f.detail);
                    self.publish_queue();
                    self.metrics.alert_attempt(&self.label, f.result);
                    let wait = match f.retry_after {
                        Some(after) => after + Duration::from_millis(50),
                        None => backoff.next(),
                    };
                    if f.result == "rate_limited" {
                        warn!(
                            "alerts: {}: rate limited, sending again in {wait:.1?}",
                            self.label
                        );
                    } else {
                        self.set_problem(Some(f.detail.clone()));
                        warn!(
                            "alerts: {}: {}; trying again in {wait:.1?}",
                            self.label, f.detail
                        );
                    }
                    if f.result == "rejected" {
                        // Checked again before the next attempt: the token, the room or the
                        // bot's membership may have changed.
                        // (A fallback room that refused is checked again by `deliver`.)
                        sessions.main = None;
                    }
                    if !self.pause(wait).await {
                        return;
                    }
                }
            }
        }
    }

    /// One attempt at `m`; the room and event ID when it started a thread.
    async fn deliver(
        &self,
        m: &Message,
        sessions: &mut Sessions,
    ) -> Result<Option<(String, String)>, Failure> {
        match &self.config.target {
            AlertTarget::Webhook { url, secret_file } => {
                self.post_webhook(url, secret_file, m).await.map(|()| None)
            }
            AlertTarget::Matrix { fallback, .. } => {
                let main = match &sessions.main {
                    Some(s) => self.send_matrix(s, m, &m.txn_id).await,
                    None => Err(sessions.main_problem.clone().unwrap_or_else(|| {
                        Failure::unreachable("the room is not checked yet".into())
                    })),
                };
                let Err(failure) = main else {
                    sessions.main_failing_since = None;
                    return main;
                };
                let failing_since = *sessions
                    .main_failing_since
                    .get_or_insert_with(tokio::time::Instant::now);
                // The fallback takes a message the main room has not taken within a minute,
                // and every message after it until the main room works again.
                let late = now() - m.created_at >= FALLBACK_AFTER.as_secs() as i64
                    || failing_since.elapsed() >= FALLBACK_AFTER;
                let Some(room) = fallback
                    .as_ref()
                    .filter(|_| late && failure.result != "rate_limited")
                else {
                    return Err(failure);
                };
                if sessions.fallback.is_none() {
                    sessions.fallback = Some(
                        matrix::Session::open(&self.fetcher, room)
                            .await
                            .map_err(|f| Failure {
                                detail: format!(
                                    "{}; the fallback room too: {}",
                                    failure.detail, f.detail
                                ),
                                ..f
                            })?,
                    );
                }
                let fb = sessions.fallback.as_ref().expect("opened above");
                // Its own fixed transaction ID: a different room, the same retry guarantee.
                let sent = self
                    .send_matrix(fb, m, &format!("{}.fallback", m.txn_id))
                    .await;
                if sent.is_ok() {
                    warn!(
                        "alerts: {}: delivered through the fallback room {} ({})",
                        self.label, fb.room, failure.detail
                    );
                } else {
                    sessions.fallback = None;
                }
                sent
            }
        }
    }

    async fn send_matrix(
        &self,
        s: &matrix::Session,
        m: &Message,
        txn: &str,
    ) -> Result<Option<(String, String)>, Failure> {
        let content = match m.kind {
            Kind::Fire | Kind::Webhook => matrix::text(&m.body, &m.html),
            Kind::Edit | Kind::Reply => {
                let root = self
                    .outbox
                    .root(&m.thread)
                    .map_err(|e| Failure::rejected(format!("the outbox cannot be read: {e}")))?;
                match (root, m.kind) {
                    (Some((room, ev)), Kind::Edit) if room == s.room_id => {
                        matrix::edit(&ev, &m.body, &m.html)
                    }
                    (Some((room, ev)), _) if room == s.room_id => {
                        matrix::reply(&ev, &m.body, &m.html)
                    }
                    // The first message is in another room (or was given up): there is
                    // nothing to edit here, and the reply stands alone.
                    (_, Kind::Edit) => return Ok(None),
                    _ => matrix::text(&m.body, &m.html),
                }
            }
        };
        let event_id = s.send(&self.fetcher, txn, &content).await?;
        Ok((m.kind == Kind::Fire).then(|| (s.room_id.clone(), event_id)))
    }

    async fn post_webhook(
        &self,
        url: &str,
        secret_file: &Path,
        m: &Message,
    ) -> Result<(), Failure> {
        let secret = crate::config::Secret::File(secret_file.to_owned())
            .read()
            .map_err(Failure::rejected)?;
        let body = Bytes::from(m.html.clone());
        let signature = sign(secret.as_bytes(), &body);
        let event = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["event"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let header = |v: &str| {
            HeaderValue::from_str(v)
                .map_err(|_| Failure::rejected(format!("{v:?} cannot be a header")))
        };
        let headers = [
            (
                HeaderName::from_static("x-mxping-signature-256"),
                header(&format!("sha256={signature}"))?,
            ),
            (
                HeaderName::from_static("x-mxping-delivery"),
                header(&m.txn_id)?,
            ),
            (HeaderName::from_static("x-mxping-event"), header(&event)?),
        ];
        let parsed = url::Url::parse(url).map_err(|e| Failure::rejected(format!("{url}: {e}")))?;
        let to = Endpoint::from_url(&parsed).map_err(Failure::rejected)?;
        let sent = self
            .fetcher
            .request(Method::POST, &to, &headers, body, 64 * 1024);
        let r = match tokio::time::timeout(matrix::REQUEST_TIMEOUT, sent).await {
            Err(_) => return Err(Failure::unreachable(format!("{}: no answer", self.label))),
            Ok(Err(e)) => {
                return Err(Failure::unreachable(format!(
                    "{}: {}",
                    self.label, e.message
                )));
            }
            Ok(Ok(r)) => r,
        };
        if r.status.is_success() {
            return Ok(());
        }
        Err(matrix::failure(&format!("POST to {}", self.label), &r))
    }
}

/// HMAC-SHA256 of `body` with `secret`, in lowercase hex (as `X-Mxping-Signature-256:
/// sha256=…`, the scheme GitHub's webhooks made familiar).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let mut b = Backoff::default();
        let waits: Vec<f64> = (0..12).map(|_| b.next().as_secs_f64()).collect();
        assert!((0.8..=1.2).contains(&waits[0]), "{waits:?}");
        assert!((3.2..=4.8).contains(&waits[2]), "{waits:?}");
        assert!(waits[11] <= 360.0 && waits[11] >= 240.0, "{waits:?}");
    }
}
