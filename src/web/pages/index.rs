//! `/`: the status page, one row per server, sorted and filtered, cached per language.

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use crate::i18n::Locale;
use crate::numbers::{Places, ms_number};
use crate::report::Status;
use crate::scheduler::{Board, ServerView};
use crate::web::cache::{Page, accepts_gzip};
use crate::web::chart::{self};
use crate::web::{AppState, csp_with_connect};

use super::lang::{language, language_headers};
use super::{Base, PageQuery, StatusView, browser_url, days, href, ms, origin, percent};

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
    state: StatusView,
    latency: String,
    pings: Vec<Ping>,
    browser_url: Option<String>,
    uptime_24h: String,
    uptime_30d: String,
    bar: String,
    spark: String,
    client_class: &'static str,
    client_text: String,
    signup_class: &'static str,
    signup_symbol: &'static str,
    signup_text: String,
    signup_title: String,
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
    empty: String,
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
                    text: ms_number(*ms, Places::Whole),
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
    let (signup_class, signup_symbol, signup_text, signup_title) = match &v.signup {
        None => (
            "unknown",
            "",
            t.t("signup_not_checked").to_owned(),
            String::new(),
        ),
        Some(s) => {
            let way = s.way();
            let class = if s.status.can_join() { "ok" } else { "closed" };
            let title = match &s.error {
                Some(e) => e.message.clone(),
                None => s.stages.join(", "),
            };
            (class, way.symbol(), t.t(way.key()).to_owned(), title)
        }
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
        state: StatusView::new(t, r.status, r.reason.as_ref()),
        latency: ms(r.latency_ms),
        pings,
        browser_url: browser_url(v),
        uptime_24h: percent(v.uptime("24h")),
        uptime_30d: percent(v.uptime("30d")),
        bar: chart::uptime_bar(&days(t, v, now), t.t("bar_label")),
        spark: chart::sparkline(&v.chart(now), now, t.t("sparkline_label")),
        client_class,
        client_text,
        signup_class,
        signup_symbol,
        signup_text,
        signup_title,
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

pub(in crate::web) async fn index(
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
    let filter: &'static str = match query.filter.as_deref() {
        Some("problems") => "problems",
        Some("join") => "join",
        _ => "",
    };
    let locale = lang.locale;
    let board = state.board.clone();
    let key = format!("{}|{sort}|{filter}", locale.code);
    let page = state
        .pages
        .get(&key, state.board.generation(), move || {
            index_page(&board, locale, sort, filter)
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

/// Builds the status page for one language, sort order and filter (`""`, `problems`, or
/// `join`: the servers a newcomer can sign up on now).
fn index_page(board: &Board, t: &'static Locale, sort: &str, filter_param: &str) -> Page {
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
        .filter(|v| match filter_param {
            "problems" => v.status() != Status::Green,
            "join" => v.signup.as_ref().is_some_and(|s| s.status.can_join()),
            _ => true,
        })
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
    let filters = [
        ("", "filter_all"),
        ("problems", "filter_problems"),
        ("join", "filter_join"),
    ]
    .into_iter()
    .map(|(key, label)| Choice {
        label: t.t(label).to_owned(),
        href: link(&t.code, sort, key),
        current: filter_param == key,
    })
    .collect();
    let empty = t
        .t(if filter_param == "join" {
            "no_joinable"
        } else {
            "no_problems"
        })
        .to_owned();
    let page = IndexPage {
        t,
        empty,
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
