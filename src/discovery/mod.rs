//! Server-name resolution, exactly as the Matrix spec's "Resolving server names" says
//! (discovery.md §2): IP literal → explicit port → `/.well-known/matrix/server` (one hop) →
//! SRV `_matrix-fed._tcp` → (only if absent) deprecated `_matrix._tcp` → port 8448.
//!
//! The result is a [`Resolution`]: the method used, the delegated name, every lookup made and
//! its outcome, findings in plain words, and the ordered targets, each with the exact address
//! to connect to, the `Host` header and the TLS name. Every address found — from DNS, literals
//! or delegation — is kept (IPv4 and IPv6 separately) and passed through the private-address
//! guard. Nothing here branches on being tested: tests aim it at a loopback DNS server and
//! HTTPS servers through the same constructor arguments a user sets in the config.

pub(crate) mod explain;
pub(crate) mod srv;
pub(crate) mod well_known;

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::error::{ErrorKind, ProbeError};
use crate::net::dns::{
    Answer, Dns, HostLookup, MAX_ADDRESSES_PER_HOST, MAX_SRV_RECORDS, SrvRecord,
};
use crate::net::fetch::Fetcher;
use crate::net::guard::NetGuard;
use crate::server_name::{Host, ServerName};
use well_known::{Cached, WellKnownCache, WellKnownClient, WellKnownReport, WellKnownStatus};

/// The federation port used when nothing else names one.
pub(crate) const DEFAULT_PORT: u16 = 8448;

/// The spec step that turned the (possibly delegated) name into targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Step 1 / 3.1: the name is an IP literal.
    IpLiteral,
    /// Step 2 / 3.2: a hostname with an explicit port.
    ExplicitPort,
    /// Step 3.3 / 4: SRV `_matrix-fed._tcp`.
    SrvMatrixFed,
    /// Step 3.4 / 5: deprecated SRV `_matrix._tcp`.
    SrvMatrix,
    /// Step 3.5 / 6: A/AAAA of the name, port 8448.
    DefaultPort,
}

impl Method {
    /// The snake_case name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::IpLiteral => "ip_literal",
            Method::ExplicitPort => "explicit_port",
            Method::SrvMatrixFed => "srv_matrix_fed",
            Method::SrvMatrix => "srv_matrix",
            Method::DefaultPort => "default_port",
        }
    }
}

/// One address to probe, with what to send it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// IP and port to connect to.
    pub address: SocketAddr,
    /// The HTTP `Host` header to send.
    pub host_header: String,
    /// The name the certificate must be valid for and the SNI to send; `None` for IP
    /// literals, which send no SNI and need an IP certificate.
    pub tls_name: Option<String>,
    /// The host this address came from (SRV target, hostname or literal).
    pub via: String,
    /// The SRV record that named `via`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srv: Option<SrvRecord>,
    /// Set when the private-address guard refuses this address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<ProbeError>,
}

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing is wrong.
    Info,
    /// Works, but fragile, deprecated or slower than it needs to be.
    Warning,
    /// Breaks federation with at least some servers.
    Error,
}

/// Something discovery noticed, in plain words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// What was found and what to do (English).
    pub message: String,
    /// A stable identifier, for findings whose text is translated (`finding_<code>` in
    /// `locales/`); the page shows them in the reader's language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// The values of the translated text's placeholders.
    #[serde(skip)]
    pub args: Vec<(&'static str, String)>,
    /// What a lookup or a server said, quoted as it was (in `message` after the text; on the
    /// page beside it, marked as English).
    #[serde(skip)]
    pub said: Option<String>,
}

/// The codes of the translated findings; each has `finding_<code>` in every locale.
pub(crate) const FINDING_CODES: &[&str] = &[
    "upper_case",
    "looks_like_ipv4",
    "long_name",
    "srv_legacy_only",
    "srv_dot_mixed",
    "addresses_capped",
    "family_failed",
    "well_known_delegated",
    "well_known_not_found",
    "well_known_bad_m_server",
    "well_known_invalid",
    "well_known_unreachable",
    "well_known_failed",
    "trailing_dot",
    "trailing_dot_delegated",
    "srv_target_cname",
    "srv_capped",
    "keys_split",
    "well_known_kept",
    "monitor_no_ipv6",
];

impl Finding {
    /// A translated finding: the text is `finding_<code>` of `locales/`, in English here.
    pub fn coded(
        severity: Severity,
        code: &'static str,
        args: Vec<(&'static str, String)>,
    ) -> Finding {
        debug_assert!(FINDING_CODES.contains(&code), "{code}");
        Finding {
            severity,
            message: Finding::render(code, &args, crate::i18n::english()),
            code: Some(code),
            args,
            said: None,
        }
    }

    /// The finding with what a lookup or a server said, quoted as it was.
    pub fn said(mut self, said: String) -> Finding {
        if !said.is_empty() {
            self.message = format!("{}: {said}", self.message);
            self.said = Some(said);
        }
        self
    }

    /// The text of a translated finding in `locale`.
    fn render(code: &str, args: &[(&'static str, String)], locale: &crate::i18n::Locale) -> String {
        let pairs: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // Composed at run time: `every_finding_code_has_a_message` (i18n) checks the names.
        let text = locale.named(&format!("finding_{code}")).unwrap_or(code);
        locale.fill(text, &pairs)
    }

    /// The text in `locale`: translated when the finding has a code, else the English message.
    pub fn text(&self, locale: &crate::i18n::Locale) -> String {
        match self.code {
            Some(code) => Finding::render(code, &self.args, locale),
            None => self.message.clone(),
        }
    }
}

/// What one SRV query gave (JSON: `found`, `not_found`, `failed`, `unavailable`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SrvOutcome {
    /// Records with real targets.
    Found,
    /// NXDOMAIN or no records: the spec's cue to fall back.
    NotFound,
    /// SERVFAIL, timeout, refused: reported, no fallback.
    Failed,
    /// The single target `.`: the domain offers no federation.
    Unavailable,
}

impl SrvOutcome {
    /// How it is written in JSON and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SrvOutcome::Found => "found",
            SrvOutcome::NotFound => "not_found",
            SrvOutcome::Failed => "failed",
            SrvOutcome::Unavailable => "unavailable",
        }
    }
}

/// One SRV query and what it gave.
#[derive(Clone, Debug, Serialize)]
pub struct SrvLookup {
    /// The name queried, e.g. `_matrix-fed._tcp.example.com`.
    pub name: String,
    /// What the query gave.
    pub outcome: SrvOutcome,
    /// Records in the order a homeserver would try them.
    pub records: Vec<SrvRecord>,
    /// Why the lookup failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything discovery found for one server name. Serialized as the `discovery` object of
/// the JSON contract (see [`Resolution`]'s `Serialize` impl).
#[derive(Clone, Debug)]
pub struct Resolution {
    /// The server name exactly as given.
    pub server_name: String,
    /// The well-known lookup.
    pub well_known: WellKnownReport,
    /// The `m.server` value when delegation happened, else the server name.
    pub delegated_name: String,
    /// The step that produced the targets; `None` when discovery failed before one.
    pub method: Option<Method>,
    /// SRV queries made, in order.
    pub srv: Vec<SrvLookup>,
    /// A/AAAA lookups made, in order.
    pub hosts: Vec<HostLookup>,
    /// Addresses to probe, in the order a homeserver would try them.
    pub targets: Vec<Target>,
    /// Observations in plain words.
    pub findings: Vec<Finding>,
    /// Why no target could be produced (or every target is blocked).
    pub error: Option<ProbeError>,
    /// How long discovery took.
    pub duration_ms: f64,
    /// When discovery ran.
    pub resolved_at: OffsetDateTime,
    /// When the earliest input (well-known cache entry, DNS record) expires.
    pub expires_at: OffsetDateTime,
    /// `expires_at - resolved_at`, for the scheduler.
    pub valid_for: Duration,
}

impl Serialize for Resolution {
    /// The contract's `discovery` object: `well_known` is the outcome word, followed by the
    /// details a person needs to debug delegation.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            well_known: WellKnownStatus,
            delegated_name: &'a str,
            method: Option<Method>,
            targets: &'a [Target],
            error: &'a Option<ProbeError>,
            findings: &'a [Finding],
            well_known_detail: &'a WellKnownReport,
            srv: &'a [SrvLookup],
            hosts: &'a [HostLookup],
            duration_ms: f64,
            #[serde(serialize_with = "crate::timestamp::serialize")]
            resolved_at: OffsetDateTime,
            #[serde(serialize_with = "crate::timestamp::serialize")]
            expires_at: OffsetDateTime,
        }
        View {
            well_known: self.well_known.status,
            delegated_name: &self.delegated_name,
            method: self.method,
            targets: &self.targets,
            error: &self.error,
            findings: &self.findings,
            well_known_detail: &self.well_known,
            srv: &self.srv,
            hosts: &self.hosts,
            duration_ms: self.duration_ms,
            resolved_at: self.resolved_at,
            expires_at: self.expires_at,
        }
        .serialize(s)
    }
}

impl Resolution {
    /// An empty resolution of `name` (no lookups yet), resolved now.
    pub fn new(name: &str) -> Resolution {
        let now = OffsetDateTime::now_utc();
        Resolution {
            server_name: name.to_owned(),
            well_known: WellKnownReport::skipped(),
            delegated_name: name.to_owned(),
            method: None,
            srv: Vec::new(),
            hosts: Vec::new(),
            targets: Vec::new(),
            findings: Vec::new(),
            error: None,
            duration_ms: 0.0,
            resolved_at: now,
            expires_at: now,
            valid_for: Duration::ZERO,
        }
    }

    /// Adds the finding `finding_<code>` of `locales/` with its placeholders.
    fn note(&mut self, severity: Severity, code: &'static str, args: Vec<(&'static str, String)>) {
        self.findings.push(Finding::coded(severity, code, args));
    }

    /// Adds a finding and what the lookup or server said.
    fn note_said(
        &mut self,
        severity: Severity,
        code: &'static str,
        args: Vec<(&'static str, String)>,
        said: String,
    ) {
        self.findings
            .push(Finding::coded(severity, code, args).said(said));
    }

    /// The targets the guard allows.
    pub fn probe_targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter().filter(|t| t.blocked.is_none())
    }
}

/// The discovery service: DNS, the well-known client and cache, and the guard.
pub struct Discovery {
    timeout: Duration,
    dns: Dns,
    guard: NetGuard,
    well_known: WellKnownClient,
    cache: WellKnownCache,
    rng: Mutex<StdRng>,
}

/// Tracks the earliest expiry of everything a resolution used, and the deadline of its DNS
/// lookups: DNS gets `timeout` in all (after the well-known fetch, which has its own), so a
/// name server that never answers cannot stretch a round.
struct Budget {
    expiry: Option<Instant>,
    deadline: Instant,
}

impl Budget {
    fn add(&mut self, t: Option<Instant>) {
        if let Some(t) = t {
            self.expiry = Some(self.expiry.map_or(t, |cur| cur.min(t)));
        }
    }
}

/// Said of a lookup cut off by the discovery deadline.
fn too_slow(timeout: Duration) -> String {
    format!(
        "no answer from the DNS server within {} (timed out)",
        humantime::format_duration(timeout)
    )
}

impl Discovery {
    /// A discovery service. `fetcher` (guarded, verifying certificates normally) fetches the
    /// well-known; `timeout` bounds the well-known fetch and, separately, the DNS lookups.
    pub fn new(dns: Dns, guard: NetGuard, fetcher: Fetcher, timeout: Duration) -> Discovery {
        Discovery {
            timeout,
            well_known: WellKnownClient::new(fetcher, timeout),
            dns,
            guard,
            cache: WellKnownCache::default(),
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    /// Resolves `name` into targets, following the spec step by step; an invalid name is an
    /// `invalid_name` error before any network activity.
    pub async fn resolve(&self, name: &str) -> Resolution {
        match ServerName::parse(name) {
            Ok(parsed) => self.resolve_name(&parsed).await,
            Err(e) => {
                let mut r = Resolution::new(name);
                r.error = Some(e);
                r
            }
        }
    }

    /// Resolves an already parsed server name (the config's).
    pub async fn resolve_name(&self, name: &ServerName) -> Resolution {
        let started = Instant::now();
        let mut r = Resolution::new(name.as_str());
        let mut budget = Budget {
            expiry: None,
            deadline: started + self.timeout,
        };
        for (code, args) in name.advisories() {
            r.note(Severity::Warning, code, args);
        }
        if let Some(args) = name.trailing_dot_args() {
            r.note(Severity::Error, "trailing_dot", args);
        }
        self.resolve_steps(name, &mut r, &mut budget).await;
        self.finish(&mut r, budget, started);
        r
    }

    async fn resolve_steps(&self, name: &ServerName, r: &mut Resolution, budget: &mut Budget) {
        let host = match name.host() {
            // Step 1: an IP literal; no well-known, no SRV.
            Host::Ipv4(_) | Host::Ipv6(_) => {
                self.ip_literal(name, r);
                return;
            }
            Host::Dns(host) => host.clone(),
        };
        // Step 2: a hostname with an explicit port; no well-known, no SRV.
        if let Some(port) = name.port() {
            r.method = Some(Method::ExplicitPort);
            self.add_host_targets(&host, port, name.as_str(), None, r, budget)
                .await;
            return;
        }
        // Step 3: the well-known file, served from cache while it is fresh, and refreshed
        // before it expires as Synapse does: a transient failure then keeps the delegation.
        let now = Instant::now();
        let mut kept = None;
        let report = match self.cache.lookup(&host, now) {
            Cached::Fresh(cached) => cached,
            Cached::Refetch {
                previous,
                had_valid,
            } => {
                let mut fresh = self.well_known.fetch_retrying(&host, had_valid).await;
                match previous {
                    Some(previous) if fresh.is_transient_failure() => {
                        kept = Some(fresh);
                        previous
                    }
                    // The monitor's own trouble says nothing about the host: not cached.
                    _ if fresh.trouble.is_some() => fresh,
                    _ => {
                        self.cache.store(&host, &mut fresh, now);
                        fresh
                    }
                }
            }
        };
        if let Some(trouble) = report.trouble {
            // Without the well-known there is no telling where the server is delegated:
            // going on to SRV could probe the wrong host.
            r.error = Some(ProbeError::monitor_trouble(
                report.error_kind.unwrap_or(ErrorKind::Connect),
                trouble,
                format!(
                    "fetching https://{host}/.well-known/matrix/server could not be tried ({})",
                    report.problem.clone().unwrap_or_default()
                ),
            ));
            r.well_known = report;
            return;
        }
        budget.add(self.cache.refresh_at(&host));
        budget.deadline = Instant::now() + self.timeout;
        r.well_known = report;
        explain_well_known(r);
        if let Some(failed) = kept {
            let until = r
                .well_known
                .cache
                .as_ref()
                .map(|c| crate::timestamp::format(c.expires_at))
                .unwrap_or_default();
            r.note_said(
                Severity::Warning,
                "well_known_kept",
                vec![("until", until)],
                failed.problem.unwrap_or_default(),
            );
        }
        match r.well_known.delegated.clone() {
            Some(delegated) => {
                r.delegated_name = delegated.as_str().to_owned();
                self.resolve_delegated(&delegated, r, budget).await;
            }
            // Steps 4–6 on the original hostname.
            None => self.srv_steps(&host, r, budget).await,
        }
    }

    /// Steps 3.1–3.5: the delegated name never gets another well-known lookup.
    async fn resolve_delegated(&self, name: &ServerName, r: &mut Resolution, budget: &mut Budget) {
        if let Some(args) = name.trailing_dot_args() {
            r.note(Severity::Error, "trailing_dot_delegated", args);
        }
        match (name.host(), name.port()) {
            (Host::Ipv4(_) | Host::Ipv6(_), _) => self.ip_literal(name, r),
            (Host::Dns(host), Some(port)) => {
                r.method = Some(Method::ExplicitPort);
                self.add_host_targets(host, port, name.as_str(), None, r, budget)
                    .await;
            }
            (Host::Dns(host), None) => self.srv_steps(host, r, budget).await,
        }
    }

    /// Steps 1 and 3.1: connect to the literal; `Host` is the name as given; no SNI.
    fn ip_literal(&self, name: &ServerName, r: &mut Resolution) {
        let ip = name.host().ip().expect("an IP literal");
        r.method = Some(Method::IpLiteral);
        let address = SocketAddr::new(ip, name.port().unwrap_or(DEFAULT_PORT));
        r.targets.push(Target {
            address,
            host_header: name.as_str().to_owned(),
            tls_name: None,
            via: ip.to_string(),
            srv: None,
            blocked: self.guard.check(ip).err(),
        });
    }

    /// Steps 3.3–3.5 and 4–6 for `name` (the delegated name or the original hostname): `Host`
    /// and the certificate name are `name` itself, never the SRV target.
    async fn srv_steps(&self, name: &str, r: &mut Resolution, budget: &mut Budget) {
        let fed = format!("_matrix-fed._tcp.{name}");
        let records = match self.srv_lookup(&fed, r, budget).await {
            SrvResult::Records(records) => {
                r.method = Some(Method::SrvMatrixFed);
                records
            }
            SrvResult::Stop => return,
            SrvResult::None => {
                let legacy = format!("_matrix._tcp.{name}");
                match self.srv_lookup(&legacy, r, budget).await {
                    SrvResult::Records(records) => {
                        r.method = Some(Method::SrvMatrix);
                        r.note(
                            Severity::Warning,
                            "srv_legacy_only",
                            vec![
                                ("name", name.to_owned()),
                                ("legacy", legacy.to_string()),
                                ("fed", fed.to_string()),
                            ],
                        );
                        records
                    }
                    SrvResult::Stop => return,
                    SrvResult::None => {
                        r.method = Some(Method::DefaultPort);
                        self.add_host_targets(name, DEFAULT_PORT, name, None, r, budget)
                            .await;
                        return;
                    }
                }
            }
        };
        for record in records {
            self.add_host_targets(
                &record.target,
                record.port,
                name,
                Some(record.clone()),
                r,
                budget,
            )
            .await;
        }
    }

    async fn srv_lookup(&self, query: &str, r: &mut Resolution, budget: &mut Budget) -> SrvResult {
        let mut lookup = SrvLookup {
            name: query.to_owned(),
            outcome: SrvOutcome::NotFound,
            records: Vec::new(),
            error: None,
        };
        let answer = tokio::time::timeout_at(budget.deadline, self.dns.srv(query)).await;
        let answer = answer
            .unwrap_or_else(|_| crate::net::dns::failed_without_answer(too_slow(self.timeout)));
        let result = match answer {
            Answer::NotFound => SrvResult::None,
            Answer::Unable(trouble, why) => {
                lookup.outcome = SrvOutcome::Failed;
                lookup.error = Some(why.clone());
                r.error = Some(ProbeError::monitor_trouble(
                    ErrorKind::Dns,
                    trouble,
                    format!("SRV lookup for {query} could not be made ({why})"),
                ));
                SrvResult::Stop
            }
            Answer::Failed(why) => {
                lookup.outcome = SrvOutcome::Failed;
                lookup.error = Some(why.clone());
                // Not a reason to fall back (edge case E7): a homeserver would fail too.
                r.error = Some(ProbeError::new(
                    ErrorKind::Dns,
                    format!("SRV lookup for {query} failed: {why}"),
                ));
                SrvResult::Stop
            }
            Answer::Found(answer) => {
                budget.add(Some(answer.valid_until));
                let total = answer.total;
                let (dot, usable): (Vec<_>, Vec<_>) = answer
                    .records
                    .into_iter()
                    .partition(|rec| rec.target == ".");
                if usable.is_empty() {
                    // RFC 2782: a lone target "." means the service is decidedly not available.
                    lookup.outcome = SrvOutcome::Unavailable;
                    lookup.records = dot;
                    r.error = Some(ProbeError::new(
                        ErrorKind::ServiceUnavailable,
                        format!(
                            "{query} has the SRV target \".\": the domain declares that it offers \
                             no Matrix federation (RFC 2782); there is no fallback"
                        ),
                    ));
                    SrvResult::Stop
                } else {
                    if !dot.is_empty() {
                        r.note(
                            Severity::Warning,
                            "srv_dot_mixed",
                            vec![("query", query.to_string())],
                        );
                    }
                    lookup.outcome = SrvOutcome::Found;
                    // Order first (priority, then weight), then cap: the records kept are the
                    // ones a homeserver would try first.
                    let mut ordered = srv::order(&usable, &mut *self.rng.lock().expect("rng lock"));
                    if total > MAX_SRV_RECORDS {
                        r.note(
                            Severity::Warning,
                            "srv_capped",
                            vec![
                                ("query", query.to_owned()),
                                ("total", total.to_string()),
                                ("kept", MAX_SRV_RECORDS.to_string()),
                            ],
                        );
                        ordered.truncate(MAX_SRV_RECORDS);
                    }
                    lookup.records = ordered.clone();
                    SrvResult::Records(ordered)
                }
            }
        };
        r.srv.push(lookup);
        result
    }

    /// Looks up `host` and adds a target per address at `port`. `srv` is the SRV record that
    /// named `host` (an SRV target must not be a CNAME, RFC 2782).
    async fn add_host_targets(
        &self,
        host: &str,
        port: u16,
        host_header: &str,
        srv: Option<SrvRecord>,
        r: &mut Resolution,
        budget: &mut Budget,
    ) {
        // The certificate name: the server or delegated name without the port.
        let tls_name = match &srv {
            Some(_) => host_header.to_owned(),
            None => host.to_owned(),
        };
        let lookup = tokio::time::timeout_at(budget.deadline, self.dns.host(host))
            .await
            .unwrap_or_else(|_| HostLookup::timed_out(host, too_slow(self.timeout)));
        budget.add(lookup.valid_until);
        if srv.is_some() && !lookup.cnames.is_empty() {
            // The spec: the SRV target "may not be a CNAME" (RFC 2782). Probed anyway, so the
            // report shows whether the address answers, but it is an error.
            r.note(
                Severity::Error,
                "srv_target_cname",
                vec![
                    ("target", host.to_owned()),
                    ("chain", lookup.cnames.join(" → ")),
                    (
                        "canonical",
                        lookup.cnames.last().map_or(host, String::as_str).to_owned(),
                    ),
                ],
            );
        }
        if lookup.total_addresses > lookup.addresses.len() {
            r.note(
                Severity::Warning,
                "addresses_capped",
                vec![
                    ("host", host.to_string()),
                    ("total", lookup.total_addresses.to_string()),
                    ("kept", MAX_ADDRESSES_PER_HOST.to_string()),
                ],
            );
        }
        for ip in &lookup.addresses {
            let address = SocketAddr::new(*ip, port);
            if r.targets.iter().any(|t| t.address == address) {
                continue;
            }
            r.targets.push(Target {
                address,
                host_header: host_header.to_owned(),
                tls_name: Some(tls_name.clone()),
                via: host.to_owned(),
                srv: srv.clone(),
                blocked: self.guard.check(*ip).err(),
            });
        }
        r.hosts.push(lookup);
    }

    fn finish(&self, r: &mut Resolution, mut budget: Budget, started: Instant) {
        if r.error.is_none() {
            if r.targets.is_empty() {
                let errors: Vec<String> = r
                    .hosts
                    .iter()
                    .flat_map(|h| h.errors.iter().map(move |e| format!("{}: {e}", h.host)))
                    .collect();
                let looked_up: Vec<&str> = r.hosts.iter().map(|h| h.host.as_str()).collect();
                let trouble = r.hosts.iter().find_map(|h| h.trouble);
                r.error = Some(if let Some(trouble) = trouble {
                    ProbeError::monitor_trouble(
                        ErrorKind::Dns,
                        trouble,
                        format!("address lookup failed: {}", errors.join("; ")),
                    )
                } else if errors.is_empty() {
                    ProbeError::new(
                        ErrorKind::NoAddress,
                        format!("no A or AAAA record for {}", looked_up.join(", ")),
                    )
                } else {
                    ProbeError::new(
                        ErrorKind::Dns,
                        format!("address lookup failed: {}", errors.join("; ")),
                    )
                });
            } else if let Some(blocked) = r.targets.iter().find_map(|t| t.blocked.clone())
                && r.probe_targets().next().is_none()
            {
                r.error = Some(blocked);
            }
            for h in &r.hosts {
                if !h.addresses.is_empty() {
                    for e in &h.errors {
                        r.findings.push(
                            Finding::coded(
                                Severity::Warning,
                                "family_failed",
                                vec![("host", h.host.clone())],
                            )
                            .said(e.clone()),
                        );
                    }
                }
            }
        }
        let now = Instant::now();
        if r.error.is_some() {
            // A failed resolution is retried on the next round.
            budget.expiry = Some(now);
        }
        let valid_for = budget
            .expiry
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        r.duration_ms = crate::numbers::duration_ms(started.elapsed());
        r.valid_for = valid_for;
        r.expires_at = r.resolved_at + valid_for;
        // A resolution is kept until it expires and shown until the next one: no room for
        // pushes that will not come (a vector's first push makes room for four; at 10,000
        // servers the spare room was 6 MB).
        r.srv.shrink_to_fit();
        r.hosts.shrink_to_fit();
        r.targets.shrink_to_fit();
        r.findings.shrink_to_fit();
    }
}

enum SrvResult {
    Records(Vec<SrvRecord>),
    None,
    Stop,
}

/// Turns the well-known outcome into findings.
fn explain_well_known(r: &mut Resolution) {
    let wk = &r.well_known;
    let problem = wk.problem.clone().unwrap_or_default();
    let (severity, code, args) = match wk.status {
        WellKnownStatus::Delegated => (
            Severity::Info,
            "well_known_delegated",
            vec![
                ("name", r.server_name.clone()),
                ("to", wk.m_server.clone().unwrap_or_default()),
            ],
        ),
        WellKnownStatus::NotFound => (
            Severity::Info,
            "well_known_not_found",
            vec![("name", r.server_name.clone())],
        ),
        WellKnownStatus::Invalid if wk.m_server.is_some() => {
            (Severity::Error, "well_known_bad_m_server", Vec::new())
        }
        WellKnownStatus::Invalid => (Severity::Warning, "well_known_invalid", Vec::new()),
        WellKnownStatus::Error => {
            let quiet = matches!(
                wk.error_kind,
                Some(ErrorKind::ConnectRefused | ErrorKind::NoAddress)
            );
            if quiet {
                (Severity::Info, "well_known_unreachable", Vec::new())
            } else {
                (Severity::Warning, "well_known_failed", Vec::new())
            }
        }
        WellKnownStatus::Skipped => return,
    };
    let said = match wk.status {
        WellKnownStatus::Delegated | WellKnownStatus::NotFound => String::new(),
        _ => problem,
    };
    r.note_said(severity, code, args, said);
}

/// The address family of an IP, as used in reports (`"ipv4"`, `"ipv6"`) and metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpFamily {
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
}

impl IpFamily {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::Ipv4,
            IpAddr::V6(_) => IpFamily::Ipv6,
        }
    }

    /// The word used in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Ipv6 => "ipv6",
        }
    }

    /// How people write it: `IPv4`, `IPv6`.
    pub fn name(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "IPv4",
            IpFamily::Ipv6 => "IPv6",
        }
    }
}
