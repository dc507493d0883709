//! The HTML pages (askama), in every language of `locales/`. Values are formatted here so the
//! templates stay simple; askama escapes everything except the SVG charts, which are built
//! from numbers and escaped text in [`super::chart`].

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;

use super::cache::{Page, accepts_gzip};
use super::chart::{self, Day};
use super::{AppState, csp_with_connect};
use crate::config::Config;
use crate::discovery::explain;
use crate::discovery::well_known::WellKnownStatus;
use crate::discovery::{Resolution, Severity};
use crate::error::ErrorKind;
use crate::i18n::{self, Locale};
use crate::net::tls::days_until;
use crate::probe::client_api::Discovery as ClientDiscovery;
use crate::report::{Reason, Status};
use crate::scheduler::{Board, ServerView};

/// Query parameters the pages understand.
#[derive(Deserialize, Default)]
pub(super) struct PageQuery {
    lang: Option<String>,
    sort: Option<String>,
    filter: Option<String>,
}

/// A link to another language.
struct LangLink {
    code: String,
    name: String,
    href: String,
    current: bool,
}

/// What base.html needs.
struct Base {
    lang: String,
    refresh_s: u64,
    measured_from: String,
    footer_method: String,
    languages: Vec<LangLink>,
}

/// The language of a request and whether to remember it in a cookie.
struct Lang {
    locale: &'static Locale,
    remember: bool,
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

fn language(query: &PageQuery, headers: &HeaderMap) -> Lang {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let locale = i18n::negotiate(
        query.lang.as_deref(),
        cookie_value(headers, i18n::COOKIE),
        accept,
    );
    Lang {
        locale,
        remember: query.lang.as_deref().and_then(i18n::find).is_some(),
    }
}

impl Base {
    fn new(config: &Config, t: &Locale, path_query: &dyn Fn(&str) -> String) -> Base {
        Base {
            lang: t.code.clone(),
            refresh_s: config.web.refresh.as_secs(),
            measured_from: t.f("measured_from", &[("vantage", &config.web.vantage)]),
            footer_method: t.f(
                "footer_method",
                &[
                    ("pings", &config.monitor.pings.to_string()),
                    ("ms", &config.monitor.green_below.as_millis().to_string()),
                ],
            ),
            languages: i18n::locales()
                .iter()
                .map(|l| LangLink {
                    code: l.code.clone(),
                    name: l.name.clone(),
                    href: path_query(&l.code),
                    current: l.code == t.code,
                })
                .collect(),
        }
    }
}

/// Sends `page`, setting the language cookie when the visitor just chose one.
fn html(page: &impl Template, lang: &Lang, csp: Option<String>) -> Response {
    let mut response = match page.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("template error: {e}"),
        )
            .into_response(),
    };
    language_headers(&mut response, lang, "Accept-Language, Cookie");
    if let Some(csp) = csp.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The headers of a page that depends on the visitor's language: which one it is, what it
/// varies with, and the cookie remembering a language just chosen.
fn language_headers(response: &mut Response, lang: &Lang, vary: &'static str) {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_str(&lang.locale.code).expect("language codes are ASCII"),
    );
    h.insert(header::VARY, HeaderValue::from_static(vary));
    if lang.remember {
        let cookie = format!(
            "{}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            i18n::COOKIE,
            lang.locale.code
        );
        h.insert(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("ASCII cookie"),
        );
    }
}

fn word(t: &Locale, s: Status) -> &str {
    t.t(match s {
        Status::Green => "status_green",
        Status::Yellow => "status_yellow",
        Status::Red => "status_red",
        Status::Unknown => "status_unknown",
    })
}

fn kind_text(t: &Locale, kind: Option<ErrorKind>) -> &str {
    match kind {
        Some(k) => t.t(match k {
            ErrorKind::InvalidName => "kind_invalid_name",
            ErrorKind::Dns => "kind_dns",
            ErrorKind::NoAddress => "kind_no_address",
            ErrorKind::BlockedAddress => "kind_blocked_address",
            ErrorKind::ServiceUnavailable => "kind_service_unavailable",
            ErrorKind::ConnectRefused => "kind_connect_refused",
            ErrorKind::ConnectTimeout => "kind_connect_timeout",
            ErrorKind::Connect => "kind_connect",
            ErrorKind::TlsHandshake => "kind_tls_handshake",
            ErrorKind::TlsCertificate => "kind_tls_certificate",
            ErrorKind::Timeout => "kind_timeout",
            ErrorKind::HttpStatus => "kind_http_status",
            ErrorKind::InvalidResponse => "kind_invalid_response",
            ErrorKind::BodyTooLarge => "kind_body_too_large",
        }),
        None => t.t("kind_unknown"),
    }
}

/// A reason in plain words in `t`'s language.
fn reason_words(t: &Locale, r: &Reason) -> String {
    let problem = kind_text(t, r.kind());
    match r {
        Reason::Failed { .. } => t.f("reason_failed", &[("problem", problem)]),
        Reason::Partial {
            family, address, ..
        } => t.f(
            "reason_partial",
            &[
                ("family", family),
                ("address", address),
                ("problem", problem),
            ],
        ),
        Reason::Slow {
            latency_ms,
            threshold_ms,
        } => t.f(
            "reason_slow",
            &[
                ("latency", &format!("{latency_ms:.0}")),
                ("threshold", &format!("{threshold_ms:.0}")),
            ],
        ),
        Reason::Unconfirmed { failed, of, .. } => t.f(
            "reason_unconfirmed",
            &[
                ("failed", &failed.to_string()),
                ("of", &of.to_string()),
                ("problem", problem),
            ],
        ),
        Reason::Down { failed, .. } => t.f(
            "reason_down",
            &[("failed", &failed.to_string()), ("problem", problem)],
        ),
        Reason::Recovering { good, of } => t.f(
            "reason_recovering",
            &[("good", &good.to_string()), ("of", &of.to_string())],
        ),
        Reason::NotChecked => t.t("reason_not_checked").to_owned(),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0} ms"))
}

/// A ratio as a percentage, never rounded up to 100 %.
pub(super) fn percent(v: Option<f64>) -> String {
    match v {
        None => "–".to_owned(),
        Some(r) if r >= 1.0 => "100%".to_owned(),
        Some(r) => format!("{:.2}%", (r * 100.0 * 100.0).floor() / 100.0),
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn href(name: &str) -> String {
    format!("/server/{}", encode(name))
}

/// The URL a browser can ping for a server: the first target, by the name the browser can
/// resolve (the delegated or SRV target host, or the IP literal) and its port.
fn browser_url(v: &ServerView) -> Option<String> {
    let t = v.report.discovery.as_ref()?.probe_targets().next()?;
    let host = match &t.tls_name {
        None => match t.address.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        },
        Some(_) => t.via.clone(),
    };
    Some(format!(
        "https://{host}:{}/_matrix/federation/v1/version",
        t.address.port()
    ))
}

fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(format!(
        "https://{}:{}",
        u.host_str()?,
        u.port_or_known_default()?
    ))
}

/// The 90-day bar: one cell per day, oldest first, with the date and uptime in its tooltip.
fn days(t: &Locale, v: &ServerView, now: i64) -> Vec<Day> {
    v.daily(now)
        .into_iter()
        .map(|(start, uptime)| {
            let date = OffsetDateTime::from_unix_timestamp(start)
                .map(|d| t.date(d))
                .unwrap_or_default();
            let label = match uptime {
                Some(u) => t.f("bar_day", &[("date", &date), ("uptime", &percent(Some(u)))]),
                None => t.f("bar_no_data", &[("date", &date)]),
            };
            Day { label, uptime }
        })
        .collect()
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
    word: String,
    reason: String,
    reason_tech: String,
    latency: String,
    pings: Vec<Ping>,
    browser_url: Option<String>,
    uptime_24h: String,
    uptime_30d: String,
    bar: String,
    spark: String,
    client_class: &'static str,
    client_text: String,
    software: String,
}

struct Choice {
    label: String,
    href: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    t: &'static Locale,
    base: Base,
    green_below_ms: u64,
    summary: String,
    sorts: Vec<Choice>,
    filters: Vec<Choice>,
    rows: Vec<Row>,
    generated: String,
}

fn row(t: &Locale, v: &ServerView, threshold_ms: f64, now: i64) -> Row {
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
    let (client_class, client_text) = match &r.client {
        None => ("unknown", t.t("client_not_checked").to_owned()),
        Some(c) if c.ok => ("ok", t.f("client_ok", &[("latency", &ms(c.latency_ms))])),
        Some(_) => ("failing", t.t("client_failed").to_owned()),
    };
    let description = v
        .description
        .get(&t.code)
        .or_else(|| v.description.get("en"))
        .cloned()
        .unwrap_or_default();
    Row {
        name: r.name.clone(),
        title: v.title.clone(),
        detail_href: href(&r.name),
        client_url: v.client_url.clone(),
        description,
        status: r.status.as_str(),
        symbol: r.status.symbol(),
        word: word(t, r.status).to_owned(),
        reason: r
            .reason
            .as_ref()
            .map(|x| reason_words(t, x))
            .unwrap_or_default(),
        reason_tech: r
            .reason
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        latency: ms(r.latency_ms),
        pings,
        browser_url: browser_url(v),
        uptime_24h: percent(v.uptime("24h")),
        uptime_30d: percent(v.uptime("30d")),
        bar: chart::uptime_bar(&days(t, v, now), t.t("bar_label")),
        spark: chart::sparkline(&v.chart(now), now, t.t("sparkline_label")),
        client_class,
        client_text,
        software: r
            .software
            .as_ref()
            .map(|s| format!("{} {}", s.name, s.version).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "–".to_owned()),
    }
}

fn status_rank(s: Status) -> u8 {
    match s {
        Status::Red => 0,
        Status::Yellow => 1,
        Status::Unknown => 2,
        Status::Green => 3,
    }
}

pub(super) async fn index(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&query, &headers);
    let sort: &'static str = match query.sort.as_deref() {
        Some("status") => "status",
        Some("latency") => "latency",
        Some("name") => "name",
        _ => "",
    };
    let problems = query.filter.as_deref() == Some("problems");
    let locale = lang.locale;
    let board = state.board.clone();
    let key = format!("{}|{sort}|{problems}", locale.code);
    let page = state
        .pages
        .get(&key, state.board.generation(), move || {
            index_page(&board, locale, sort, problems)
        })
        .await;
    let mut response = if accepts_gzip(&headers) {
        (
            [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))],
            page.gzip.clone(),
        )
            .into_response()
    } else {
        page.body.clone().into_response()
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    language_headers(
        &mut response,
        &lang,
        "Accept-Language, Cookie, Accept-Encoding",
    );
    if let Ok(csp) = HeaderValue::from_str(&page.csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// Builds the status page for one language, sort order and filter.
fn index_page(board: &Board, t: &'static Locale, sort: &str, problems: bool) -> Page {
    // Read before the snapshot: a change racing with this build makes the page look older
    // than it is, never newer.
    let generation = board.generation();
    let snap = board.snapshot();
    let config = &snap.config;
    let now = OffsetDateTime::now_utc();
    let threshold = config.monitor.green_below.as_secs_f64() * 1000.0;
    let link = |code: &str, sort: &str, filter: &str| {
        let mut parts = vec![format!("lang={code}")];
        if !sort.is_empty() {
            parts.push(format!("sort={sort}"));
        }
        if !filter.is_empty() {
            parts.push(format!("filter={filter}"));
        }
        format!("/?{}", parts.join("&"))
    };
    let filter_param = if problems { "problems" } else { "" };
    let base = Base::new(config, t, &|code| link(code, sort, filter_param));
    let mut servers: Vec<&std::sync::Arc<ServerView>> = snap.servers.iter().collect();
    match sort {
        "status" => servers.sort_by_key(|v| status_rank(v.status())),
        "latency" => servers.sort_by(|a, b| {
            let key = |v: &ServerView| v.report.latency_ms.unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        }),
        "name" => servers.sort_by(|a, b| a.report.name.cmp(&b.report.name)),
        _ => {}
    }
    let ok = snap
        .servers
        .iter()
        .filter(|v| v.status() == Status::Green)
        .count();
    let summary = t.f(
        "summary",
        &[
            ("ok", &ok.to_string()),
            ("total", &snap.servers.len().to_string()),
        ],
    );
    let rows: Vec<Row> = servers
        .into_iter()
        .filter(|v| !problems || v.status() != Status::Green)
        .map(|v| row(t, v, threshold, now.unix_timestamp()))
        .collect();
    let origins: BTreeSet<String> = rows
        .iter()
        .filter_map(|r| r.browser_url.as_deref().and_then(origin))
        .collect();
    let sorts = [
        ("status", "sort_status"),
        ("latency", "sort_latency"),
        ("name", "sort_name"),
    ]
    .into_iter()
    .map(|(key, label)| Choice {
        label: t.t(label).to_owned(),
        href: link(&t.code, key, filter_param),
        current: sort == key,
    })
    .collect();
    let filters = [("", "filter_all"), ("problems", "filter_problems")]
        .into_iter()
        .map(|(key, label)| Choice {
            label: t.t(label).to_owned(),
            href: link(&t.code, sort, key),
            current: filter_param == key,
        })
        .collect();
    let page = IndexPage {
        t,
        green_below_ms: config.monitor.green_below.as_millis() as u64,
        summary,
        sorts,
        filters,
        generated: t.f(
            "generated",
            &[
                ("time", &t.datetime(now)),
                ("seconds", &config.web.refresh.as_secs().to_string()),
            ],
        ),
        rows,
        base,
    };
    let body = page
        .render()
        .unwrap_or_else(|e| format!("template error: {e}"));
    Page::new(generation, body, csp_with_connect(&origins))
}

/// The client-API section of the detail page.
struct ClientView {
    base_url: String,
    latency: String,
    versions: String,
    error: String,
    /// Redirects followed on the way, in order.
    redirects: Vec<String>,
    /// The identity server and whether it answers.
    identity_server: Option<String>,
}

#[derive(Template)]
#[template(path = "server.html")]
struct ServerPage {
    t: &'static Locale,
    base: Base,
    name: String,
    title: String,
    status: &'static str,
    symbol: &'static str,
    word: String,
    reason: String,
    reason_tech: String,
    latency: String,
    latency_24h: String,
    software: String,
    checked_at: String,
    client_url: Option<String>,
    error: Option<(String, String)>,
    uptime: Vec<(String, String)>,
    bar: String,
    chart: String,
    chart_caption: String,
    explanation: String,
    well_known: String,
    discovery: Vec<explain::Step>,
    targets: Vec<(String, String, String, String)>,
    findings: Vec<(&'static str, String)>,
    addresses: Vec<AddressRow>,
    client: Option<ClientView>,
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

/// The discovery chain in one plain sentence, in `t`'s words.
fn explain(t: &Locale, d: &Resolution) -> String {
    let sentence = explain::sentence(d);
    let problem = sentence
        .failure
        .map(|k| kind_text(t, Some(k)).to_owned())
        .unwrap_or_default();
    let mut args: Vec<(&str, &str)> = sentence
        .args
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    args.push(("problem", &problem));
    t.f(sentence.key, &args)
}

pub(super) async fn server(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&query, &headers);
    let t = lang.locale;
    let Some((config, v)) = state.board.server(&name) else {
        let message = t.f("not_found_server", &[("name", &name)]);
        return not_found_page(&state.board.config(), &lang, message);
    };
    let base = Base::new(&config, t, &|code| format!("{}?lang={code}", href(&name)));
    let now = OffsetDateTime::now_utc();
    let threshold = config.monitor.green_below.as_secs_f64() * 1000.0;
    let r = &v.report;
    let mut discovery = Vec::new();
    let mut targets = Vec::new();
    let mut findings = Vec::new();
    let mut explanation = String::new();
    let mut well_known = String::new();
    if let Some(d) = &r.discovery {
        explanation = explain(t, d);
        let wk = &d.well_known;
        if wk.status != WellKnownStatus::Skipped {
            let answer = match (&wk.body, &wk.problem) {
                (Some(body), _) if wk.status == WellKnownStatus::Delegated => body.clone(),
                (_, Some(p)) => p.clone(),
                _ => "–".to_owned(),
            };
            well_known = t.f(
                "explain_well_known",
                &[("name", &d.server_name), ("answer", &answer)],
            );
        }
        discovery = explain::steps(d);
        if let Some(e) = &d.error {
            discovery.push(explain::Step {
                label: "error",
                summary: format!("{}: {}", e.kind, e.message),
                details: Vec::new(),
            });
        }
        for tg in &d.targets {
            targets.push((
                tg.address.to_string(),
                tg.host_header.clone(),
                tg.tls_name
                    .clone()
                    .unwrap_or_else(|| "none (IP literal)".to_owned()),
                tg.via.clone(),
            ));
        }
        for f in d.findings.iter().chain(&r.findings) {
            let sev = match f.severity {
                Severity::Info => "info",
                Severity::Warning => "warning",
                Severity::Error => "error",
            };
            findings.push((sev, f.text(t)));
        }
    }
    let addresses = r
        .addresses
        .iter()
        .map(|a| {
            let tls = a.tls.as_ref();
            let cert = tls.and_then(|x| x.certificate.as_ref());
            AddressRow {
                address: a.address.to_string(),
                family: a.ip_family.name(),
                class: if a.ok { "ok" } else { "failing" },
                result: match &a.error {
                    None => t.t("ok").to_owned(),
                    Some(e) => format!("{}: {}", kind_text(t, Some(e.kind)), e.message),
                },
                connect: ms(a.phases_ms.connect),
                tls: ms(a.phases_ms.tls),
                tls_facts: tls
                    .map(|x| {
                        format!(
                            "{} {} {}{}",
                            x.version,
                            x.cipher,
                            x.group.clone().unwrap_or_default(),
                            if x.hello_retry_request {
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
                        .map(|x| format!("{x:.0}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                        + " ms"
                },
                cert: cert
                    .map(|c| {
                        let expires = t.f(
                            "cert_expires",
                            &[
                                ("date", &t.date(c.not_after)),
                                ("days", &days_until(c.not_after, now).to_string()),
                            ],
                        );
                        let valid = tls.is_some_and(|x| x.certificate_valid);
                        format!(
                            "{}; {expires}{}",
                            c.names_for_display(),
                            if valid {
                                String::new()
                            } else {
                                format!("; {}", t.t("cert_invalid"))
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
    let client = r.client.as_ref().map(|c| {
        let base = c.base_url.clone().unwrap_or_else(|| "–".to_owned());
        let base = match c.discovery {
            ClientDiscovery::Ignore => format!("{base} (no /.well-known/matrix/client)"),
            _ => base,
        };
        ClientView {
            base_url: base,
            latency: ms(c.latency_ms),
            versions: c.versions.join(", "),
            error: c.error.clone().unwrap_or_default(),
            redirects: c.redirects.clone(),
            identity_server: c.identity_server.as_ref().map(|is| {
                let state = if is.ok {
                    t.t("client_identity_ok")
                } else {
                    t.t("client_identity_failing")
                };
                format!("{} ({state})", is.base_url)
            }),
        }
    });
    let recent = v
        .recent()
        .iter()
        .rev()
        .take(20)
        .map(|s| {
            let kind = s
                .error
                .map(|k| kind_text(t, Some(k)).to_owned())
                .unwrap_or_default();
            RecentRow {
                time: OffsetDateTime::from_unix_timestamp(s.at)
                    .map(|x| t.datetime(x))
                    .unwrap_or_default(),
                result: match (s.up, s.all_ok) {
                    (_, true) => t.t("ok").to_owned(),
                    (true, false) => t.f("partly_failing", &[("kind", &kind)]),
                    (false, _) => t.f("failed", &[("kind", &kind)]),
                },
                latency: ms(s.latency_ms.map(f64::from)),
                class: if s.all_ok { "ok" } else { "failing" },
            }
        })
        .collect();
    let page = ServerPage {
        t,
        name: r.name.clone(),
        title: v.title.clone(),
        status: r.status.as_str(),
        symbol: r.status.symbol(),
        word: word(t, r.status).to_owned(),
        reason: r
            .reason
            .as_ref()
            .map(|x| reason_words(t, x))
            .unwrap_or_default(),
        reason_tech: r
            .reason
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        latency: ms(r.latency_ms),
        latency_24h: match (v.latency_p50_ms, v.latency_p95_ms) {
            (Some(p50), Some(p95)) => t.f(
                "latency_24h_summary",
                &[("p50", &ms(Some(p50))), ("p95", &ms(Some(p95)))],
            ),
            _ => String::new(),
        },
        software: r
            .software
            .as_ref()
            .map(|s| format!("{} {}", s.name, s.version))
            .unwrap_or_else(|| "–".to_owned()),
        checked_at: r
            .checked_at
            .map(|x| t.datetime(x))
            .unwrap_or_else(|| t.t("never").to_owned()),
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
        bar: chart::uptime_bar(&days(t, &v, now.unix_timestamp()), t.t("bar_label")),
        chart: chart::latency_svg(
            &v.chart(now.unix_timestamp()),
            now.unix_timestamp(),
            threshold,
            t.t("discovery_none"),
        ),
        chart_caption: t.f(
            "chart_caption",
            &[("ms", &config.monitor.green_below.as_millis().to_string())],
        ),
        explanation,
        well_known,
        discovery,
        targets,
        findings,
        addresses,
        client,
        recent,
        api_href: format!("/api/v1/servers/{}", encode(&r.name)),
        base,
    };
    html(&page, &lang, None)
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage {
    t: &'static Locale,
    base: Base,
    message: String,
}

fn not_found_page(config: &Config, lang: &Lang, message: String) -> Response {
    let t = lang.locale;
    let mut base = Base::new(config, t, &|code| format!("/?lang={code}"));
    base.refresh_s = 0;
    let mut response = html(&NotFoundPage { t, base, message }, lang, None);
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

pub(super) async fn not_found(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&query, &headers);
    let message = lang.locale.t("not_found_page").to_owned();
    not_found_page(&state.board.config(), &lang, message)
}
