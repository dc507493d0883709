//! The hub: verifies agents' reports, keeps each vantage's latest view, and combines the views
//! into the quorum's verdict per server.
//!
//! Votes: the hub's own view, and each vantage whose last report is fresh (less than three of
//! its intervals old) and that is not impaired (a vantage that checked two or more servers and
//! reached none of them is broken itself, and a broken probe must not cast a vote). A server
//! is red when a majority of the voters see it red; when only some do, it is yellow with the
//! reason "unreachable from asia (2 of 3 vantages reach it)"; otherwise it keeps the hub's own
//! status.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::store::{HubStore, Kept};
use super::{MAX_SKEW_S, Report, Seen};
use crate::signing::{parse_authorization, parse_public_key};

/// The shortest probe interval a report may state, seconds.
pub(crate) const MIN_INTERVAL_S: u64 = 1;
/// The longest probe interval a report may state, seconds (staleness is three of them).
pub(crate) const MAX_INTERVAL_S: u64 = 3600;
use crate::history::store::TablesError;
use crate::status::{Reason, Status};

/// Why a report was refused: its metric label and HTTP status, written once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RejectReason {
    /// No `Authorization` header.
    Unsigned,
    /// The header or the body cannot be read.
    Malformed,
    /// The name is not a `[[vantage]]` of this hub.
    UnknownVantage,
    /// The signature does not verify with the vantage's key.
    BadSignature,
    /// The body names another vantage than the header.
    NameMismatch,
    /// Sent too far from the hub's clock.
    ClockSkew,
    /// Not newer than the last report accepted from that vantage.
    Replayed,
    /// Larger than the hub reads.
    TooLarge,
    /// Its body did not arrive in time.
    TooSlow,
}

impl RejectReason {
    /// The `reason` label of `mxping_vantage_reports_rejected_total`, and the `error` of the
    /// answer.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Unsigned => "unsigned",
            RejectReason::Malformed => "malformed",
            RejectReason::UnknownVantage => "unknown_vantage",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::NameMismatch => "name_mismatch",
            RejectReason::ClockSkew => "clock_skew",
            RejectReason::Replayed => "replayed",
            RejectReason::TooLarge => "too_large",
            RejectReason::TooSlow => "too_slow",
        }
    }

    /// The HTTP status the hub answers with.
    pub fn http_status(self) -> u16 {
        match self {
            RejectReason::Unsigned
            | RejectReason::UnknownVantage
            | RejectReason::BadSignature
            | RejectReason::NameMismatch => 403,
            RejectReason::Replayed => 409,
            RejectReason::ClockSkew => 422,
            RejectReason::TooLarge => 413,
            RejectReason::TooSlow => 408,
            RejectReason::Malformed => 400,
        }
    }
}

/// A refused report: why, and what happened, for the log and the agent.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// Why.
    pub reason: RejectReason,
    /// What happened, in words.
    pub detail: String,
}

fn rejected(reason: RejectReason, detail: String) -> Rejected {
    Rejected { reason, detail }
}

/// One vantage's view of one server, as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VantageView {
    /// The vantage's name.
    pub vantage: String,
    /// Its status for the server.
    pub status: Status,
    /// Its last latency, milliseconds.
    pub latency_ms: Option<f64>,
    /// When it last checked (RFC 3339).
    pub checked_at: Option<String>,
    /// Its reports stopped (more than three intervals old): it does not vote.
    pub stale: bool,
    /// It reaches none of its servers: it does not vote.
    pub impaired: bool,
    /// An address answered in its last round, even if another failed (what "N of M reach
    /// it" counts).
    pub reached: bool,
    /// Its uptime for the server over 24 hours, from its reports (the hub's own line: the
    /// hub's own uptime).
    pub uptime_24h: Option<f64>,
    /// Its mean latency over 24 hours, milliseconds.
    pub latency_24h_ms: Option<f64>,
    /// The delegation it found, when it differs from the hub's (split DNS or geo-DNS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub different_delegation: Option<String>,
    /// The addresses it probed, when they differ from the hub's (geo-DNS, split DNS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub different_addresses: Option<Vec<String>>,
}

struct VantageState {
    last_sent_at_ms: i64,
    received_at: i64,
    interval_s: u64,
    impaired: bool,
    servers: HashMap<String, Seen>,
    /// Per server, the rounds it reported over the last 24 hours.
    history: HashMap<String, Hours>,
}

/// One vantage's rounds of one server by hour, the last 24 hours (about 300 bytes): its
/// uptime and mean latency there. Each round counts once, by its check time, so a backlog
/// sent after the hub was away fills the hours it covered.
#[derive(Default)]
struct Hours {
    last_checked: i64,
    hours: std::collections::VecDeque<Hour>,
}

#[derive(Clone, Copy)]
struct Hour {
    start: i64,
    rounds: u32,
    up: u32,
    latency_sum_ms: f64,
    latency_n: u32,
}

/// Bytes of one encoded hour: start, rounds, up, latency sum, latency count.
const HOUR_BYTES: usize = 8 + 4 + 4 + 8 + 4;

impl Hours {
    /// The hours as the store keeps them: the last check time, then each hour.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.hours.len() * HOUR_BYTES);
        out.extend_from_slice(&self.last_checked.to_le_bytes());
        for h in &self.hours {
            out.extend_from_slice(&h.start.to_le_bytes());
            out.extend_from_slice(&h.rounds.to_le_bytes());
            out.extend_from_slice(&h.up.to_le_bytes());
            out.extend_from_slice(&h.latency_sum_ms.to_le_bytes());
            out.extend_from_slice(&h.latency_n.to_le_bytes());
        }
        out
    }

    /// What [`Hours::encode`] wrote; `None` for anything else.
    fn decode(bytes: &[u8]) -> Option<Hours> {
        let (head, rest) = bytes.split_at_checked(8)?;
        if rest.len() % HOUR_BYTES != 0 || rest.len() / HOUR_BYTES > 25 {
            return None;
        }
        let i64_at = |b: &[u8], i: usize| i64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let hours = rest
            .chunks_exact(HOUR_BYTES)
            .map(|c| Hour {
                start: i64_at(c, 0),
                rounds: u32_at(c, 8),
                up: u32_at(c, 12),
                latency_sum_ms: f64::from_le_bytes(c[16..24].try_into().unwrap()),
                latency_n: u32_at(c, 24),
            })
            .collect();
        Some(Hours {
            last_checked: i64_at(head, 0),
            hours,
        })
    }

    fn add(&mut self, seen: &Seen) {
        let Some(at) = seen
            .checked_at
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .map(OffsetDateTime::unix_timestamp)
        else {
            return;
        };
        if at <= self.last_checked || !seen.measured {
            return;
        }
        self.last_checked = at;
        let start = at - at.rem_euclid(3600);
        if self.hours.back().is_none_or(|h| h.start < start) {
            self.hours.push_back(Hour {
                start,
                rounds: 0,
                up: 0,
                latency_sum_ms: 0.0,
                latency_n: 0,
            });
        }
        let Some(hour) = self.hours.iter_mut().rev().find(|h| h.start == start) else {
            return;
        };
        hour.rounds += 1;
        hour.up += u32::from(seen.up);
        if let Some(ms) = seen.latency_ms {
            hour.latency_sum_ms += ms;
            hour.latency_n += 1;
        }
        while self
            .hours
            .front()
            .is_some_and(|h| h.start <= start - 24 * 3600)
        {
            self.hours.pop_front();
        }
    }

    /// Uptime and mean latency over the 24 hours before `now`.
    fn day(&self, now: i64) -> (Option<f64>, Option<f64>) {
        let recent = self.hours.iter().filter(|h| h.start > now - 24 * 3600);
        let (rounds, up, sum, n) = recent.fold((0, 0, 0.0, 0), |(r, u, s, n), h| {
            (
                r + h.rounds,
                u + h.up,
                s + h.latency_sum_ms,
                n + h.latency_n,
            )
        });
        (
            (rounds > 0).then(|| f64::from(up) / f64::from(rounds)),
            (n > 0).then(|| sum / f64::from(n)),
        )
    }
}

/// A vantage whose last report is more than three of its intervals old at `now` (Unix
/// seconds): it does not vote.
fn is_stale(v: &VantageState, now: i64) -> bool {
    now.saturating_sub(v.received_at) > 3 * v.interval_s as i64
}

/// The hub's trusted vantages and what they last reported.
pub struct Hub {
    trusted: BTreeMap<String, VerifyingKey>,
    state: Mutex<BTreeMap<String, VantageState>>,
    /// Where the marks and days are kept across restarts.
    store: HubStore,
    /// Held from the replay check until the report is stored, so the store's marks follow
    /// the order reports were accepted in.
    accepting: Mutex<()>,
    /// Reports refused, by reason.
    rejected: Mutex<BTreeMap<RejectReason, u64>>,
    /// Reports accepted, by vantage.
    accepted: Mutex<BTreeMap<String, u64>>,
}

/// The verdict for one server.
pub struct Verdict {
    /// Every vantage's view, the hub's own first.
    pub views: Vec<VantageView>,
    /// The combined status.
    pub status: Status,
    /// Set when the vantages disagree.
    pub reason: Option<Reason>,
}

impl Hub {
    /// A hub trusting `vantages` (name, public key).
    pub fn new(vantages: BTreeMap<String, VerifyingKey>) -> Hub {
        Hub::with_store(vantages, HubStore::open(None).expect("nothing to open"))
    }

    /// A hub trusting `vantages`, keeping their marks and days in `store` and starting from
    /// what it kept (vantages no longer trusted are forgotten).
    pub fn with_store(vantages: BTreeMap<String, VerifyingKey>, store: HubStore) -> Hub {
        let names: Vec<&str> = vantages.keys().map(String::as_str).collect();
        if let Err(e) = store.retain(&names) {
            tracing::warn!("hub: vantages no longer configured could not be forgotten: {e}");
        }
        let kept = store.load().unwrap_or_else(|e| {
            tracing::warn!(
                "hub: what was kept of the vantages cannot be read ({e}); starting afresh"
            );
            Default::default()
        });
        let state = kept
            .into_iter()
            .filter(|(name, _)| vantages.contains_key(name))
            .map(|(name, k)| {
                let mut servers = HashMap::new();
                let mut history = HashMap::new();
                for (server, seen, hours) in k.servers {
                    if let Ok(seen) = serde_json::from_str::<Seen>(&seen) {
                        servers.insert(server.clone(), seen);
                    }
                    if let Some(h) = Hours::decode(&hours) {
                        history.insert(server, h);
                    }
                }
                let state = VantageState {
                    last_sent_at_ms: k.last_sent_at_ms,
                    received_at: k.received_at,
                    interval_s: k.interval_s.clamp(MIN_INTERVAL_S, MAX_INTERVAL_S),
                    impaired: k.impaired,
                    servers,
                    history,
                };
                (name, state)
            })
            .collect();
        Hub {
            trusted: vantages,
            state: Mutex::new(state),
            store,
            accepting: Mutex::new(()),
            rejected: Mutex::new(BTreeMap::new()),
            accepted: Mutex::new(BTreeMap::new()),
        }
    }

    /// The trusted vantage names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.trusted.keys().map(String::as_str)
    }

    /// A hub for `config`'s `[[vantage]]` list (keys were checked when it was loaded),
    /// keeping what it learns in the store file `store` (none: in memory only).
    pub fn from_config(
        config: &crate::config::Config,
        store: Option<&Path>,
    ) -> Result<Hub, TablesError> {
        Ok(Hub::with_store(
            config
                .vantages
                .iter()
                .filter_map(|v| Some((v.name.clone(), parse_public_key(&v.public_key).ok()?)))
                .collect(),
            HubStore::open(store)?,
        ))
    }

    /// Counts a refused report.
    pub fn count_rejected(&self, reason: RejectReason) {
        *self
            .rejected
            .lock()
            .expect("hub lock")
            .entry(reason)
            .or_default() += 1;
    }

    /// The hub's metrics in the Prometheus text format: every vantage's view of every server,
    /// when each vantage last reported, and refused reports by reason.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write as _;
        let label = |s: &str| {
            crate::text::cap_to(s, 253)
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        };
        let mut out = String::new();
        let state = self.state.lock().expect("hub lock");
        out.push_str("# HELP mxping_vantage_up 1 if an address of the server answered in the vantage's last round.\n# TYPE mxping_vantage_up gauge\n");
        for (name, v) in state.iter() {
            for (server, seen) in &v.servers {
                let _ = writeln!(
                    out,
                    "mxping_vantage_up{{server=\"{}\",vantage=\"{}\"}} {}",
                    label(server),
                    label(name),
                    u8::from(seen.up)
                );
            }
        }
        out.push_str("# HELP mxping_vantage_latency_seconds Headline latency of the vantage's last round.\n# TYPE mxping_vantage_latency_seconds gauge\n");
        for (name, v) in state.iter() {
            for (server, seen) in &v.servers {
                if let Some(ms) = seen.latency_ms {
                    let _ = writeln!(
                        out,
                        "mxping_vantage_latency_seconds{{server=\"{}\",vantage=\"{}\"}} {}",
                        label(server),
                        label(name),
                        ms / 1000.0
                    );
                }
            }
        }
        out.push_str("# HELP mxping_vantage_last_report_timestamp_seconds When the hub last accepted a report from the vantage.\n# TYPE mxping_vantage_last_report_timestamp_seconds gauge\n");
        for (name, v) in state.iter() {
            let _ = writeln!(
                out,
                "mxping_vantage_last_report_timestamp_seconds{{vantage=\"{}\"}} {}",
                label(name),
                v.received_at
            );
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        out.push_str("# HELP mxping_vantage_stale 1 if the vantage has not reported for three of its intervals, or not at all since it was configured (it does not vote).\n# TYPE mxping_vantage_stale gauge\n");
        for name in self.trusted.keys() {
            let stale = state.get(name).is_none_or(|v| is_stale(v, now));
            let _ = writeln!(
                out,
                "mxping_vantage_stale{{vantage=\"{}\"}} {}",
                label(name),
                u8::from(stale)
            );
        }
        out.push_str("# HELP mxping_vantage_impaired 1 if the vantage's last report reached none of its servers (it does not vote).\n# TYPE mxping_vantage_impaired gauge\n");
        for (name, v) in state.iter() {
            let _ = writeln!(
                out,
                "mxping_vantage_impaired{{vantage=\"{}\"}} {}",
                label(name),
                u8::from(v.impaired)
            );
        }
        drop(state);
        out.push_str("# HELP mxping_vantage_reports_accepted_total Reports accepted, by vantage (a backlog sent after an outage counts each report).\n# TYPE mxping_vantage_reports_accepted_total counter\n");
        for (name, n) in self.accepted.lock().expect("hub lock").iter() {
            let _ = writeln!(
                out,
                "mxping_vantage_reports_accepted_total{{vantage=\"{}\"}} {n}",
                label(name)
            );
        }
        out.push_str("# HELP mxping_vantage_reports_rejected_total Reports refused, by reason (unsigned, malformed, unknown_vantage, bad_signature, name_mismatch, clock_skew, replayed, too_large, too_slow).\n# TYPE mxping_vantage_reports_rejected_total counter\n");
        for (reason, n) in self.rejected.lock().expect("hub lock").iter() {
            let _ = writeln!(
                out,
                "mxping_vantage_reports_rejected_total{{reason=\"{}\"}} {n}",
                reason.as_str()
            );
        }
        out
    }

    /// Checks the `Authorization` header alone: well formed, and a vantage this hub
    /// trusts. Done before the body is read, so a stranger cannot make the hub read
    /// megabytes.
    pub fn check_sender(&self, authorization: Option<&str>) -> Result<String, Rejected> {
        let header = authorization.ok_or_else(|| {
            rejected(
                RejectReason::Unsigned,
                "no Authorization header: reports must be signed".into(),
            )
        })?;
        let (name, _, _) = parse_authorization(header).ok_or_else(|| {
            rejected(
                RejectReason::Malformed,
                "the Authorization header is not MxpingVantage name=\"…\",key=\"…\",sig=\"…\""
                    .into(),
            )
        })?;
        if !self.trusted.contains_key(&name) {
            return Err(rejected(
                RejectReason::UnknownVantage,
                format!("{name:?} is not a [[vantage]] of this hub"),
            ));
        }
        Ok(name)
    }

    /// Verifies and records a report; the vantage's name when accepted.
    pub fn accept(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        now_ms: i64,
    ) -> Result<(String, usize), Rejected> {
        let header = authorization.ok_or_else(|| {
            rejected(
                RejectReason::Unsigned,
                "no Authorization header: reports must be signed".into(),
            )
        })?;
        let (name, key_id, sig) = parse_authorization(header).ok_or_else(|| {
            rejected(
                RejectReason::Malformed,
                "the Authorization header is not MxpingVantage name=\"…\",key=\"…\",sig=\"…\""
                    .into(),
            )
        })?;
        let key = self.trusted.get(&name).ok_or_else(|| {
            rejected(
                RejectReason::UnknownVantage,
                format!("{name:?} is not a [[vantage]] of this hub"),
            )
        })?;
        let sig = Signature::from_slice(&sig).map_err(|_| {
            rejected(
                RejectReason::BadSignature,
                format!("{name}: the signature is not 64 bytes"),
            )
        })?;
        key.verify(body, &sig).map_err(|_| {
            rejected(
                RejectReason::BadSignature,
                format!("{name}: the signature ({key_id}) does not match the body and the key configured for it"),
            )
        })?;
        let report: Report = serde_json::from_slice(body).map_err(|e| {
            rejected(
                RejectReason::Malformed,
                format!("{name}: the report is not valid JSON: {e}"),
            )
        })?;
        if report.vantage != name {
            return Err(rejected(
                RejectReason::NameMismatch,
                format!("signed as {name} but the report says {:?}", report.vantage),
            ));
        }
        if !(MIN_INTERVAL_S..=MAX_INTERVAL_S).contains(&report.interval_s) {
            return Err(rejected(
                RejectReason::Malformed,
                format!(
                    "{name}: interval_s {} is outside {MIN_INTERVAL_S} s to {MAX_INTERVAL_S} s",
                    report.interval_s
                ),
            ));
        }
        let skew_s = (report.sent_at_ms - now_ms) / 1000;
        if skew_s.abs() > MAX_SKEW_S {
            return Err(rejected(
                RejectReason::ClockSkew,
                format!(
                    "{name}: sent {}s {} the hub's clock (at most {MAX_SKEW_S}s allowed); fix the agent's clock (NTP)",
                    skew_s.abs(),
                    if skew_s > 0 { "ahead of" } else { "behind" }
                ),
            ));
        }
        // The views as the store keeps them, written before the report is acknowledged.
        let seen_json: Vec<String> = report
            .servers
            .iter()
            .map(|s| serde_json::to_string(s).unwrap_or_default())
            .collect();
        let _accepting = self.accepting.lock().expect("hub lock");
        let mut state = self.state.lock().expect("hub lock");
        if let Some(s) = state.get(&name)
            && report.sent_at_ms <= s.last_sent_at_ms
        {
            return Err(rejected(
                RejectReason::Replayed,
                format!("{name}: a report sent at or before the last one accepted (a replay)"),
            ));
        }
        let probed = report.servers.len();
        // Broken itself: it checked two or more servers and reached none (servers it has not
        // checked yet, or could not measure, say nothing either way).
        let impaired = super::impaired(
            report
                .servers
                .iter()
                .filter(|s| s.checked_at.is_some() && s.measured)
                .map(|s| s.up),
        );
        let mut history = state
            .remove(&name)
            .map(|old| old.history)
            .unwrap_or_default();
        for seen in &report.servers {
            history.entry(seen.server.clone()).or_default().add(seen);
        }
        // Servers the vantage no longer probes are forgotten.
        history.retain(|server, _| report.servers.iter().any(|s| &s.server == server));
        let kept = Kept {
            last_sent_at_ms: report.sent_at_ms,
            received_at: now_ms / 1000,
            interval_s: report.interval_s,
            impaired,
            servers: report
                .servers
                .iter()
                .zip(seen_json)
                .map(|(s, json)| {
                    let hours = history
                        .get(&s.server)
                        .map(Hours::encode)
                        .unwrap_or_default();
                    (s.server.clone(), json, hours)
                })
                .collect(),
        };
        let servers = report
            .servers
            .into_iter()
            .map(|s| (s.server.clone(), s))
            .collect();
        state.insert(
            name.clone(),
            VantageState {
                last_sent_at_ms: report.sent_at_ms,
                received_at: now_ms / 1000,
                interval_s: report.interval_s,
                impaired,
                servers,
                history,
            },
        );
        drop(state);
        if let Err(e) = self.store.save(&name, &kept) {
            // Accepted all the same: the hub's own store failing is not the agent's doing.
            tracing::error!("hub: the report of {name} could not be stored: {e}");
        }
        *self
            .accepted
            .lock()
            .expect("hub lock")
            .entry(name.clone())
            .or_default() += 1;
        Ok((name, probed))
    }

    /// One line per trusted vantage for `/healthz` at `now` (Unix seconds): whether it
    /// reports and votes.
    pub fn health(&self, now: i64) -> Vec<String> {
        let state = self.state.lock().expect("hub lock");
        self.trusted
            .keys()
            .map(|name| match state.get(name) {
                None => format!("vantage {name}: no report yet"),
                Some(v) => {
                    let ago = crate::i18n::duration(
                        crate::i18n::english(),
                        now - v.received_at,
                    );
                    if is_stale(v, now) {
                        format!("vantage {name}: stale (last report {ago} ago; it does not vote)")
                    } else if v.impaired {
                        format!(
                            "vantage {name}: impaired (it reaches none of its servers; it does not vote)"
                        )
                    } else {
                        format!("vantage {name}: ok (last report {ago} ago)")
                    }
                }
            })
            .collect()
    }

    /// The quorum's verdict for `server`, given the hub's own view (`own_name`, status,
    /// latency, check time, delegation, reason) at `now` (Unix seconds).
    pub fn verdict(
        &self,
        server: &str,
        own: &VantageView,
        own_reason: Option<Reason>,
        own_discovery: (Option<&str>, &[String]),
        now: i64,
    ) -> Verdict {
        let (own_delegation, own_addresses) = own_discovery;
        let state = self.state.lock().expect("hub lock");
        let mut views = vec![own.clone()];
        for name in self.trusted.keys() {
            let Some(v) = state.get(name) else { continue };
            let Some(seen) = v.servers.get(server) else {
                continue;
            };
            let stale = is_stale(v, now);
            let (uptime_24h, latency_24h_ms) =
                v.history.get(server).map_or((None, None), |h| h.day(now));
            views.push(VantageView {
                vantage: name.clone(),
                status: seen.status,
                latency_ms: seen.latency_ms,
                checked_at: seen.checked_at.clone(),
                stale,
                impaired: v.impaired,
                reached: seen.up,
                uptime_24h,
                latency_24h_ms,
                different_delegation: seen
                    .delegated_name
                    .as_ref()
                    .filter(|d| own_delegation.is_some_and(|o| o != d.as_str()))
                    .cloned(),
                // Compared only when both found addresses (a failed lookup is no evidence).
                different_addresses: (!own_addresses.is_empty()
                    && !seen.addresses.is_empty()
                    && seen.addresses.as_slice() != own_addresses)
                    .then(|| seen.addresses.clone()),
            });
        }
        drop(state);
        let voters: Vec<&VantageView> = views
            .iter()
            .filter(|v| !v.stale && !v.impaired && v.status != Status::Unknown)
            .collect();
        let red: Vec<String> = voters
            .iter()
            .filter(|v| v.status == Status::Red)
            .map(|v| v.vantage.clone())
            .collect();
        let of = voters.len() as u32;
        let reached = voters.iter().filter(|v| v.reached).count() as u32;
        let own_votes = voters.first().is_some_and(|v| std::ptr::eq(*v, &views[0]));
        let vantages = |unreachable_from| {
            Some(Reason::Vantages {
                unreachable_from,
                reached,
                of,
            })
        };
        let (status, reason) = if views.len() == 1 || voters.is_empty() {
            // Nobody else to ask, or nobody able to answer: the hub's own view stands.
            (own.status, own_reason)
        } else if red.is_empty() && own_votes {
            (own.status, own_reason)
        } else if red.is_empty() {
            // The hub's own probes are broken (impaired or stale): the voters decide, and a
            // server the hub cannot reach is not red for that.
            let degraded: Vec<String> = voters
                .iter()
                .filter(|v| v.status == Status::Yellow)
                .map(|v| v.vantage.clone())
                .collect();
            if degraded.is_empty() {
                (Status::Green, None)
            } else {
                (
                    Status::Yellow,
                    Some(Reason::DegradedFrom { vantages: degraded }),
                )
            }
        } else if red.len() * 2 > voters.len() {
            // Down from a majority: red, explained by the hub's own reason when it sees it
            // red too and votes.
            let reason = if own_votes && own.status == Status::Red {
                own_reason
            } else {
                vantages(red)
            };
            (Status::Red, reason)
        } else {
            (Status::Yellow, vantages(red))
        };
        Verdict {
            views,
            status,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::Key;

    fn report(name: &str, sent_at_ms: i64, servers: &[(&str, Status, bool)]) -> Vec<u8> {
        serde_json::to_vec(&Report {
            vantage: name.into(),
            sent_at_ms,
            interval_s: 30,
            servers: servers
                .iter()
                .map(|(s, status, up)| Seen {
                    server: (*s).into(),
                    status: *status,
                    up: *up,
                    measured: true,
                    latency_ms: up.then_some(20.0),
                    checked_at: Some("2027-01-15T08:00:00Z".into()),
                    error: None,
                    delegated_name: None,
                    addresses: Vec::new(),
                })
                .collect(),
        })
        .unwrap()
    }

    fn own(status: Status) -> VantageView {
        VantageView {
            vantage: "hub".into(),
            status,
            latency_ms: None,
            checked_at: None,
            stale: false,
            impaired: false,
            reached: status != Status::Red,
            uptime_24h: None,
            latency_24h_ms: None,
            different_delegation: None,
            different_addresses: None,
        }
    }

    #[test]
    fn only_signed_fresh_new_reports_of_known_vantages_count() {
        let (asia, eu, stranger) = (Key::generate(), Key::generate(), Key::generate());
        let hub = Hub::new(BTreeMap::from([
            ("asia".to_owned(), parse_public_key(&asia.public()).unwrap()),
            ("eu".to_owned(), parse_public_key(&eu.public()).unwrap()),
        ]));
        let now = 1_800_000_000_000;
        let body = report(
            "asia",
            now,
            &[
                ("a.test", Status::Red, false),
                ("b.test", Status::Green, true),
            ],
        );
        let sign = |k: &Key, n: &str, b: &[u8]| k.authorization(n, b);
        let reason = |r: Result<_, Rejected>| r.unwrap_err().reason.as_str();
        assert_eq!(reason(hub.accept(None, &body, now)), "unsigned");
        assert_eq!(
            reason(hub.accept(Some("Bearer x"), &body, now)),
            "malformed"
        );
        assert_eq!(
            reason(hub.accept(Some(&sign(&stranger, "mars", &body)), &body, now)),
            "unknown_vantage"
        );
        // Forged: a key that is not asia's, or a body changed after signing.
        assert_eq!(
            reason(hub.accept(Some(&sign(&stranger, "asia", &body)), &body, now)),
            "bad_signature"
        );
        let mut changed = body.clone();
        changed[10] ^= 1;
        assert_eq!(
            reason(hub.accept(Some(&sign(&asia, "asia", &body)), &changed, now)),
            "bad_signature"
        );
        // Signed by eu, claiming to be asia inside.
        assert_eq!(
            reason(hub.accept(Some(&sign(&eu, "eu", &body)), &body, now)),
            "name_mismatch"
        );
        let late = report("asia", now - 600_000, &[]);
        let e = hub
            .accept(Some(&sign(&asia, "asia", &late)), &late, now)
            .unwrap_err();
        assert_eq!(e.reason, RejectReason::ClockSkew);
        assert!(e.detail.contains("600s behind"), "{}", e.detail);
        assert_eq!(
            hub.accept(Some(&sign(&asia, "asia", &body)), &body, now),
            Ok(("asia".into(), 2))
        );
        assert_eq!(
            reason(hub.accept(Some(&sign(&asia, "asia", &body)), &body, now)),
            "replayed"
        );
        let bad = b"{not json";
        assert_eq!(
            reason(hub.accept(Some(&sign(&asia, "asia", bad)), bad, now)),
            "malformed"
        );
    }

    #[test]
    fn each_vantage_keeps_a_day_of_rounds_counting_each_once() {
        let key = Key::generate();
        let hub = Hub::new(BTreeMap::from([(
            "asia".to_owned(),
            parse_public_key(&key.public()).unwrap(),
        )]));
        let t0 = 1_800_000_000i64;
        let at = |s: i64| crate::timestamp::format(OffsetDateTime::from_unix_timestamp(s).unwrap());
        let sent = std::cell::Cell::new(t0);
        let send = |checked: i64, up: bool| {
            sent.set(sent.get() + 1);
            let sent = sent.get();
            let body = serde_json::to_vec(&Report {
                vantage: "asia".into(),
                sent_at_ms: sent * 1000,
                interval_s: 30,
                servers: vec![Seen {
                    server: "x.test".into(),
                    status: if up { Status::Green } else { Status::Red },
                    up,
                    measured: true,
                    latency_ms: up.then_some(40.0),
                    checked_at: Some(at(checked)),
                    error: None,
                    delegated_name: None,
                    addresses: Vec::new(),
                }],
            })
            .unwrap();
            hub.accept(Some(&key.authorization("asia", &body)), &body, sent * 1000)
                .unwrap();
        };
        // A backlog after an outage: three rounds, one of them reported twice (no new round
        // between two reports), in order.
        send(t0 - 7200, true);
        send(t0 - 3600, false);
        send(t0 - 3600, false);
        send(t0 - 60, true);
        // An hour older than a day is gone.
        let v = hub.verdict("x.test", &own(Status::Green), None, (None, &[]), sent.get());
        let asia = &v.views[1];
        assert_eq!(asia.uptime_24h, Some(2.0 / 3.0));
        assert_eq!(asia.latency_24h_ms, Some(40.0));
        send(t0 + 25 * 3600, true);
        let v = hub.verdict(
            "x.test",
            &own(Status::Green),
            None,
            (None, &[]),
            t0 + 25 * 3600,
        );
        assert_eq!(
            v.views[1].uptime_24h,
            Some(1.0),
            "the old hours are dropped"
        );
    }

    #[test]
    fn a_vantage_that_probes_other_addresses_or_delegations_is_flagged() {
        let key = Key::generate();
        let hub = Hub::new(BTreeMap::from([(
            "asia".to_owned(),
            parse_public_key(&key.public()).unwrap(),
        )]));
        let now = 1_800_000_000i64;
        let body = serde_json::to_vec(&Report {
            vantage: "asia".into(),
            sent_at_ms: now * 1000,
            interval_s: 30,
            servers: vec![Seen {
                server: "x.test".into(),
                status: Status::Green,
                up: true,
                measured: true,
                latency_ms: Some(9.0),
                checked_at: None,
                error: None,
                delegated_name: Some("asia.x.test".into()),
                addresses: vec!["192.0.2.9:8448".into()],
            }],
        })
        .unwrap();
        hub.accept(Some(&key.authorization("asia", &body)), &body, now * 1000)
            .unwrap();
        let mine = ["192.0.2.1:8448".to_owned()];
        let asia = |disc: (Option<&str>, &[String])| {
            hub.verdict("x.test", &own(Status::Green), None, disc, now)
                .views[1]
                .clone()
        };
        let v = asia((Some("x.test"), &mine));
        assert_eq!(v.different_delegation.as_deref(), Some("asia.x.test"));
        assert_eq!(
            v.different_addresses,
            Some(vec!["192.0.2.9:8448".to_owned()])
        );
        let same = ["192.0.2.9:8448".to_owned()];
        let v = asia((Some("asia.x.test"), &same));
        assert_eq!(
            (v.different_delegation, v.different_addresses),
            (None, None)
        );
        // The hub found nothing to compare with: nothing is flagged.
        let v = asia((None, &[]));
        assert_eq!(
            (v.different_delegation, v.different_addresses),
            (None, None)
        );
    }

    #[test]
    fn the_quorum_goes_red_only_with_a_majority_and_ignores_stale_and_impaired_vantages() {
        let keys: Vec<Key> = (0..3).map(|_| Key::generate()).collect();
        let names = ["asia", "eu", "us"];
        let hub = Hub::new(
            names
                .iter()
                .zip(&keys)
                .map(|(n, k)| (n.to_string(), parse_public_key(&k.public()).unwrap()))
                .collect(),
        );
        let now_s = 1_800_000_000;
        let send = |i: usize, servers: &[(&str, Status, bool)], at_s: i64| {
            let body = report(names[i], at_s * 1000, servers);
            hub.accept(
                Some(&keys[i].authorization(names[i], &body)),
                &body,
                at_s * 1000,
            )
            .unwrap();
        };
        let ok = ("x.test", Status::Green, true);
        let down = ("x.test", Status::Red, false);
        let other = ("y.test", Status::Green, true);
        send(0, &[down, other], now_s);
        send(1, &[ok, other], now_s);
        let v = hub.verdict("x.test", &own(Status::Green), None, (None, &[]), now_s);
        assert_eq!(
            v.status,
            Status::Yellow,
            "one of three: only from somewhere"
        );
        assert_eq!(
            v.reason.unwrap().to_string(),
            "unreachable from asia (2 of 3 vantages reach it)"
        );
        send(1, &[down, other], now_s + 1);
        let v = hub.verdict("x.test", &own(Status::Green), None, (None, &[]), now_s + 1);
        assert_eq!(v.status, Status::Red, "two of three: down");
        // eu stops reporting: after three intervals it does not vote, and 1 of 2 is not a
        // majority.
        send(0, &[down, other], now_s + 200);
        let v = hub.verdict(
            "x.test",
            &own(Status::Green),
            None,
            (None, &[]),
            now_s + 200,
        );
        assert!(v.views.iter().any(|x| x.vantage == "eu" && x.stale));
        assert_eq!(v.status, Status::Yellow);
        // A vantage that reaches nothing is impaired and does not vote.
        send(2, &[down, ("y.test", Status::Red, false)], now_s + 201);
        let v = hub.verdict(
            "x.test",
            &own(Status::Green),
            None,
            (None, &[]),
            now_s + 201,
        );
        assert!(v.views.iter().any(|x| x.vantage == "us" && x.impaired));
        assert_eq!(
            v.status,
            Status::Yellow,
            "asia red, hub green; us does not count"
        );
        // Alone, the hub's own view stands.
        let lone = Hub::new(BTreeMap::new());
        let v = lone.verdict("x.test", &own(Status::Red), None, (None, &[]), now_s);
        assert_eq!((v.status, v.views.len()), (Status::Red, 1));
    }

    fn hub_of(names: &[&str]) -> (Hub, Vec<Key>) {
        let keys: Vec<Key> = names.iter().map(|_| Key::generate()).collect();
        let hub = Hub::new(
            names
                .iter()
                .zip(&keys)
                .map(|(n, k)| ((*n).to_owned(), parse_public_key(&k.public()).unwrap()))
                .collect(),
        );
        (hub, keys)
    }

    #[test]
    fn a_report_stating_an_interval_outside_a_second_to_an_hour_is_refused() {
        let (hub, keys) = hub_of(&["asia"]);
        let now = 1_800_000_000_000i64;
        for (i, interval_s) in [0, 3601, u64::MAX, 1, 3600].into_iter().enumerate() {
            let sent = now + i as i64;
            let body = serde_json::to_vec(&Report {
                vantage: "asia".into(),
                sent_at_ms: sent,
                interval_s,
                servers: Vec::new(),
            })
            .unwrap();
            let r = hub.accept(Some(&keys[0].authorization("asia", &body)), &body, sent);
            if interval_s == 1 || interval_s == 3600 {
                assert!(r.is_ok(), "{interval_s}: {r:?}");
            } else {
                let e = r.unwrap_err();
                assert_eq!(e.reason, RejectReason::Malformed, "{interval_s}");
                assert!(e.detail.contains("outside 1 s to 3600 s"), "{}", e.detail);
            }
        }
        // Staleness is computed without overflow for the longest interval.
        let v = hub.verdict(
            "x.test",
            &own(Status::Green),
            None,
            (None, &[]),
            i64::MAX / 2,
        );
        assert_eq!(v.status, Status::Green);
    }

    #[test]
    fn a_vantage_named_in_chinese_is_read_from_its_header() {
        let (hub, keys) = hub_of(&["上海"]);
        let now = 1_800_000_000_000i64;
        let body = report("上海", now, &[("x.test", Status::Green, true)]);
        let header = keys[0].authorization("上海", &body);
        assert!(header.is_ascii(), "{header}");
        assert_eq!(hub.check_sender(Some(&header)), Ok("上海".to_owned()));
        assert_eq!(
            hub.accept(Some(&header), &body, now),
            Ok(("上海".to_owned(), 1))
        );
    }

    #[test]
    fn rounds_that_could_not_be_measured_do_not_make_a_vantage_impaired() {
        let (hub, keys) = hub_of(&["v4only"]);
        let now = 1_800_000_000i64;
        // An IPv4-only vantage: two IPv6-only servers it cannot measure, one it reaches.
        let seen = |server: &str, up: bool, measured: bool| Seen {
            server: server.into(),
            status: if up { Status::Green } else { Status::Unknown },
            up,
            measured,
            latency_ms: up.then_some(5.0),
            checked_at: Some("2027-01-15T08:00:00Z".into()),
            error: None,
            delegated_name: None,
            addresses: Vec::new(),
        };
        let body = serde_json::to_vec(&Report {
            vantage: "v4only".into(),
            sent_at_ms: now * 1000,
            interval_s: 30,
            servers: vec![
                seen("six-a.test", false, false),
                seen("six-b.test", false, false),
                seen("dual.test", true, true),
            ],
        })
        .unwrap();
        hub.accept(
            Some(&keys[0].authorization("v4only", &body)),
            &body,
            now * 1000,
        )
        .unwrap();
        let v = hub.verdict("dual.test", &own(Status::Green), None, (None, &[]), now);
        assert!(!v.views[1].impaired, "{:?}", v.views[1]);
        let v = hub.verdict("six-a.test", &own(Status::Green), None, (None, &[]), now);
        assert!(!v.views[1].impaired);
        // Nor does an unmeasured round count against the server in the vantage's day.
        assert_eq!(v.views[1].uptime_24h, None);
    }

    #[test]
    fn a_hub_whose_own_probes_reach_nothing_does_not_outvote_its_agents() {
        let (hub, keys) = hub_of(&["asia", "eu"]);
        let now = 1_800_000_000i64;
        for (i, name) in ["asia", "eu"].iter().enumerate() {
            let body = report(
                name,
                now * 1000,
                &[
                    ("x.test", Status::Green, true),
                    ("y.test", Status::Yellow, true),
                ],
            );
            hub.accept(Some(&keys[i].authorization(name, &body)), &body, now * 1000)
                .unwrap();
        }
        let mut broken = own(Status::Red);
        broken.impaired = true;
        broken.reached = false;
        let down = Some(Reason::Down {
            failed: 3,
            cause: Box::new(Reason::Failed {
                kind: None,
                message: String::new(),
            }),
        });
        let v = hub.verdict("x.test", &broken, down.clone(), (None, &[]), now);
        assert_eq!((v.status, v.reason), (Status::Green, None));
        let v = hub.verdict("y.test", &broken, down.clone(), (None, &[]), now);
        assert_eq!(v.status, Status::Yellow);
        assert_eq!(
            v.reason.unwrap().to_string(),
            "degraded as seen from asia, eu"
        );
        // When a voting majority sees it red, it is red, explained by them (not by the hub's
        // broken probes).
        let mut owned = own(Status::Red);
        owned.impaired = true;
        let body = report("asia", now * 1000 + 1, &[("x.test", Status::Red, false)]);
        hub.accept(
            Some(&keys[0].authorization("asia", &body)),
            &body,
            now * 1000 + 1,
        )
        .unwrap();
        let body = report("eu", now * 1000 + 1, &[("x.test", Status::Red, false)]);
        hub.accept(
            Some(&keys[1].authorization("eu", &body)),
            &body,
            now * 1000 + 1,
        )
        .unwrap();
        let v = hub.verdict("x.test", &owned, down, (None, &[]), now);
        assert_eq!(v.status, Status::Red);
        assert_eq!(
            v.reason.unwrap().to_string(),
            "unreachable from asia, eu (0 of 2 vantages reach it)"
        );
    }

    #[test]
    fn a_restarted_hub_refuses_replays_and_keeps_each_vantages_day() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mxping.sqlite3");
        let key = Key::generate();
        let trusted =
            || BTreeMap::from([("asia".to_owned(), parse_public_key(&key.public()).unwrap())]);
        let now = 1_800_000_000i64;
        let body = report("asia", now * 1000, &[("x.test", Status::Green, true)]);
        let auth = key.authorization("asia", &body);
        let hub = Hub::with_store(trusted(), HubStore::open(Some(&file)).unwrap());
        hub.accept(Some(&auth), &body, now * 1000).unwrap();
        let before = hub.verdict("x.test", &own(Status::Green), None, (None, &[]), now);
        drop(hub);

        let hub = Hub::with_store(trusted(), HubStore::open(Some(&file)).unwrap());
        // The captured report, replayed after the restart.
        let e = hub
            .accept(Some(&auth), &body, now * 1000 + 5000)
            .unwrap_err();
        assert_eq!(e.reason, RejectReason::Replayed);
        let after = hub.verdict("x.test", &own(Status::Green), None, (None, &[]), now);
        assert_eq!(after.views, before.views, "the view and the day are back");
        assert_eq!(after.views[1].uptime_24h, Some(1.0));
        assert!(hub.health(now + 5)[0].starts_with("vantage asia: ok (last report"));
        assert!(hub.health(now + 1000)[0].starts_with("vantage asia: stale"));
        drop(hub);

        // A vantage no longer configured is forgotten.
        let hub = Hub::with_store(BTreeMap::new(), HubStore::open(Some(&file)).unwrap());
        drop(hub);
        let hub = Hub::with_store(trusted(), HubStore::open(Some(&file)).unwrap());
        assert_eq!(
            hub.health(now),
            vec!["vantage asia: no report yet".to_owned()]
        );
        hub.accept(Some(&auth), &body, now * 1000).unwrap();
    }

    #[test]
    fn hours_are_stored_as_they_were_and_damaged_bytes_are_refused() {
        let mut h = Hours::default();
        let at = |s: i64| crate::timestamp::format(OffsetDateTime::from_unix_timestamp(s).unwrap());
        for (i, up) in [true, false, true].into_iter().enumerate() {
            h.add(&Seen {
                server: "x".into(),
                status: Status::Green,
                up,
                measured: true,
                latency_ms: up.then_some(12.5),
                checked_at: Some(at(1_800_000_000 + i as i64 * 1800)),
                error: None,
                delegated_name: None,
                addresses: Vec::new(),
            });
        }
        let bytes = h.encode();
        let back = Hours::decode(&bytes).unwrap();
        assert_eq!(back.day(1_800_004_000), h.day(1_800_004_000));
        assert_eq!(back.last_checked, h.last_checked);
        assert!(Hours::decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(Hours::decode(&[]).is_none());
    }
}
