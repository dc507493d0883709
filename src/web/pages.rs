//! The HTML pages (askama). Values are formatted here so templates stay simple; askama
//! escapes everything except the chart, which [`super::chart`] builds from numbers only.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use time::OffsetDateTime;

use super::{AppState, chart};
use crate::config::Config;
use crate::discovery::well_known::WellKnownStatus;
use crate::discovery::{Method, Severity};
use crate::monitor::ServerView;
use crate::report::Status;
use crate::tls::days_until;

/// What the base template needs.
struct Base {
    vantage: String,
    refresh_s: u64,
    pings: u32,
    green_below_ms: u64,
}

impl Base {
    fn new(config: &Config) -> Base {
        Base {
            vantage: config.web.vantage.clone(),
            refresh_s: config.web.refresh.as_secs(),
            pings: config.monitor.pings,
            green_below_ms: config.monitor.green_below.as_millis() as u64,
        }
    }
}

struct Ping {
    text: String,
    class: &'static str,
}

struct Row {
    name: String,
    title: String,
    detail_href: String,
    client_url: Option<String>,
    description: String,
    status: &'static str,
    symbol: &'static str,
    word: &'static str,
    reason: String,
    latency: String,
    pings: Vec<Ping>,
    uptime_24h: String,
    uptime_30d: String,
    software: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    vantage: String,
    refresh_s: u64,
    pings: u32,
    green_below_ms: u64,
    summary: String,
    rows: Vec<Row>,
    generated_at: String,
}

#[derive(Template)]
#[template(path = "server.html")]
struct ServerPage {
    vantage: String,
    refresh_s: u64,
    pings: u32,
    green_below_ms: u64,
    name: String,
    title: String,
    status: &'static str,
    symbol: &'static str,
    word: &'static str,
    reason: String,
    latency: String,
    p50: String,
    p95: String,
    software: String,
    checked_at: String,
    client_url: Option<String>,
    error: Option<(String, String)>,
    uptime: Vec<(String, String)>,
    chart: String,
    discovery: Vec<(String, String)>,
    targets: Vec<(String, String, String, String)>,
    findings: Vec<(&'static str, String)>,
    addresses: Vec<AddressRow>,
    recent: Vec<RecentRow>,
    api_href: String,
}

struct AddressRow {
    address: String,
    family: &'static str,
    class: &'static str,
    result: String,
    connect: String,
    tls: String,
    tls_facts: String,
    requests: String,
    cert: String,
    uptime: String,
}

struct RecentRow {
    time: String,
    result: String,
    latency: String,
    class: &'static str,
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage {
    vantage: String,
    refresh_s: u64,
    pings: u32,
    green_below_ms: u64,
    message: String,
}

fn word(s: Status) -> &'static str {
    match s {
        Status::Green => "operational",
        Status::Yellow => "degraded",
        Status::Red => "down",
        Status::Unknown => "not checked yet",
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ms"))
}

pub(super) fn percent(v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(r) if r >= 1.0 => "100%".to_owned(),
        Some(r) => format!("{:.2}%", (r * 100.0 * 100.0).floor() / 100.0),
    }
}

fn href(name: &str) -> String {
    format!(
        "/server/{}",
        url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    )
}

fn html(page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("template error: {e}"),
        )
            .into_response(),
    }
}

pub(super) async fn index(State(state): State<AppState>) -> Response {
    let snap = state.monitor.snapshot();
    let base = Base::new(&snap.config);
    let threshold = snap.config.monitor.green_below.as_secs_f64() * 1000.0;
    let rows: Vec<Row> = snap.servers.iter().map(|v| row(v, threshold)).collect();
    let ok = snap
        .servers
        .iter()
        .filter(|v| v.status() == Status::Green)
        .count();
    let summary = format!("{ok} of {} servers operational", snap.servers.len());
    html(&IndexPage {
        vantage: base.vantage,
        refresh_s: base.refresh_s,
        pings: base.pings,
        green_below_ms: base.green_below_ms,
        summary,
        rows,
        generated_at: crate::timestamp::format(OffsetDateTime::now_utc())
            .replace('T', " ")
            .replace('Z', ""),
    })
}

fn row(v: &ServerView, threshold_ms: f64) -> Row {
    let r = &v.report;
    let pings = r
        .addresses
        .iter()
        .find(|a| a.ok)
        .map(|a| {
            a.phases_ms
                .requests
                .iter()
                .map(|ms| Ping {
                    text: format!("{ms:.0}"),
                    class: if *ms < threshold_ms {
                        "green"
                    } else {
                        "yellow"
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    Row {
        name: r.name.clone(),
        title: v.title.clone(),
        detail_href: href(&r.name),
        client_url: v.client_url.clone(),
        description: v.description.get("en").cloned().unwrap_or_default(),
        status: r.status.as_str(),
        symbol: r.status.symbol(),
        word: word(r.status),
        reason: r
            .reason
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        latency: ms(r.latency_ms),
        pings,
        uptime_24h: percent(v.uptime("24h")),
        uptime_30d: percent(v.uptime("30d")),
        software: r
            .software
            .as_ref()
            .map(|s| format!("{} {}", s.name, s.version).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "–".to_owned()),
    }
}

pub(super) async fn server(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let Some((config, v)) = state.monitor.server(&name) else {
        return not_found_page(
            &state.monitor.config(),
            format!(
                "{name:?} is not monitored here. The list of monitored servers is on the front page."
            ),
        );
    };
    let base = Base::new(&config);
    let now = OffsetDateTime::now_utc();
    let threshold = config.monitor.green_below.as_secs_f64() * 1000.0;
    let r = &v.report;
    let mut discovery = Vec::new();
    let mut targets = Vec::new();
    let mut findings = Vec::new();
    if let Some(d) = &r.discovery {
        let wk = &d.well_known;
        let wk_text = match wk.status {
            WellKnownStatus::Skipped => {
                "skipped: the name is an IP literal or has an explicit port".to_owned()
            }
            WellKnownStatus::Delegated => format!("delegates to {}", d.delegated_name),
            status => format!(
                "{}: {}",
                match status {
                    WellKnownStatus::NotFound => "not found",
                    WellKnownStatus::Invalid => "invalid",
                    _ => "error",
                },
                wk.problem.clone().unwrap_or_default()
            ),
        };
        discovery.push(("/.well-known/matrix/server".to_owned(), wk_text));
        for srv in &d.srv {
            let records: Vec<String> = srv
                .records
                .iter()
                .map(|rec| {
                    format!(
                        "{} {} {} {}",
                        rec.priority, rec.weight, rec.port, rec.target
                    )
                })
                .collect();
            let detail = match srv.outcome {
                "found" => records.join("; "),
                "failed" => format!("failed: {}", srv.error.clone().unwrap_or_default()),
                "unavailable" => "target \".\": federation explicitly not offered".to_owned(),
                _ => "no record".to_owned(),
            };
            discovery.push((format!("SRV {}", srv.name), detail));
        }
        for h in &d.hosts {
            let mut parts = Vec::new();
            if !h.cnames.is_empty() {
                parts.push(format!("CNAME → {}", h.cnames.join(" → ")));
            }
            parts.push(if h.addresses.is_empty() {
                "no addresses".to_owned()
            } else {
                h.addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            parts.extend(h.errors.iter().cloned());
            discovery.push((format!("DNS {}", h.host), parts.join("; ")));
        }
        if let Some(m) = d.method {
            discovery.push(("Method".to_owned(), method_words(m).to_owned()));
        }
        if let Some(e) = &d.error {
            discovery.push(("Result".to_owned(), format!("{}: {}", e.kind, e.message)));
        }
        for t in &d.targets {
            targets.push((
                t.address.to_string(),
                t.host_header.clone(),
                t.tls_name
                    .clone()
                    .unwrap_or_else(|| "none (IP literal)".to_owned()),
                t.via.clone(),
            ));
        }
        for f in &d.findings {
            let sev = match f.severity {
                Severity::Info => "info",
                Severity::Warning => "warning",
                Severity::Error => "error",
            };
            findings.push((sev, f.message.clone()));
        }
    }
    let addresses = r
        .addresses
        .iter()
        .map(|a| {
            let tls = a.tls.as_ref();
            let cert = tls.and_then(|t| t.certificate.as_ref());
            AddressRow {
                address: a.address.to_string(),
                family: if a.ip_family == "ipv6" {
                    "IPv6"
                } else {
                    "IPv4"
                },
                class: if a.ok { "ok" } else { "failing" },
                result: match &a.error {
                    None => "ok".to_owned(),
                    Some(e) => format!("{}: {}", e.kind, e.message),
                },
                connect: ms(a.phases_ms.connect),
                tls: ms(a.phases_ms.tls),
                tls_facts: tls
                    .map(|t| {
                        format!(
                            "{} {} {}{}",
                            t.version,
                            t.cipher,
                            t.group.clone().unwrap_or_default(),
                            if t.hello_retry_request {
                                " · HelloRetryRequest (+1 round trip)"
                            } else {
                                ""
                            }
                        )
                    })
                    .unwrap_or_default(),
                requests: if a.phases_ms.requests.is_empty() {
                    "–".to_owned()
                } else {
                    a.phases_ms
                        .requests
                        .iter()
                        .map(|r| format!("{r:.0}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                        + " ms"
                },
                cert: cert
                    .map(|c| {
                        format!(
                            "{}; expires {} ({} days){}",
                            c.names_for_display(),
                            c.not_after.date(),
                            days_until(c.not_after, now),
                            if tls.is_some_and(|t| t.certificate_valid) {
                                ""
                            } else {
                                "; NOT VALID for this name"
                            }
                        )
                    })
                    .unwrap_or_else(|| "–".to_owned()),
                uptime: percent(
                    v.address_uptime_24h
                        .get(&a.address.to_string())
                        .copied()
                        .flatten(),
                ),
            }
        })
        .collect();
    let recent = v
        .recent
        .iter()
        .rev()
        .take(20)
        .map(|s| RecentRow {
            time: OffsetDateTime::from_unix_timestamp(s.at)
                .map(|t| {
                    crate::timestamp::format(t)
                        .replace('T', " ")
                        .replace('Z', "")
                })
                .unwrap_or_default(),
            result: match (s.up, s.all_ok, s.error) {
                (_, true, _) => "ok".to_owned(),
                (true, false, Some(k)) => format!("partly failing ({k})"),
                (false, _, Some(k)) => format!("failed ({k})"),
                _ => "failed".to_owned(),
            },
            latency: ms(s.latency_ms.map(f64::from)),
            class: if s.all_ok { "ok" } else { "failing" },
        })
        .collect();
    html(&ServerPage {
        vantage: base.vantage,
        refresh_s: base.refresh_s,
        pings: base.pings,
        green_below_ms: base.green_below_ms,
        name: r.name.clone(),
        title: v.title.clone(),
        status: r.status.as_str(),
        symbol: r.status.symbol(),
        word: word(r.status),
        reason: r
            .reason
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        latency: ms(r.latency_ms),
        p50: v.latency_p50_ms.map(|x| ms(Some(x))).unwrap_or_default(),
        p95: v.latency_p95_ms.map(|x| ms(Some(x))).unwrap_or_default(),
        software: r
            .software
            .as_ref()
            .map(|s| format!("{} {}", s.name, s.version))
            .unwrap_or_else(|| "–".to_owned()),
        checked_at: r
            .checked_at
            .map(|t| {
                crate::timestamp::format(t)
                    .replace('T', " ")
                    .replace('Z', " UTC")
            })
            .unwrap_or_else(|| "never".to_owned()),
        client_url: v.client_url.clone(),
        error: r
            .error
            .as_ref()
            .map(|e| (e.kind.to_string(), e.message.clone())),
        uptime: v
            .uptime
            .iter()
            .map(|(w, u)| ((*w).to_owned(), percent(*u)))
            .collect(),
        chart: chart::latency_svg(&v.chart, now.unix_timestamp(), threshold),
        discovery,
        targets,
        findings,
        addresses,
        recent,
        api_href: format!(
            "/api/v1/servers/{}",
            url::form_urlencoded::byte_serialize(r.name.as_bytes()).collect::<String>()
        ),
    })
}

fn method_words(m: Method) -> &'static str {
    match m {
        Method::IpLiteral => "IP literal: connect directly, no SNI",
        Method::ExplicitPort => "hostname with an explicit port",
        Method::SrvMatrixFed => "SRV _matrix-fed._tcp",
        Method::SrvMatrix => "deprecated SRV _matrix._tcp",
        Method::DefaultPort => "no SRV record: port 8448",
    }
}

fn not_found_page(config: &Config, message: String) -> Response {
    let base = Base::new(config);
    let mut response = html(&NotFoundPage {
        vantage: base.vantage,
        refresh_s: 0,
        pings: base.pings,
        green_below_ms: base.green_below_ms,
        message,
    });
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

pub(super) async fn not_found(State(state): State<AppState>) -> Response {
    not_found_page(
        &state.monitor.config(),
        "There is no page at this address.".to_owned(),
    )
}
