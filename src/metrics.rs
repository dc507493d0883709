//! The Prometheus metrics of design.md. Labels come from bounded sets (server names from the
//! config, error kinds, phases, windows) or are length-capped (software name and version from
//! the servers themselves). Series of a server are removed when it leaves the config, and
//! stale `_info` series when values change.
//!
//! The per-server families live in one compact record per server and are written straight
//! into the text format: with thousands of servers, the `prometheus` crate's per-series
//! objects (label pairs, descriptors, atomics) cost about ten times the memory, and its
//! gather-then-encode rendering several times the time. Process-wide metrics (build info,
//! reloads, scheduler lateness, process) stay in a `prometheus` registry, rendered first.
//!
//! Histogram buckets for `mxping_phase_duration_seconds` (seconds): 1 ms to 10 s, dense
//! between 10 ms and 300 ms where Internet round trips and TLS handshakes fall, with 200 ms
//! (the default `green_below`) as a bucket edge so the green/yellow boundary can be queried.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use smallvec::SmallVec;

use crate::history::WINDOWS;
use crate::probe::Software;
use crate::probe::apps::{Check, Clients, LoginWay};
use crate::probe::signup::SignupStatus;
use crate::report::Round;
use crate::status::Status;
use crate::text;

/// Buckets of `mxping_phase_duration_seconds`.
pub(crate) const PHASE_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0,
    10.0,
];
/// Buckets of `mxping_scheduler_lateness_seconds`.
pub(crate) const LATENESS_BUCKETS: [f64; 10] =
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
/// Longest software/version label value.
const MAX_LABEL_CHARS: usize = 64;

/// Phases observed in `mxping_phase_duration_seconds`, in series order.
const PHASES: [&str; 4] = ["discovery", "connect", "tls", "request"];

/// One histogram series: per-bucket (not cumulative) counts, the `+Inf` overflow, the sum.
#[derive(Clone, Default)]
struct PhaseHistogram {
    buckets: [u64; PHASE_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl PhaseHistogram {
    fn observe(&mut self, v: f64) {
        if let Some(i) = PHASE_BUCKETS.iter().position(|le| v <= *le) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += v;
    }
}

/// Every per-server series of one server.
#[derive(Clone)]
struct ServerSeries {
    up: Option<bool>,
    status: Status,
    latency_s: Option<f64>,
    /// Its own phase histograms, when opted in (`per_server_phases`).
    phases: Phases,
    /// (ip_family, result) → rounds. Inline for the usual one or two (each address family
    /// answering `ok`): one heap record fewer per server for a scrape to read.
    probes: SmallVec<[(&'static str, &'static str, u64); 2]>,
    /// Its discovery, software and certificate lines, written out.
    info: InfoLines,
    /// By [`WINDOWS`] index.
    uptime: [Option<f64>; WINDOWS.len()],
    /// The last sign-up check's verdict.
    signup: Option<SignupStatus>,
    /// By [`CLIENT_FEATURES`] index: measured present (1) or absent (0).
    features: [Option<bool>; CLIENT_FEATURES.len()],
    /// The last signed federation check: accepted, and the public rooms it listed.
    federation: Option<(bool, Option<u64>)>,
    /// In a maintenance window.
    maintenance: bool,
}

/// The `feature` label values of `mxping_client_feature`, at most five series per server.
const CLIENT_FEATURES: [&str; 5] = [
    "sliding_sync",
    "cors_well_known",
    "cors_client_api",
    "authenticated_media",
    "next_generation_auth",
];

impl ServerSeries {
    fn new(status: Status) -> Self {
        ServerSeries {
            up: None,
            status,
            latency_s: None,
            phases: Default::default(),
            probes: SmallVec::new(),
            info: InfoLines::default(),
            uptime: [None; WINDOWS.len()],
            signup: None,
            features: [None; CLIENT_FEATURES.len()],
            federation: None,
            maintenance: false,
        }
    }

    fn observe(&mut self, phase: usize, seconds: f64) {
        self.phases[phase]
            .get_or_insert_with(Default::default)
            .observe(seconds);
    }

    fn set_uptime(&mut self, uptime: &[(&str, Option<f64>)]) {
        for (window, ratio) in uptime {
            if let (Some(i), Some(v)) = (WINDOWS.iter().position(|w| w.0 == *window), ratio) {
                self.uptime[i] = Some(*v);
            }
        }
    }
}

/// The lines of one server whose label values come from its discovery and from the server
/// itself — `mxping_discovery_info`, `mxping_server_info`, and the certificate expiry of each
/// address — kept written out in one allocation and replaced only when their text changes.
/// These values rarely change, yet each round allocated them anew (five or more small
/// allocations per server), and at 10,000 servers reading them back from all over the heap at
/// each scrape was most of the render time.
#[derive(Clone, Default)]
struct InfoLines {
    text: Box<str>,
    /// Where the `mxping_server_info` line and the certificate lines start in `text`.
    starts: [u32; 2],
}

/// What [`InfoLines`] are written from.
struct InfoValues<'a, C> {
    /// (method, delegated name).
    discovery: Option<(&'a str, &'a str)>,
    software: Option<&'a Software>,
    /// (address, notAfter as Unix seconds) of each address that presented a certificate.
    certs: C,
}

impl InfoLines {
    /// Writes the lines of `server` into `scratch` (cleared first) and returns where the
    /// second and third families start. Values from the servers are capped at
    /// [`MAX_LABEL_CHARS`] (control characters become spaces) and escaped.
    fn write<C, A>(scratch: &mut String, server: &str, values: InfoValues<'_, C>) -> [u32; 2]
    where
        C: IntoIterator<Item = (A, i64)>,
        A: std::fmt::Display,
    {
        scratch.clear();
        if let Some((method, delegated)) = values.discovery {
            push_all(
                scratch,
                &["mxping_discovery_info{server=\"", server, "\",method=\""],
            );
            push_capped_label(scratch, method);
            scratch.push_str("\",delegated_name=\"");
            push_capped_label(scratch, delegated);
            scratch.push_str("\"} 1\n");
        }
        let info_start = scratch.len() as u32;
        if let Some(software) = values.software {
            push_all(
                scratch,
                &["mxping_server_info{server=\"", server, "\",software=\""],
            );
            push_capped_label(scratch, &software.name);
            scratch.push_str("\",version=\"");
            push_capped_label(scratch, &software.version);
            scratch.push_str("\"} 1\n");
        }
        let certs_start = scratch.len() as u32;
        for (address, not_after) in values.certs {
            push_all(
                scratch,
                &[
                    "mxping_tls_certificate_expiry_timestamp_seconds{server=\"",
                    server,
                    "\",address=\"",
                ],
            );
            // An address's text has no character the format escapes.
            let _ = write!(scratch, "{address}");
            scratch.push_str("\"} ");
            push_value(scratch, not_after as f64);
        }
        [info_start, certs_start]
    }

    /// Takes what `scratch` holds (written by [`InfoLines::write`]) unless it is what these
    /// lines already say: an unchanged round allocates nothing.
    fn update(&mut self, scratch: &str, starts: [u32; 2]) {
        if *self.text != *scratch || self.starts != starts {
            *self = InfoLines {
                text: scratch.into(),
                starts,
            };
        }
    }

    /// The discovery, server-info and certificate lines.
    fn families(&self) -> [&str; 3] {
        let [a, b] = self.starts.map(|i| i as usize);
        [&self.text[..a], &self.text[a..b], &self.text[b..]]
    }
}

/// Every metric mxping exports.
pub struct Metrics {
    registry: Registry,
    /// Each server's series behind an `Arc`: a scrape takes the map's `Arc`s (no copies of
    /// the series), and a round that finishes meanwhile writes a copy of its own.
    servers: Mutex<BTreeMap<Arc<str>, Arc<ServerSeries>>>,
    reload_ok: IntGauge,
    reload_time: Gauge,
    lateness: Histogram,
    in_flight: IntGauge,
    source_ok: IntGaugeVec,
    source_servers: IntGaugeVec,
    alerts_sent: IntCounterVec,
    alert_queue: IntGaugeVec,
    /// Phase histograms of every server not opted into its own, by [`PHASES`] index.
    pooled: Mutex<Phases>,
    /// The monitor's own resource failures.
    troubles: Arc<crate::net::trouble::Troubles>,
}

/// One histogram per phase, by [`PHASES`] index; a phase appears once observed.
type Phases = [Option<Box<PhaseHistogram>>; 4];

/// Calls `observe(phase index, seconds)` for every phase duration of `round`.
fn observe_phases(round: &Round, discovery_ran: bool, mut observe: impl FnMut(usize, f64)) {
    if discovery_ran {
        observe(0, round.resolution.duration_ms / 1000.0);
    }
    for a in &round.addresses {
        let p = &a.phases_ms;
        if let Some(c) = p.connect {
            observe(1, c / 1000.0);
        }
        if let Some(t) = p.tls {
            observe(2, t / 1000.0);
        }
        for req in &p.requests {
            observe(3, req / 1000.0);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the process-wide metrics; per-server series appear with their servers.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new("mxping_build_info", "Build information; always 1."),
            &["version"],
        )
        .expect("valid metric");
        r.register(Box::new(build.clone()))
            .expect("registered once");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let reload_ok = IntGauge::new(
            "mxping_config_last_reload_successful",
            "1 if the last configuration (re)load succeeded, else 0.",
        )
        .expect("valid metric");
        r.register(Box::new(reload_ok.clone()))
            .expect("registered once");
        let reload_time = Gauge::new(
            "mxping_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load.",
        )
        .expect("valid metric");
        r.register(Box::new(reload_time.clone()))
            .expect("registered once");
        let lateness = Histogram::with_opts(
            HistogramOpts::new("mxping_scheduler_lateness_seconds", "How late probe rounds start compared with their schedule (queueing for the concurrency cap included).")
                .buckets(LATENESS_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        r.register(Box::new(lateness.clone()))
            .expect("registered once");
        let in_flight = IntGauge::new("mxping_probes_in_flight", "Probe rounds running now.")
            .expect("valid metric");
        r.register(Box::new(in_flight.clone()))
            .expect("registered once");
        let source_ok = IntGaugeVec::new(
            Opts::new(
                "mxping_source_ok",
                "1 if the last read of a [[source]] list succeeded, else 0 (the last good list keeps running).",
            ),
            &["source"],
        )
        .expect("valid metric");
        r.register(Box::new(source_ok.clone()))
            .expect("registered once");
        let source_servers = IntGaugeVec::new(
            Opts::new(
                "mxping_source_servers",
                "Servers in the last good copy of a [[source]] list.",
            ),
            &["source"],
        )
        .expect("valid metric");
        r.register(Box::new(source_servers.clone()))
            .expect("registered once");
        let alerts_sent = IntCounterVec::new(
            Opts::new(
                "mxping_alerts_sent_total",
                "Attempts to deliver an alert, by [[alert]] channel and result: sent, rate_limited (429), unreachable (no answer, or a server error), rejected (refused: token, room, power, a 4xx), expired (given up after a day).",
            ),
            &["channel", "result"],
        )
        .expect("valid metric");
        r.register(Box::new(alerts_sent.clone()))
            .expect("registered once");
        let alert_queue = IntGaugeVec::new(
            Opts::new(
                "mxping_alert_queue_messages",
                "Alert messages written to the outbox and not yet delivered, by [[alert]] channel.",
            ),
            &["channel"],
        )
        .expect("valid metric");
        r.register(Box::new(alert_queue.clone()))
            .expect("registered once");
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("registered once");
        let troubles = Arc::new(crate::net::trouble::Troubles::register(&r));
        Metrics {
            troubles,
            registry: r,
            servers: Mutex::new(BTreeMap::new()),
            reload_ok,
            reload_time,
            lateness,
            in_flight,
            source_ok,
            source_servers,
            alerts_sent,
            alert_queue,
            pooled: Mutex::new(Default::default()),
        }
    }

    /// Records a read of the list `source`: whether it succeeded, and how many servers the
    /// last good copy has.
    pub fn set_source(&self, source: &str, ok: bool, servers: usize) {
        let label = text::cap_to(source, MAX_LABEL_CHARS);
        self.source_ok
            .with_label_values(&[&label])
            .set(i64::from(ok));
        self.source_servers
            .with_label_values(&[&label])
            .set(servers as i64);
    }

    /// Counts one attempt to deliver an alert on `channel`.
    pub fn alert_attempt(&self, channel: &str, result: &str) {
        self.alerts_sent
            .with_label_values(&[&text::cap_to(channel, MAX_LABEL_CHARS), result])
            .inc();
    }

    /// Sets how many alert messages wait in `channel`'s outbox.
    pub fn alert_queue(&self, channel: &str, messages: usize) {
        self.alert_queue
            .with_label_values(&[&text::cap_to(channel, MAX_LABEL_CHARS)])
            .set(messages as i64);
    }

    /// Removes the series of a channel no longer configured.
    pub fn remove_alert_channel(&self, channel: &str) {
        let label = text::cap_to(channel, MAX_LABEL_CHARS);
        let _ = self.alert_queue.remove_label_values(&[&label]);
        for result in ["sent", "rate_limited", "unreachable", "rejected", "expired"] {
            let _ = self.alerts_sent.remove_label_values(&[&label, result]);
        }
    }

    fn with_server(&self, server: &str, f: impl FnOnce(&mut ServerSeries)) {
        let mut servers = self.servers.lock().expect("metrics lock");
        match servers.get_mut(server) {
            Some(s) => f(Arc::make_mut(s)),
            None => {
                let mut s = ServerSeries::new(Status::Unknown);
                f(&mut s);
                servers.insert(Arc::from(server), Arc::new(s));
            }
        }
    }

    /// Creates the series of a server before its first round (status unknown).
    pub fn add_server(&self, server: &str) {
        self.set_status(server, Status::Unknown);
    }

    /// Sets the series a restored history determines before the first round of this run.
    pub fn restore_server(&self, server: &str, status: Status, uptime: &[(&str, Option<f64>)]) {
        self.with_server(server, |s| {
            s.status = status;
            s.set_uptime(uptime);
        });
    }

    /// Sets the status series of `server`.
    pub fn set_status(&self, server: &str, current: Status) {
        self.with_server(server, |s| s.status = current);
    }

    /// Records a finished round of `server`, whose status is now `status`.
    /// `discovery_ran` is false when the round reused a cached resolution. The round's phase
    /// durations go into the server's own histograms when `per_server_phases`, else into the
    /// pooled ones (without a `server` label), which every other server shares.
    pub fn observe_round(
        &self,
        server: &str,
        round: &Round,
        discovery_ran: bool,
        status: Status,
        uptime: &[(&str, Option<f64>)],
        per_server_phases: bool,
    ) {
        let r = &round.resolution;
        let mut info = String::with_capacity(512);
        let starts = InfoLines::write(
            &mut info,
            server,
            InfoValues {
                discovery: r.method.map(|m| (m.as_str(), &*r.delegated_name)),
                software: round.addresses.iter().find_map(|a| a.software.as_ref()),
                certs: round.addresses.iter().filter_map(|a| {
                    let cert = a.tls.as_ref()?.certificate.as_ref()?;
                    Some((a.address, cert.not_after.unix_timestamp()))
                }),
            },
        );
        self.with_server(server, |s| {
            s.up = Some(round.any_ok());
            s.status = status;
            s.latency_s = round.latency_ms().map(|ms| ms / 1000.0);
            if per_server_phases {
                observe_phases(round, discovery_ran, |i, v| s.observe(i, v));
            } else {
                // A server that stopped being opted in keeps no stale histograms.
                s.phases = Default::default();
            }
            let mut count = |family: &'static str, result: &'static str| match s
                .probes
                .iter_mut()
                .find(|p| p.0 == family && p.1 == result)
            {
                Some(p) => p.2 += 1,
                None => s.probes.push((family, result, 1)),
            };
            for a in &round.addresses {
                count(
                    a.ip_family.as_str(),
                    a.error.as_ref().map_or("ok", |e| e.kind.as_str()),
                );
            }
            if let (Some(e), true) = (&r.error, round.addresses.is_empty()) {
                // Discovery failed before any address: counted under ip_family "none".
                count("none", e.kind.as_str());
            }
            s.set_uptime(uptime);
            s.info.update(&info, starts);
        });
        if !per_server_phases {
            let mut pooled = self.pooled.lock().expect("pooled lock");
            observe_phases(round, discovery_ran, |i, v| {
                pooled[i].get_or_insert_with(Default::default).observe(v);
            });
        }
    }

    /// Records the verdict of a sign-up check of `server`.
    pub fn set_signup(&self, server: &str, status: SignupStatus) {
        self.with_server(server, |s| s.signup = Some(status));
    }

    /// Records what the apps need that a server has (`mxping_client_feature`); a feature
    /// not measured has no series.
    pub fn set_clients(&self, server: &str, c: &Clients) {
        let features = [
            c.sliding_sync,
            c.cors.well_known,
            c.cors.client_api,
            c.authenticated_media,
            c.passes(Check::ClientApi)
                .filter(|ok| *ok)
                .map(|_| c.login.contains(&LoginWay::Oauth)),
        ];
        self.with_server(server, |s| s.features = features);
    }

    /// Records a signed federation check of `server` (`mxping_federation_outbound_ok`,
    /// `mxping_public_rooms`).
    pub fn set_federation(&self, server: &str, o: &crate::probe::federation::Outbound) {
        use crate::probe::federation::{Directory, Outcome};
        let rooms = match &o.directory {
            Some(Directory::Shared { rooms, .. }) => Some(*rooms),
            _ => None,
        };
        self.with_server(server, |s| {
            s.federation = Some((o.outbound == Outcome::BothWays, rooms));
        });
    }

    /// Records whether `server` is in a maintenance window (`mxping_maintenance`).
    pub fn set_maintenance(&self, server: &str, on: bool) {
        self.with_server(server, |s| s.maintenance = on);
    }

    /// Removes a server's federation series (`[federation]` was removed).
    pub fn clear_federation(&self, server: &str) {
        self.with_server(server, |s| s.federation = None);
    }

    /// Removes a server's sign-up and app series (its checks were turned off).
    pub fn clear_signup(&self, server: &str) {
        self.with_server(server, |s| {
            s.signup = None;
            s.features = [None; CLIENT_FEATURES.len()];
        });
    }

    /// Removes every series of a server that left the config.
    pub fn remove_server(&self, server: &str) {
        self.servers.lock().expect("metrics lock").remove(server);
    }

    /// Records the outcome of a configuration (re)load.
    pub fn config_loaded(&self, ok: bool) {
        self.reload_ok.set(i64::from(ok));
        if ok {
            self.reload_time
                .set(time::OffsetDateTime::now_utc().unix_timestamp() as f64);
        }
    }

    /// Records how late a round started.
    pub fn observe_lateness(&self, seconds: f64) {
        self.lateness.observe(seconds);
    }

    /// The registry, for metrics registered elsewhere (the web listener's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The monitor's own resource failures: counted here, shown in `/healthz` and the page.
    pub fn troubles(&self) -> &Arc<crate::net::trouble::Troubles> {
        &self.troubles
    }

    /// The in-flight rounds gauge.
    pub fn in_flight(&self) -> &IntGauge {
        &self.in_flight
    }

    /// The text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        self.render_parts().concat()
    }

    /// The text exposition in parts that follow one another: the process-wide metrics, then
    /// each per-server family's HELP and TYPE lines and its samples. At 10,000 servers the
    /// text is about 10 MB; a response sends the parts as they are, where joining them first
    /// copied all of it once more into memory fresh from the kernel.
    pub fn render_parts(&self) -> Vec<String> {
        let mut head = Vec::with_capacity(8 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut head)
            .expect("text encoding never fails");
        // Take the series under the lock (reference counts only), format outside it: rounds
        // finishing meanwhile wait microseconds, not the whole rendering.
        let servers: Vec<(Arc<str>, Arc<ServerSeries>)> = self
            .servers
            .lock()
            .expect("metrics lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let pooled = self.pooled.lock().expect("pooled lock").clone();
        let mut parts = vec![String::from_utf8(head).expect("the text format is UTF-8")];
        write_servers(&mut parts, &servers, &pooled);
        parts
    }
}

/// One `mxping_phase_duration_seconds` histogram with `labels` (cumulative buckets, `+Inf`,
/// sum, count).
fn write_histogram(out: &mut String, labels: &str, bounds: &[String], h: &PhaseHistogram) {
    let mut cumulative = 0;
    for (le, n) in bounds.iter().zip(h.buckets) {
        cumulative += n;
        push_all(
            out,
            &["mxping_phase_duration_seconds_bucket{", labels, ",le=\""],
        );
        push_all(out, &[le, "\"} "]);
        push_int(out, cumulative);
    }
    push_all(
        out,
        &[
            "mxping_phase_duration_seconds_bucket{",
            labels,
            ",le=\"+Inf\"} ",
        ],
    );
    push_int(out, h.count);
    push_all(out, &["mxping_phase_duration_seconds_sum{", labels, "} "]);
    push_value(out, h.sum);
    push_all(out, &["mxping_phase_duration_seconds_count{", labels, "} "]);
    push_int(out, h.count);
}

/// Appends `parts` in order. Every per-server line is written piece by piece with this and
/// the `push_*` helpers below: at 10,000 servers a scrape is 150,000 lines, and with
/// `writeln!` and a char-by-char escape, formatting took most of its time.
fn push_all(out: &mut String, parts: &[&str]) {
    for part in parts {
        out.push_str(part);
    }
}

/// A label value from a server, as [`text::cap_to`] caps it (at most [`MAX_LABEL_CHARS`]
/// characters, control characters as spaces), escaped: in one pass, without allocating.
fn push_capped_label(out: &mut String, value: &str) {
    for (count, c) in value.chars().enumerate() {
        match c {
            _ if count == MAX_LABEL_CHARS => {
                out.push('…');
                break;
            }
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

/// An integer sample value and the line's end.
fn push_int(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
    out.push('\n');
}

/// A float sample value and the line's end, as Prometheus parses it: whole numbers (ratios of
/// 0 and 1, timestamps) through the integer path, which writes what `{}` would.
fn push_value(out: &mut String, v: f64) {
    if v.fract() == 0.0 && v.abs() < 1e15 && !(v == 0.0 && v.is_sign_negative()) {
        out.push_str(itoa::Buffer::new().format(v as i64));
        out.push('\n');
    } else {
        let _ = writeln!(out, "{}", Value(v));
    }
}

/// A sample value as Prometheus parses it (Go float syntax for the special values).
struct Value(f64);

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v == f64::INFINITY => f.write_str("+Inf"),
            v if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            v => write!(f, "{v}"),
        }
    }
}

/// The per-server families in the order they are written: (name, type, help).
const FAMILIES: [(&str, &str, &str); 14] = [
    (
        "mxping_client_feature",
        "gauge",
        "What apps need from the server, as the last sign-up check measured it without an account: 1 present, 0 absent (sliding_sync, cors_well_known, cors_client_api, authenticated_media, next_generation_auth); no series when not measured.",
    ),
    (
        "mxping_discovery_info",
        "gauge",
        "How the server name was resolved: the spec step (method) and the delegated name.",
    ),
    (
        "mxping_federation_outbound_ok",
        "gauge",
        "1 if the server accepted mxping's last signed federation request (it fetched mxping's key and verified the signature), else 0; only with [federation].",
    ),
    (
        "mxping_latency_seconds",
        "gauge",
        "Headline latency of the last round: median request time on the warm connection of the first working address.",
    ),
    (
        "mxping_maintenance",
        "gauge",
        "1 while the server is in a maintenance window (its rounds are not counted in uptime, its alerts are replaced by the window's), else 0.",
    ),
    (
        "mxping_phase_duration_seconds",
        "histogram",
        "Duration of each probe phase: discovery (when it ran), connect, tls, request (each ping). Without a server label: every server not opted into its own (per_server_phases).",
    ),
    (
        "mxping_probes_total",
        "counter",
        "Probe rounds per address, by IP family and result (ok or an error kind).",
    ),
    (
        "mxping_public_rooms",
        "gauge",
        "Public rooms the server's directory lists over federation (its estimate), when it shares the directory; only with [federation].",
    ),
    (
        "mxping_server_info",
        "gauge",
        "Software and version the server reports on /_matrix/federation/v1/version (values capped at 64 characters).",
    ),
    (
        "mxping_signup_info",
        "gauge",
        "1 with the verdict of the server's last sign-up check (open, requires_verification, invite_only, external, closed, unknown).",
    ),
    (
        "mxping_status",
        "gauge",
        "1 for the server's current status (green, yellow, red, maintenance, unknown), 0 for the others.",
    ),
    (
        "mxping_tls_certificate_expiry_timestamp_seconds",
        "gauge",
        "Expiry (notAfter) of the certificate each address presented, as a Unix timestamp.",
    ),
    (
        "mxping_up",
        "gauge",
        "1 if at least one address of the server answered in the last round, else 0.",
    ),
    (
        "mxping_uptime_ratio",
        "gauge",
        "Share of rounds in which at least one address answered, per window (1h, 24h, 7d, 30d, 90d).",
    ),
];

/// Indexes into [`FAMILIES`].
const CLIENT_FEATURE: usize = 0;
const DISCOVERY: usize = 1;
const FEDERATION_OK: usize = 2;
const LATENCY: usize = 3;
const MAINTENANCE: usize = 4;
const PHASE: usize = 5;
const PROBES: usize = 6;
const PUBLIC_ROOMS: usize = 7;
const SERVER_INFO: usize = 8;
const SIGNUP: usize = 9;
const STATUS: usize = 10;
const CERT_EXPIRY: usize = 11;
const UP: usize = 12;
const UPTIME: usize = 13;

/// Appends every per-server family to `parts`: each its HELP and TYPE lines, then its
/// samples; a family without samples is left out entirely, as the `prometheus` crate does.
///
/// Each server is visited once, writing its lines of every family into that family's buffer,
/// and the buffers are joined at the end. Visiting the servers once per family instead read
/// each server's scattered records ten times over, and at 10,000 servers waiting on those
/// memory reads was most of the rendering time.
fn write_servers(
    parts: &mut Vec<String>,
    servers: &[(Arc<str>, Arc<ServerSeries>)],
    pooled: &Phases,
) {
    let mut bodies: [String; FAMILIES.len()] = Default::default();
    // Each bucket bound appears on one line per histogram: format them once.
    let bounds: Vec<String> = PHASE_BUCKETS.iter().map(f64::to_string).collect();
    for (phase, h) in PHASES.iter().zip(pooled) {
        if let Some(h) = h {
            write_histogram(
                &mut bodies[PHASE],
                &format!("phase=\"{phase}\""),
                &bounds,
                h,
            );
        }
    }
    // Server names are checked server names: no character the text format escapes.
    for (name, s) in servers {
        let name: &str = name;
        let [discovery, server_info, certs] = s.info.families();
        for (feature, on) in CLIENT_FEATURES.iter().zip(s.features) {
            if let Some(on) = on {
                let out = &mut bodies[CLIENT_FEATURE];
                push_all(
                    out,
                    &["mxping_client_feature{server=\"", name, "\",feature=\""],
                );
                push_all(out, &[feature, "\"} "]);
                push_int(out, u64::from(on));
            }
        }
        bodies[DISCOVERY].push_str(discovery);
        if let Some((ok, rooms)) = s.federation {
            let out = &mut bodies[FEDERATION_OK];
            push_all(
                out,
                &["mxping_federation_outbound_ok{server=\"", name, "\"} "],
            );
            push_int(out, u64::from(ok));
            if let Some(rooms) = rooms {
                let out = &mut bodies[PUBLIC_ROOMS];
                push_all(out, &["mxping_public_rooms{server=\"", name, "\"} "]);
                push_int(out, rooms);
            }
        }
        push_all(
            &mut bodies[MAINTENANCE],
            &["mxping_maintenance{server=\"", name, "\"} "],
        );
        push_int(&mut bodies[MAINTENANCE], u64::from(s.maintenance));
        if let Some(v) = s.latency_s {
            let out = &mut bodies[LATENCY];
            push_all(out, &["mxping_latency_seconds{server=\"", name, "\"} "]);
            push_value(out, v);
        }
        for (phase, h) in PHASES.iter().zip(&s.phases) {
            if let Some(h) = h {
                let labels = format!("server=\"{name}\",phase=\"{phase}\"");
                write_histogram(&mut bodies[PHASE], &labels, &bounds, h);
            }
        }
        for (ip_family, result, n) in &s.probes {
            let out = &mut bodies[PROBES];
            push_all(
                out,
                &["mxping_probes_total{server=\"", name, "\",ip_family=\""],
            );
            push_all(out, &[ip_family, "\",result=\"", result, "\"} "]);
            push_int(out, *n);
        }
        bodies[SERVER_INFO].push_str(server_info);
        if let Some(status) = s.signup {
            let out = &mut bodies[SIGNUP];
            push_all(out, &["mxping_signup_info{server=\"", name, "\",status=\""]);
            push_all(out, &[status.as_str(), "\"} "]);
            push_int(out, 1);
        }
        for status in Status::ALL {
            let out = &mut bodies[STATUS];
            push_all(out, &["mxping_status{server=\"", name, "\",status=\""]);
            push_all(out, &[status.as_str(), "\"} "]);
            push_int(out, u64::from(status == s.status));
        }
        bodies[CERT_EXPIRY].push_str(certs);
        if let Some(up) = s.up {
            let out = &mut bodies[UP];
            push_all(out, &["mxping_up{server=\"", name, "\"} "]);
            push_int(out, u64::from(up));
        }
        for ((window, _), v) in WINDOWS.iter().zip(s.uptime) {
            if let Some(v) = v {
                let out = &mut bodies[UPTIME];
                push_all(
                    out,
                    &["mxping_uptime_ratio{server=\"", name, "\",window=\""],
                );
                push_all(out, &[window, "\"} "]);
                push_value(out, v);
            }
        }
    }
    for ((name, kind, help), body) in FAMILIES.iter().zip(bodies) {
        if !body.is_empty() {
            parts.push(format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            parts.push(body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    fn rendered(m: &Metrics) -> String {
        let text = m.render();
        // Only the per-server part.
        text[text.find("mxping_build_info").unwrap()..].to_owned()
    }

    #[test]
    fn sample_values_are_written_as_the_formatter_writes_them() {
        for v in [
            0.0,
            -0.0,
            1.0,
            0.5,
            -3.0,
            1798741574.0,
            0.000027,
            99.4005,
            1e15,
            -1e15,
            1e300,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let mut out = String::new();
            push_value(&mut out, v);
            assert_eq!(out, format!("{}\n", Value(v)), "{v:?}");
        }
        assert_eq!(Value(-0.0).to_string(), "-0");
        for n in [0, 7, u64::MAX] {
            let mut out = String::new();
            push_int(&mut out, n);
            assert_eq!(out, format!("{n}\n"));
        }
        // Values from servers: capped as `text::cap_to` caps them, then escaped.
        let long = "é".repeat(70);
        for (value, written) in [
            ("plain.example:8448", "plain.example:8448".to_owned()),
            ("a\\b\"c\nd\té", "a\\\\b\\\"c d é".to_owned()),
            (&long, format!("{}…", "é".repeat(MAX_LABEL_CHARS))),
        ] {
            let mut out = String::new();
            push_capped_label(&mut out, value);
            assert_eq!(out, written);
            let capped = text::cap_to(value, MAX_LABEL_CHARS);
            assert_eq!(out, capped.replace('\\', "\\\\").replace('"', "\\\""));
        }
    }

    #[test]
    fn info_lines_are_replaced_only_when_their_text_changes() {
        let synapse = Software {
            name: "Synapse".into(),
            version: "1.163.2".into(),
        };
        let write = |software: &Software, not_after: i64| {
            let mut scratch = String::new();
            let values = InfoValues {
                discovery: Some(("well_known", "matrix.a.test")),
                software: Some(software),
                certs: [("192.0.2.1:8448", not_after), ("[2001:db8::1]:8448", 0)],
            };
            let starts = InfoLines::write(&mut scratch, "a.test", values);
            (scratch, starts)
        };
        let mut info = InfoLines::default();
        assert_eq!(info.families(), ["", "", ""]);
        let (text, starts) = write(&synapse, 1798741574);
        info.update(&text, starts);
        assert_eq!(
            info.families(),
            [
                "mxping_discovery_info{server=\"a.test\",method=\"well_known\",delegated_name=\"matrix.a.test\"} 1\n",
                "mxping_server_info{server=\"a.test\",software=\"Synapse\",version=\"1.163.2\"} 1\n",
                "mxping_tls_certificate_expiry_timestamp_seconds{server=\"a.test\",address=\"192.0.2.1:8448\"} 1798741574\n\
                 mxping_tls_certificate_expiry_timestamp_seconds{server=\"a.test\",address=\"[2001:db8::1]:8448\"} 0\n",
            ]
        );
        // The same round again keeps the very allocation; a renewed certificate replaces it.
        let kept = info.text.as_ptr();
        let (text, starts) = write(&synapse, 1798741574);
        info.update(&text, starts);
        assert_eq!(info.text.as_ptr(), kept);
        let (text, starts) = write(&synapse, 1830277574);
        info.update(&text, starts);
        assert!(info.families()[2].contains("} 1830277574\n"));
        // An upgrade moves where the certificate lines start.
        let upgraded = Software {
            name: "Synapse".into(),
            version: "1.164.0rc1".into(),
        };
        let (text, starts) = write(&upgraded, 1830277574);
        info.update(&text, starts);
        assert!(info.families()[1].contains("version=\"1.164.0rc1\""));
        assert!(info.families()[2].starts_with("mxping_tls_certificate_expiry"));
    }

    #[test]
    fn per_server_series_follow_the_text_format() {
        let m = Metrics::new();
        m.add_server("b.test");
        m.restore_server(
            "a.test",
            Status::Red,
            &[("1h", Some(0.5)), ("24h", None), ("bogus", Some(1.0))],
        );
        m.with_server("a.test", |s| {
            for v in [0.0005, 0.2, 0.2, 99.0] {
                s.observe(3, v);
            }
            let software = Software {
                name: "Syn\"apse\\".into(),
                version: "1\n2".into(),
            };
            let values = InfoValues {
                discovery: None,
                software: Some(&software),
                certs: std::iter::empty::<(&str, i64)>(),
            };
            let mut scratch = String::new();
            let starts = InfoLines::write(&mut scratch, "a.test", values);
            s.info.update(&scratch, starts);
            s.probes.push(("ipv4", "ok", 3));
            s.latency_s = Some(f64::NAN);
        });
        // The pooled histograms of servers not opted into their own: no server label.
        m.pooled.lock().unwrap()[1]
            .get_or_insert_with(Default::default)
            .observe(0.02);
        let text = rendered(&m);
        let lines: Vec<&str> = text.lines().collect();
        let has = |l: &str| lines.contains(&l);
        assert!(has(
            r#"mxping_phase_duration_seconds_bucket{phase="connect",le="0.01"} 0"#
        ));
        assert!(has(
            r#"mxping_phase_duration_seconds_bucket{phase="connect",le="0.025"} 1"#
        ));
        assert!(has(
            r#"mxping_phase_duration_seconds_count{phase="connect"} 1"#
        ));
        // Cumulative buckets, +Inf counting what overflowed the last bucket.
        assert!(has(
            r#"mxping_phase_duration_seconds_bucket{server="a.test",phase="request",le="0.001"} 1"#
        ));
        assert!(has(
            r#"mxping_phase_duration_seconds_bucket{server="a.test",phase="request",le="0.15"} 1"#
        ));
        assert!(has(
            r#"mxping_phase_duration_seconds_bucket{server="a.test",phase="request",le="0.2"} 3"#
        ));
        assert!(has(
            r#"mxping_phase_duration_seconds_bucket{server="a.test",phase="request",le="10"} 3"#
        ));
        assert!(has(
            r#"mxping_phase_duration_seconds_bucket{server="a.test",phase="request",le="+Inf"} 4"#
        ));
        assert!(has(
            r#"mxping_phase_duration_seconds_count{server="a.test",phase="request"} 4"#
        ));
        assert!(has(
            r#"mxping_phase_duration_seconds_sum{server="a.test",phase="request"} 99.4005"#
        ));
        // Phases never observed have no series.
        assert!(!text.contains(r#"phase="tls""#));
        // Label values escaped, special values in Go syntax.
        assert!(has(
            r#"mxping_server_info{server="a.test",software="Syn\"apse\\",version="1 2"} 1"#
        ));
        assert!(has(r#"mxping_latency_seconds{server="a.test"} NaN"#));
        assert!(has(r#"mxping_status{server="a.test",status="red"} 1"#));
        assert!(has(r#"mxping_status{server="b.test",status="unknown"} 1"#));
        assert!(has(r#"mxping_status{server="b.test",status="green"} 0"#));
        assert!(has(
            r#"mxping_uptime_ratio{server="a.test",window="1h"} 0.5"#
        ));
        assert!(!text.contains(r#"window="24h""#) && !text.contains("bogus"));
        assert!(has(
            r#"mxping_probes_total{server="a.test",ip_family="ipv4",result="ok"} 3"#
        ));
        // Families without samples are left out; each present family is declared once.
        assert!(!text.contains("mxping_tls_certificate_expiry_timestamp_seconds"));
        assert!(!text.contains("mxping_up{") && !text.contains("# TYPE mxping_up "));
        for name in ["mxping_status", "mxping_phase_duration_seconds"] {
            assert_eq!(text.matches(&format!("# TYPE {name} ")).count(), 1);
        }
        // Every sample sits under its own family's TYPE line, in every family written.
        m.with_server("b.test", |s| {
            s.up = Some(true);
            let values = InfoValues {
                discovery: Some(("srv_matrix_fed", "b.test")),
                software: None,
                certs: [("192.0.2.1:8448", 1798741574)],
            };
            let mut scratch = String::new();
            let starts = InfoLines::write(&mut scratch, "b.test", values);
            s.info.update(&scratch, starts);
            s.signup = Some(SignupStatus::Open);
            s.features[0] = Some(true);
            s.features[3] = Some(false);
            s.federation = Some((true, Some(12)));
            s.observe(0, 0.01);
        });
        let text = m.render();
        let (mut family, mut kind) = ("", "");
        let mut seen = Vec::new();
        for line in text.lines() {
            if let Some(typed) = line.strip_prefix("# TYPE ") {
                (family, kind) = typed.split_once(' ').unwrap();
                seen.push(family);
            } else if !line.starts_with('#') {
                let metric = line.split(['{', ' ']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| metric.strip_suffix(suffix))
                    .filter(|_| kind == "histogram")
                    .unwrap_or(metric);
                assert_eq!(base, family, "{line}");
            }
        }
        for (name, ..) in FAMILIES {
            assert!(seen.contains(&name), "{name} not written");
        }
        assert!(has_line(
            &text,
            r#"mxping_discovery_info{server="b.test",method="srv_matrix_fed",delegated_name="b.test"} 1"#
        ));
        assert!(has_line(
            &text,
            r#"mxping_tls_certificate_expiry_timestamp_seconds{server="b.test",address="192.0.2.1:8448"} 1798741574"#
        ));
        assert!(has_line(
            &text,
            r#"mxping_signup_info{server="b.test",status="open"} 1"#
        ));
        assert!(has_line(
            &text,
            r#"mxping_federation_outbound_ok{server="b.test"} 1"#
        ));
        assert!(has_line(
            &text,
            r#"mxping_public_rooms{server="b.test"} 12"#
        ));
        assert!(has_line(
            &text,
            r#"mxping_client_feature{server="b.test",feature="sliding_sync"} 1"#
        ));
        assert!(has_line(
            &text,
            r#"mxping_client_feature{server="b.test",feature="authenticated_media"} 0"#
        ));
        assert!(
            !text.contains(r#"feature="cors_well_known""#),
            "not measured, no series"
        );
        // Servers in name order within a family; a removed server leaves nothing behind.
        let at = |server: &str| {
            text.find(&format!("mxping_status{{server=\"{server}\""))
                .unwrap()
        };
        assert!(at("a.test") < at("b.test"));
        m.remove_server("a.test");
        let text = rendered(&m);
        assert!(!text.contains("a.test"));
        assert!(text.contains(r#"mxping_status{server="b.test",status="unknown"} 1"#));
    }
}
