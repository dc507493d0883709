//! `/`: the status page, one row per server, sorted and filtered, cached per language.

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use crate::i18n::key;
use crate::i18n::{Key, Locale};
use crate::numbers::{Places, ms_number};
use crate::probe::apps::{App, Clients, Verdict, Works};
use crate::scheduler::ServerView;
use crate::status::Status;
use crate::web::cache::{Page, accepts_gzip};
use crate::web::chart::{self};
use crate::web::{AppState, csp_with_connect};

use super::lang::{language, language_headers};
use super::{Base, PageQuery, StatusView, browser_url, days, href, ms, origin, percent};

struct Ping {
    text: String,
    class: &'static str,
}

/// One app's verdict in a row: its sign and name, the verdict and why in the tooltip and in
/// words for screen readers.
struct AppCell {
    name: &'static str,
    symbol: &'static str,
    class: &'static str,
    /// "works", or "does not work: why".
    said: String,
    /// The same for the tooltip, empty when it works (nothing to explain).
    why: String,
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
    /// Each app's verdict (empty before the first check).
    apps: Vec<AppCell>,
    /// On a hub: the other vantages' latency or status, compactly.
    vantages: Vec<VantageCell>,
    /// The newest note of the server's open incident.
    note: Option<super::NoteView>,
}

/// One vantage's view in a row of the hub's status page.
pub(super) struct VantageCell {
    pub(super) name: String,
    /// Latency, or the status word when it does not reach the server.
    pub(super) text: String,
    /// The status class, or `stale` / `impaired` (it does not vote).
    pub(super) class: &'static str,
    pub(super) title: String,
    /// Its uptime over 24 hours and mean latency there (the detail page's table).
    pub(super) day: String,
}

/// The vantages of `v`, without this instance's own view when `skip_own` (a row shows it
/// already).
pub(super) fn vantage_cells(t: &Locale, v: &ServerView, skip_own: bool) -> Vec<VantageCell> {
    let Some(views) = &v.vantages else {
        return Vec::new();
    };
    views
        .iter()
        .skip(usize::from(skip_own))
        .map(|x| {
            let (class, note) = if x.impaired {
                ("impaired", t.t(key::VANTAGE_IMPAIRED))
            } else if x.stale {
                ("stale", t.t(key::VANTAGE_STALE))
            } else {
                (x.status.as_str(), "")
            };
            let text = match (x.status, x.latency_ms) {
                (Status::Green | Status::Yellow, Some(l)) => ms(Some(l)),
                (s, _) => crate::i18n::status_word(t, s).to_owned(),
            };
            let mut title = t.f(key::VANTAGE_TITLE, &[("vantage", &x.vantage)]);
            if !note.is_empty() {
                title = format!("{title}{}{note}", t.t(key::LABEL_SEP));
            }
            let clause = t.t(key::CLAUSE_SEP);
            if let Some(d) = &x.different_delegation {
                let said = t.f(key::VANTAGE_DELEGATION, &[("name", d)]);
                title = format!("{title}{clause}{said}");
            }
            if let Some(a) = &x.different_addresses {
                let list = a.join(t.t(key::LIST_SEP));
                let said = t.f(key::VANTAGE_ADDRESSES, &[("list", &list)]);
                title = format!("{title}{clause}{said}");
            }
            let day = match x.latency_24h_ms {
                Some(l) => format!("{} · {}", percent(x.uptime_24h), ms(Some(l))),
                None => percent(x.uptime_24h),
            };
            VantageCell {
                name: x.vantage.clone(),
                text,
                class,
                title,
                day,
            }
        })
        .collect()
}

struct Choice {
    label: String,
    href: String,
    current: bool,
}

/// The search form: a plain GET form that keeps the language, order and filter.
struct Search {
    q: String,
    lang: String,
    sort: String,
    filter: String,
    /// "3 servers match “x”", when searching.
    found: Option<String>,
}

/// Links between pages (plain links; no script needed).
struct Pager {
    text: String,
    first: Option<String>,
    previous: Option<String>,
    next: Option<String>,
    last: Option<String>,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    t: &'static Locale,
    base: Base,
    green_below_ms: u64,
    summary: String,
    empty: String,
    /// What the chosen filter keeps, in words (empty when there is nothing to say).
    filter_note: &'static str,
    sorts: Vec<Choice>,
    filters: Vec<Choice>,
    search: Search,
    pager: Option<Pager>,
    rows: Vec<Row>,
    generated: String,
}

fn row(t: &'static Locale, v: &ServerView, threshold_ms: f64, now: i64) -> Row {
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
        None => ("unknown", t.t(key::CLIENT_NOT_CHECKED).to_owned()),
        Some(c) if c.ok => ("ok", t.f(key::CLIENT_OK, &[("latency", &ms(c.latency_ms))])),
        Some(_) => ("failing", t.t(key::CLIENT_FAILED).to_owned()),
    };
    let (signup_class, signup_symbol, signup_text, signup_title) = match &v.signup {
        None => (
            "unknown",
            "",
            t.t(key::SIGNUP_NOT_CHECKED).to_owned(),
            String::new(),
        ),
        Some(s) => {
            let way = s.way();
            let class = if s.status.can_join() { "ok" } else { "closed" };
            let title = match &s.error {
                // The detail page quotes the check's own words; a tooltip names the kind.
                Some(e) => crate::i18n::kind_text(t, Some(e.kind)).to_owned(),
                None => super::stage_words(t, &s.stages),
            };
            (class, way.symbol(), t.t(way.key()).to_owned(), title)
        }
    };
    let apps = v
        .clients
        .as_deref()
        .map(|c| app_cells(t, c))
        .unwrap_or_default();
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
        note: v
            .incident
            .as_ref()
            .filter(|i| i.is_open())
            .and_then(|i| i.latest())
            .map(|n| super::NoteView::new(t, n)),
        latency: ms(r.latency_ms),
        pings,
        browser_url: browser_url(v),
        uptime_24h: percent(v.uptime("24h")),
        uptime_30d: percent(v.uptime("30d")),
        bar: chart::uptime_bar(&days(t, v, now), t.t(key::BAR_LABEL)),
        spark: chart::sparkline(&v.chart(now), now, t.t(key::SPARKLINE_LABEL)),
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
        apps,
        vantages: vantage_cells(t, v, true),
    }
}

/// The apps' verdicts of a row, each said in the reader's words with what it misses; one
/// line when no app works for the same reason (a client API that does not answer).
fn app_cells(t: &'static Locale, c: &Clients) -> Vec<AppCell> {
    let first = c.apps.get(App::ALL[0]);
    if first.works == Works::No && App::ALL.iter().all(|a| c.apps.get(*a) == first) {
        let said = app_verdict_words(t, first);
        return vec![AppCell {
            name: t.t(key::APPS_NONE),
            symbol: first.works.symbol(),
            class: first.works.as_str(),
            why: said.clone(),
            said,
        }];
    }
    App::ALL
        .into_iter()
        .map(|app| {
            let v = c.apps.get(app);
            let said = app_verdict_words(t, v);
            AppCell {
                name: t.t(app.name_key()),
                symbol: v.works.symbol(),
                class: v.works.as_str(),
                why: if v.missing.is_empty() {
                    String::new()
                } else {
                    said.clone()
                },
                said,
            }
        })
        .collect()
}

/// "works", or "does not work: why; why".
fn app_verdict_words(t: &Locale, v: &Verdict) -> String {
    let word = t.t(v.works.key());
    if v.missing.is_empty() {
        return word.to_owned();
    }
    let why: Vec<&str> = v.missing.iter().map(|c| t.t(c.fails_key())).collect();
    format!(
        "{word}{}{}",
        t.t(key::LABEL_SEP),
        why.join(t.t(key::CLAUSE_SEP))
    )
}

fn status_rank(s: Status) -> u8 {
    match s {
        Status::Red => 0,
        Status::Yellow => 1,
        Status::Maintenance => 2,
        Status::Unknown => 3,
        Status::Green => 4,
    }
}

/// Rows per page: the page's size does not grow with the list, only its page count.
pub(in crate::web) const PAGE_ROWS: usize = 100;
/// Longest search kept (characters).
const MAX_SEARCH: usize = 100;

/// An order of the servers, chosen with `sort=` (none: the config's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::web) enum Sort {
    /// Red first, then yellow, maintenance, unknown, green.
    Status,
    /// Fastest first; servers without a latency last.
    Latency,
    /// By server name.
    Name,
}

impl Sort {
    /// The orders a visitor can choose, as the page lists them.
    const CHOSEN: [Sort; 3] = [Sort::Status, Sort::Latency, Sort::Name];

    /// The word in a `sort=` parameter.
    pub(in crate::web) fn as_str(self) -> &'static str {
        match self {
            Sort::Status => "status",
            Sort::Latency => "latency",
            Sort::Name => "name",
        }
    }

    /// The order a `sort=` word names, if any.
    pub(in crate::web) fn parse(word: &str) -> Option<Sort> {
        Sort::CHOSEN.into_iter().find(|s| s.as_str() == word)
    }

    fn label(self) -> Key {
        match self {
            Sort::Status => key::SORT_STATUS,
            Sort::Latency => key::SORT_LATENCY,
            Sort::Name => key::SORT_NAME,
        }
    }
}

/// The servers a view of the page keeps, chosen with `filter=`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Filter {
    /// Every server.
    #[default]
    All,
    /// The servers that are not green.
    Problems,
    /// The servers a newcomer can sign up on and use with at least one of the apps.
    Join,
    /// The servers Element X works on.
    ElementX,
}

impl Filter {
    const ALL: [Filter; 4] = [
        Filter::All,
        Filter::Problems,
        Filter::Join,
        Filter::ElementX,
    ];

    /// The word in a `filter=` parameter (empty for every server).
    fn as_str(self) -> &'static str {
        match self {
            Filter::All => "",
            Filter::Problems => "problems",
            Filter::Join => "join",
            Filter::ElementX => "element_x",
        }
    }

    fn label(self) -> Key {
        match self {
            Filter::All => key::FILTER_ALL,
            Filter::Problems => key::FILTER_PROBLEMS,
            Filter::Join => key::FILTER_JOIN,
            Filter::ElementX => key::FILTER_ELEMENT_X,
        }
    }

    /// What the filter keeps, said under the controls (none for every server or problems).
    fn note(self) -> Option<Key> {
        match self {
            Filter::All | Filter::Problems => None,
            Filter::Join => Some(key::FILTER_JOIN_NOTE),
            Filter::ElementX => Some(key::FILTER_ELEMENT_X_NOTE),
        }
    }

    fn keeps(self, v: &ServerView) -> bool {
        match self {
            Filter::All => true,
            Filter::Problems => v.status() != Status::Green,
            Filter::Join => v.joinable(),
            Filter::ElementX => v.works_with(App::ElementX),
        }
    }
}

/// What one view of the status page shows: order, filter, search and page.
#[derive(Clone)]
struct View {
    /// None: the config's order.
    sort: Option<Sort>,
    filter: Filter,
    q: String,
    page: usize,
}

impl View {
    /// The view a query asks for; what the page does not offer is ignored (a link is never
    /// an error page).
    fn from(query: &PageQuery) -> View {
        View {
            sort: query.sort.as_deref().and_then(Sort::parse),
            filter: Filter::ALL
                .into_iter()
                .find(|f| Some(f.as_str()) == query.filter.as_deref())
                .unwrap_or_default(),
            q: query
                .q
                .as_deref()
                .unwrap_or("")
                .trim()
                .chars()
                .take(MAX_SEARCH)
                .collect(),
            page: query
                .page
                .as_deref()
                .and_then(|p| p.parse().ok())
                .unwrap_or(1)
                .max(1),
        }
    }

    /// The page's own address in language `code`, at page `page`.
    fn link(&self, code: &str, sort: Option<Sort>, filter: Filter, page: usize) -> String {
        let mut parts = vec![format!("lang={code}")];
        if let Some(sort) = sort {
            parts.push(format!("sort={}", sort.as_str()));
        }
        if filter != Filter::All {
            parts.push(format!("filter={}", filter.as_str()));
        }
        if !self.q.is_empty() {
            parts.push(format!("q={}", super::encode(&self.q)));
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        format!("/?{}", parts.join("&"))
    }
}

/// The servers `view` selects, in its order (none: the config's): filtered, searched (name or
/// title, any case).
pub(in crate::web) fn select<'a>(
    servers: &'a [std::sync::Arc<ServerView>],
    sort: Option<Sort>,
    keep: impl Fn(&ServerView) -> bool,
    q: &str,
) -> Vec<&'a std::sync::Arc<ServerView>> {
    let q = q.to_lowercase();
    let mut chosen: Vec<_> = servers
        .iter()
        .filter(|v| keep(v) && matches(v, &q))
        .collect();
    match sort {
        Some(Sort::Status) => chosen.sort_by_key(|v| status_rank(v.status())),
        Some(Sort::Latency) => chosen.sort_by(|a, b| {
            let key = |v: &ServerView| v.report.latency_ms.unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        }),
        Some(Sort::Name) => chosen.sort_by(|a, b| a.report.name.cmp(&b.report.name)),
        None => {}
    }
    chosen
}

/// Whether `v`'s name or title contains `q` (already lower case); an empty search keeps all.
pub(in crate::web) fn matches(v: &ServerView, q: &str) -> bool {
    q.is_empty() || v.report.name.to_lowercase().contains(q) || v.title.to_lowercase().contains(q)
}

pub(in crate::web) async fn index(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&query, &headers);
    let view = View::from(&query);
    let locale = lang.locale;
    let key = format!(
        "{}|{}|{}|{}|{}",
        locale.code,
        view.sort.map_or("", Sort::as_str),
        view.filter.as_str(),
        view.page,
        view.q
    );
    let page = state
        .pages
        .get(&key, state.board.generation(), {
            let state = state.clone();
            move || index_page(&state, locale, &view)
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

/// Builds one view of the status page: the servers its filter and search select, in its
/// order, [`PAGE_ROWS`] at a time (a page past the last shows the last).
fn index_page(state: &AppState, t: &'static Locale, view: &View) -> Page {
    let board = &state.board;
    // Read before the snapshot: a change racing with this build makes the page look older
    // than it is, never newer.
    let generation = board.generation();
    let snap = board.snapshot();
    let config = &snap.config;
    let now = OffsetDateTime::now_utc();
    let threshold = config.monitor.green_below.as_secs_f64() * 1000.0;
    let (sort, filter) = (view.sort, view.filter);
    let base =
        Base::new(config, t, &|code| view.link(code, sort, filter, view.page)).with_health(state);
    let chosen = select(&snap.servers, sort, |v| filter.keeps(v), &view.q);
    let pages = chosen.len().div_ceil(PAGE_ROWS).max(1);
    let page = view.page.min(pages);
    let first = (page - 1) * PAGE_ROWS;
    let ok = snap
        .servers
        .iter()
        .filter(|v| v.status() == Status::Green)
        .count();
    let summary = t.f(
        key::SUMMARY,
        &[
            ("ok", &ok.to_string()),
            ("total", &snap.servers.len().to_string()),
        ],
    );
    let rows: Vec<Row> = chosen
        .iter()
        .skip(first)
        .take(PAGE_ROWS)
        .map(|v| row(t, v, threshold, now.unix_timestamp()))
        .collect();
    let origins: BTreeSet<String> = rows
        .iter()
        .filter_map(|r| r.browser_url.as_deref().and_then(origin))
        .collect();
    let sorts = Sort::CHOSEN
        .into_iter()
        .map(|choice| Choice {
            label: t.t(choice.label()).to_owned(),
            href: view.link(&t.code, Some(choice), filter, 1),
            current: sort == Some(choice),
        })
        .collect();
    let filters = Filter::ALL
        .into_iter()
        .map(|choice| Choice {
            label: t.t(choice.label()).to_owned(),
            href: view.link(&t.code, sort, choice, 1),
            current: filter == choice,
        })
        .collect();
    let empty = t
        .t(match filter {
            _ if !view.q.is_empty() => key::NO_MATCH,
            Filter::Join => key::NO_JOINABLE,
            Filter::ElementX => key::NO_ELEMENT_X,
            Filter::All | Filter::Problems => key::NO_PROBLEMS,
        })
        .to_owned();
    let pager = (pages > 1).then(|| Pager {
        text: t.f(
            key::PAGE_OF,
            &[
                ("first", &(first + 1).to_string()),
                ("last", &(first + rows.len()).to_string()),
                ("total", &chosen.len().to_string()),
                ("page", &page.to_string()),
                ("pages", &pages.to_string()),
            ],
        ),
        previous: (page > 1).then(|| view.link(&t.code, sort, filter, page - 1)),
        next: (page < pages).then(|| view.link(&t.code, sort, filter, page + 1)),
        first: (page > 2).then(|| view.link(&t.code, sort, filter, 1)),
        last: (page + 1 < pages).then(|| view.link(&t.code, sort, filter, pages)),
    });
    let found = (!view.q.is_empty()).then(|| {
        t.f(
            key::SEARCH_FOUND,
            &[("count", &chosen.len().to_string()), ("q", &view.q)],
        )
    });
    let page = IndexPage {
        t,
        empty,
        filter_note: filter.note().map(|k| t.t(k)).unwrap_or_default(),
        green_below_ms: config.monitor.green_below.as_millis() as u64,
        summary,
        sorts,
        filters,
        search: Search {
            q: view.q.clone(),
            lang: t.code.clone(),
            sort: sort.map_or("", Sort::as_str).to_owned(),
            filter: filter.as_str().to_owned(),
            found,
        },
        pager,
        // HTML: the sentence escaped, the time a <time> element.
        generated: t.fill(
            &crate::text::escape_html(t.t(key::GENERATED)),
            &[
                ("time", &super::time_html(t, now)),
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
