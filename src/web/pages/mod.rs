//! The HTML pages (askama), in every language of `locales/`: one file per page, each with its
//! named view structs; values are formatted here so the templates stay simple. askama escapes
//! everything except the SVG charts, which are built from numbers and escaped text in
//! [`super::chart`]. This file holds what every page shares: the page frame (`Base`), the
//! response, and the words for statuses, error kinds and reasons.

mod index;
mod lang;
mod not_found;
mod server;

pub(super) use index::{Sort, index, select};
pub(super) use not_found::not_found;
pub(super) use server::server;

use crate::error::Trouble;
use crate::i18n::key;
use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::config::Config;
use crate::i18n::{self, Locale};
use crate::numbers::{self, Places};
use crate::scheduler::ServerView;
use crate::status::{Reason, Status};
use crate::web::chart::Day;

pub(super) use lang::{Lang, language, language_headers};

/// Query parameters the pages understand.
#[derive(Deserialize, Default)]
pub(super) struct PageQuery {
    lang: Option<String>,
    sort: Option<String>,
    filter: Option<String>,
    /// A search by name or title (the status page).
    q: Option<String>,
    /// The page of the status page, from 1.
    page: Option<String>,
}

/// A status as every page shows it: never by colour alone.
struct StatusView {
    /// The CSS class: `green`, `yellow`, `red`, `unknown`.
    class: &'static str,
    /// ●, ▲, ✖ or ?.
    symbol: &'static str,
    /// The word, in the reader's language.
    word: String,
    /// Why, in plain words (empty when green).
    reason: String,
    /// Why, as the API says it (for the tooltip and the details).
    reason_tech: String,
    /// Someone's own words that go with the reason (a maintenance window's note), quoted as
    /// written, in their language.
    said: String,
}

impl StatusView {
    fn new(t: &Locale, status: Status, reason: Option<&Reason>) -> StatusView {
        // A window's note is the operator's words: quoted apart from the reason in ours.
        let (reason_shown, said) = match reason {
            Some(Reason::Maintenance { until, note }) => (
                Some(Reason::Maintenance {
                    until: *until,
                    note: String::new(),
                }),
                note.clone(),
            ),
            other => (other.cloned(), String::new()),
        };
        StatusView {
            class: status.as_str(),
            symbol: status.symbol(),
            word: i18n::status_word(t, status).to_owned(),
            reason: reason_shown
                .as_ref()
                .map(|x| i18n::reason_words(t, x))
                .unwrap_or_default(),
            reason_tech: reason.map(ToString::to_string).unwrap_or_default(),
            said,
        }
    }
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
    /// Shown while alerts are not getting through (empty otherwise).
    alerts_failing: String,
    /// What the monitor is short of, when it is (empty otherwise).
    monitor_trouble: String,
    languages: Vec<LangLink>,
}

impl Base {
    fn new(config: &Config, t: &Locale, path_query: &dyn Fn(&str) -> String) -> Base {
        Base {
            lang: t.code.clone(),
            refresh_s: config.web.refresh.as_secs(),
            measured_from: match &config.web.vantage {
                Some(v) => t.f(key::MEASURED_FROM, &[("vantage", v)]),
                None => t.t(key::MEASURED_HERE).to_owned(),
            },
            footer_method: t.f(
                key::FOOTER_METHOD,
                &[
                    ("pings", &config.monitor.pings.to_string()),
                    ("ms", &config.monitor.green_below.as_millis().to_string()),
                ],
            ),
            alerts_failing: String::new(),
            monitor_trouble: String::new(),
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

impl Base {
    /// Notes in the footer that alerts are failing, when they are: how many channels, not
    /// why (rooms and homeservers are the operator's business; `/healthz` and the log say).
    /// Also notes what the monitor is short of (descriptors, buffers, memory) while it is.
    fn with_health(mut self, state: &crate::web::AppState) -> Base {
        let t = i18n::find(&self.lang).unwrap_or_else(i18n::english);
        let short: Vec<&str> = state
            .metrics
            .troubles()
            .current()
            .iter()
            .map(|c| {
                t.t(match c.trouble {
                    Trouble::OpenFiles => key::TROUBLE_OPEN_FILES,
                    Trouble::Buffers => key::TROUBLE_BUFFERS,
                    Trouble::Memory => key::TROUBLE_MEMORY,
                })
            })
            .collect();
        if !short.is_empty() {
            let what = short.join(t.t(key::LIST_SEP));
            self.monitor_trouble = t.f(key::MONITOR_TROUBLE, &[("what", &what)]);
        }
        let channels = state.alert_channels();
        let failing = channels.iter().filter(|(_, s)| s.problem.is_some()).count();
        if failing > 0 {
            self.alerts_failing = t.f(
                key::ALERT_FAILING,
                &[
                    ("count", &failing.to_string()),
                    ("total", &channels.len().to_string()),
                ],
            );
        }
        self
    }
}

/// The sign-up stages a server asks for, in words (a stage this list does not know is shown
/// as its code).
pub(super) fn stage_words(t: &Locale, stages: &[String]) -> String {
    stages
        .iter()
        .map(|s| match s.as_str() {
            "m.login.dummy" => t.t(key::STAGE_DUMMY),
            "m.login.terms" => t.t(key::STAGE_TERMS),
            "m.login.email.identity" => t.t(key::STAGE_EMAIL),
            "m.login.msisdn" => t.t(key::STAGE_MSISDN),
            "m.login.recaptcha" => t.t(key::STAGE_RECAPTCHA),
            "m.login.registration_token" => t.t(key::STAGE_TOKEN),
            other => other,
        })
        .collect::<Vec<_>>()
        .join(t.t(key::LIST_SEP))
}

/// A note of an operator, as pages show it.
pub(super) struct NoteView {
    /// Who wrote it and when, as HTML ("Note from alice, <time>…</time>").
    pub(super) header: String,
    /// What they wrote, as written (escaped by the template); or a status change in words.
    pub(super) text: String,
    /// `text` is someone's own words (quoted, in their language).
    pub(super) said: bool,
}

impl NoteView {
    pub(super) fn new(t: &Locale, n: &crate::maintenance::incidents::Note) -> NoteView {
        let key = if n.resolves {
            key::INCIDENT_RESOLVED_BY
        } else {
            key::INCIDENT_NOTE_BY
        };
        NoteView {
            header: t.fill(
                &crate::text::escape_html(t.t(key)),
                &[
                    // A name as its owner wrote it, in any script.
                    (
                        "by",
                        &format!(
                            "<bdi class=\"said\">{}</bdi>",
                            crate::text::escape_html(&n.by)
                        ),
                    ),
                    ("time", &time_html(t, n.at)),
                ],
            ),
            text: n.text.clone(),
            said: true,
        }
    }
}

/// A moment as HTML: a `<time>` element with the moment in UTC (which the page's script
/// shows in the reader's time zone), written in `t`'s way in UTC.
pub(super) fn time_html(t: &Locale, at: OffsetDateTime) -> String {
    format!(
        r#"<time datetime="{}">{}</time>"#,
        crate::timestamp::format(at),
        crate::text::escape_html(&t.datetime(at))
    )
}

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

/// A latency in whole milliseconds ("< 1 ms" below one), or a dash.
fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| numbers::ms(v, Places::Whole))
}

pub(super) use crate::numbers::percent;

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
                Some(u) => t.f(
                    key::BAR_DAY,
                    &[("date", &date), ("uptime", &percent(Some(u)))],
                ),
                None => t.f(key::BAR_NO_DATA, &[("date", &date)]),
            };
            Day { label, uptime }
        })
        .collect()
}
