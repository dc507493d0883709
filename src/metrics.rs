//! The Prometheus metrics of design.md, as a typed struct registered once at start-up.
//! Labels come from bounded sets (server names from the config, error kinds, phases, windows)
//! or are length-capped (software name and version from the servers themselves). Series of a
//! server are removed when it leaves the config, and stale `_info` series when values change.
//!
//! Histogram buckets for `mxping_phase_duration_seconds` (seconds): 1 ms to 10 s, dense
//! between 10 ms and 300 ms where Internet round trips and TLS handshakes fall, with 200 ms
//! (the default `green_below`) as a bucket edge so the green/yellow boundary can be queried.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::discovery::Resolution;
use crate::report::{Round, Status};
use crate::text;

/// Buckets of `mxping_phase_duration_seconds`.
pub const PHASE_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0,
    10.0,
];
/// Buckets of `mxping_scheduler_lateness_seconds`.
pub const LATENESS_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
/// Longest software/version label value.
const MAX_LABEL_CHARS: usize = 64;

/// The label values created for one server, so its series can be removed exactly.
#[derive(Clone, Default, PartialEq)]
struct InfoLabels {
    software: Option<(String, String)>,
    discovery: Option<(String, String)>,
    certs: Vec<String>,
    probes: Vec<(&'static str, &'static str)>,
}

/// Phases observed in `mxping_phase_duration_seconds`.
const PHASES: [&str; 4] = ["discovery", "connect", "tls", "request"];

/// Every metric mxping exports.
pub struct Metrics {
    registry: Registry,
    up: IntGaugeVec,
    status: IntGaugeVec,
    latency: GaugeVec,
    phase: HistogramVec,
    probes: IntCounterVec,
    cert_expiry: GaugeVec,
    server_info: IntGaugeVec,
    discovery_info: IntGaugeVec,
    uptime: GaugeVec,
    reload_ok: IntGauge,
    reload_time: Gauge,
    lateness: Histogram,
    in_flight: IntGauge,
    info: Mutex<HashMap<String, InfoLabels>>,
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let m = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(m.clone())).expect("registered once");
    m
}

fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let m = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(m.clone())).expect("registered once");
    m
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let up = int_gauge_vec(
            &r,
            "mxping_up",
            "1 if at least one address of the server answered in the last round, else 0.",
            &["server"],
        );
        let status = int_gauge_vec(
            &r,
            "mxping_status",
            "1 for the server's current status (green, yellow, red, unknown), 0 for the others.",
            &["server", "status"],
        );
        let latency = gauge_vec(
            &r,
            "mxping_latency_seconds",
            "Headline latency of the last round: median request time on the warm connection of the first working address.",
            &["server"],
        );
        let phase = HistogramVec::new(
            HistogramOpts::new("mxping_phase_duration_seconds", "Duration of each probe phase: discovery (when it ran), connect, tls, request (each ping).")
                .buckets(PHASE_BUCKETS.to_vec()),
            &["server", "phase"],
        )
        .expect("valid metric");
        r.register(Box::new(phase.clone()))
            .expect("registered once");
        let probes = IntCounterVec::new(
            Opts::new(
                "mxping_probes_total",
                "Probe rounds per address, by IP family and result (ok or an error kind).",
            ),
            &["server", "ip_family", "result"],
        )
        .expect("valid metric");
        r.register(Box::new(probes.clone()))
            .expect("registered once");
        let cert_expiry = gauge_vec(
            &r,
            "mxping_tls_certificate_expiry_timestamp_seconds",
            "Expiry (notAfter) of the certificate each address presented, as a Unix timestamp.",
            &["server", "address"],
        );
        let server_info = int_gauge_vec(
            &r,
            "mxping_server_info",
            "Software and version the server reports on /_matrix/federation/v1/version (values capped at 64 characters).",
            &["server", "software", "version"],
        );
        let discovery_info = int_gauge_vec(
            &r,
            "mxping_discovery_info",
            "How the server name was resolved: the spec step (method) and the delegated name.",
            &["server", "method", "delegated_name"],
        );
        let uptime = gauge_vec(
            &r,
            "mxping_uptime_ratio",
            "Share of rounds in which at least one address answered, per window (1h, 24h, 7d, 30d, 90d).",
            &["server", "window"],
        );
        let build = int_gauge_vec(
            &r,
            "mxping_build_info",
            "Build information; always 1.",
            &["version"],
        );
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
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("registered once");
        Metrics {
            registry: r,
            up,
            status,
            latency,
            phase,
            probes,
            cert_expiry,
            server_info,
            discovery_info,
            uptime,
            reload_ok,
            reload_time,
            lateness,
            in_flight,
            info: Mutex::new(HashMap::new()),
        }
    }

    /// Creates the series of a server before its first round (status unknown).
    pub fn add_server(&self, server: &str) {
        self.set_status(server, Status::Unknown);
    }

    /// Sets the series a restored history determines before the first round of this run.
    pub fn restore_server(&self, server: &str, status: Status, uptime: &[(&str, Option<f64>)]) {
        self.set_status(server, status);
        for (window, ratio) in uptime {
            if let Some(v) = ratio {
                self.uptime.with_label_values(&[server, window]).set(*v);
            }
        }
    }

    /// Sets the status series of `server`.
    pub fn set_status(&self, server: &str, current: Status) {
        for s in Status::ALL {
            self.status
                .with_label_values(&[server, s.as_str()])
                .set(i64::from(s == current));
        }
    }

    /// Records a finished round of `server`, whose status is now `status`.
    /// `discovery_ran` is false when the round reused a cached resolution.
    pub fn observe_round(
        &self,
        server: &str,
        round: &Round,
        discovery_ran: bool,
        status: Status,
        uptime: &[(&str, Option<f64>)],
    ) {
        self.up
            .with_label_values(&[server])
            .set(i64::from(round.any_ok()));
        self.set_status(server, status);
        match round.latency_ms() {
            Some(ms) => self.latency.with_label_values(&[server]).set(ms / 1000.0),
            None => {
                let _ = self.latency.remove_label_values(&[server]);
            }
        }
        let r = &round.resolution;
        if discovery_ran {
            self.phase
                .with_label_values(&[server, "discovery"])
                .observe(r.duration_ms / 1000.0);
        }
        let mut certs = Vec::new();
        let mut probes = Vec::new();
        for a in &round.addresses {
            let result = a.error.as_ref().map_or("ok", |e| e.kind.as_str());
            self.probes
                .with_label_values(&[server, a.ip_family, result])
                .inc();
            probes.push((a.ip_family, result));
            let p = &a.phases_ms;
            if let Some(c) = p.connect {
                self.phase
                    .with_label_values(&[server, "connect"])
                    .observe(c / 1000.0);
            }
            if let Some(t) = p.tls {
                self.phase
                    .with_label_values(&[server, "tls"])
                    .observe(t / 1000.0);
            }
            for req in &p.requests {
                self.phase
                    .with_label_values(&[server, "request"])
                    .observe(req / 1000.0);
            }
            if let Some(cert) = a.tls.as_ref().and_then(|t| t.certificate.as_ref()) {
                let address = a.address.to_string();
                self.cert_expiry
                    .with_label_values(&[server, &address])
                    .set(cert.not_after.unix_timestamp() as f64);
                certs.push(address);
            }
        }
        if let (Some(e), true) = (&round.resolution.error, round.addresses.is_empty()) {
            // Discovery failed before any address: counted under ip_family "none".
            self.probes
                .with_label_values(&[server, "none", e.kind.as_str()])
                .inc();
            probes.push(("none", e.kind.as_str()));
        }
        for (window, ratio) in uptime {
            if let Some(v) = ratio {
                self.uptime.with_label_values(&[server, window]).set(*v);
            }
        }
        let software = round.software().map(|s| {
            (
                text::cap_to(&s.name, MAX_LABEL_CHARS),
                text::cap_to(&s.version, MAX_LABEL_CHARS),
            )
        });
        let discovery = discovery_labels(r);
        let mut info = self.info.lock().expect("metrics lock");
        let old = info.entry(server.to_owned()).or_default();
        for p in probes {
            if !old.probes.contains(&p) {
                old.probes.push(p);
            }
        }
        if old.software != software {
            if let Some((s, v)) = &old.software {
                let _ = self.server_info.remove_label_values(&[server, s, v]);
            }
            if let Some((s, v)) = &software {
                self.server_info.with_label_values(&[server, s, v]).set(1);
            }
        }
        if old.discovery != discovery {
            if let Some((m, d)) = &old.discovery {
                let _ = self.discovery_info.remove_label_values(&[server, m, d]);
            }
            if let Some((m, d)) = &discovery {
                self.discovery_info
                    .with_label_values(&[server, m, d])
                    .set(1);
            }
        }
        for gone in old.certs.iter().filter(|c| !certs.contains(c)) {
            let _ = self.cert_expiry.remove_label_values(&[server, gone]);
        }
        old.software = software;
        old.discovery = discovery;
        old.certs = certs;
    }

    /// Removes every series of a server that left the config.
    pub fn remove_server(&self, server: &str) {
        let _ = self.up.remove_label_values(&[server]);
        let _ = self.latency.remove_label_values(&[server]);
        for s in Status::ALL {
            let _ = self.status.remove_label_values(&[server, s.as_str()]);
        }
        for phase in PHASES {
            let _ = self.phase.remove_label_values(&[server, phase]);
        }
        for (window, _) in crate::history::WINDOWS {
            let _ = self.uptime.remove_label_values(&[server, window]);
        }
        let Some(old) = self.info.lock().expect("metrics lock").remove(server) else {
            return;
        };
        for (family, result) in old.probes {
            let _ = self.probes.remove_label_values(&[server, family, result]);
        }
        for cert in old.certs {
            let _ = self.cert_expiry.remove_label_values(&[server, &cert]);
        }
        if let Some((s, v)) = old.software {
            let _ = self.server_info.remove_label_values(&[server, &s, &v]);
        }
        if let Some((m, d)) = old.discovery {
            let _ = self.discovery_info.remove_label_values(&[server, &m, &d]);
        }
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

    /// The in-flight rounds gauge.
    pub fn in_flight(&self) -> &IntGauge {
        &self.in_flight
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding never fails");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

fn discovery_labels(r: &Resolution) -> Option<(String, String)> {
    r.method.map(|m| {
        (
            m.as_str().to_owned(),
            text::cap_to(&r.delegated_name, MAX_LABEL_CHARS),
        )
    })
}
