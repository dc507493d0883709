//! `/server/{name}`: one server in detail — the discovery chain, every address, the client API
//! and the recent rounds.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use time::OffsetDateTime;

use crate::discovery::explain;
use crate::discovery::well_known::WellKnownStatus;
use crate::discovery::{Resolution, Severity};
use crate::i18n::Locale;
use crate::i18n::key;
use crate::net::tls::days_until;
use crate::numbers::{Places, ms_number};
use crate::probe::apps::{App, Check, Clients, LoginWay};
use crate::probe::client_api::Discovery as ClientDiscovery;
use crate::probe::federation::{Directory, FetchedBy, Outbound, Outcome};
use crate::probe::signup::Signup;
use crate::web::AppState;
use crate::web::chart::{self};

use super::lang::language;
use super::not_found::not_found_page;
use super::{Base, PageQuery, StatusView, days, encode, href, html, ms, percent};
use crate::i18n::{kind_text, status_word};
use crate::status::Status;

/// The sign-up section of the detail page: what the check found and what the config says.
struct SignupView {
    symbol: &'static str,
    word: String,
    meaning: String,
    stages: String,
    terms: Vec<(String, String)>,
    sso: String,
    issuer: Option<String>,
    contacts: Vec<String>,
    support_page: Option<String>,
    checked_at: String,
    error: String,
}

struct FactsView {
    jurisdiction: Option<String>,
    languages: String,
    rules_url: Option<String>,
    homepage: Option<String>,
    privacy_url: Option<String>,
    note: Option<String>,
}

impl FactsView {
    fn is_empty(&self) -> bool {
        self.jurisdiction.is_none()
            && self.languages.is_empty()
            && self.rules_url.is_none()
            && self.homepage.is_none()
            && self.privacy_url.is_none()
            && self.note.is_none()
    }
}

fn signup_view(t: &Locale, s: &Signup) -> SignupView {
    let way = s.way();
    SignupView {
        symbol: way.symbol(),
        word: t.t(way.key()).to_owned(),
        meaning: t
            // Composed at run time: `every_signup_status_has_a_meaning` (i18n) checks the names.
            .named(&format!("signup_means_{}", s.status.as_str()))
            .unwrap_or_default()
            .to_owned(),
        stages: super::stage_words(t, &s.stages),
        terms: s
            .terms
            .iter()
            .map(|x| {
                let name = if x.name.is_empty() {
                    x.url.clone()
                } else {
                    x.name.clone()
                };
                (name, x.url.clone())
            })
            .collect(),
        sso: s
            .sso
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(t.t(key::LIST_SEP)),
        issuer: s.issuer.clone(),
        contacts: s
            .support
            .iter()
            .flat_map(|x| &x.contacts)
            .map(|c| {
                let who: Vec<&str> = c
                    .matrix_id
                    .iter()
                    .chain(&c.email_address)
                    .map(String::as_str)
                    .collect();
                let who = who.join(t.t(key::LIST_SEP));
                let role = match c.role.as_str() {
                    "" => return who,
                    "m.role.admin" => t.t(key::ROLE_ADMIN),
                    "m.role.security" => t.t(key::ROLE_SECURITY),
                    // A role of the server's own naming, quoted as it wrote it.
                    other => other,
                };
                t.f(key::WITH_NOTE, &[("what", &who), ("note", role)])
            })
            .collect(),
        support_page: s.support.as_ref().and_then(|x| x.page.clone()),
        checked_at: super::time_html(t, s.checked_at),
        error: s
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default(),
    }
}

/// The detail page's "Apps": each app's verdict, each check and what it saw, and what the
/// operator should fix.
struct AppsView {
    apps: Vec<AppRow>,
    checks: Vec<CheckRow>,
    fixes: Vec<&'static str>,
    spec: String,
    login: String,
    checked_at: String,
}

struct AppRow {
    name: &'static str,
    symbol: &'static str,
    class: &'static str,
    word: &'static str,
    why: String,
}

struct CheckRow {
    name: &'static str,
    /// yes, no or not measured, in words.
    state: &'static str,
    class: &'static str,
    /// What the server answered, quoted.
    said: Vec<String>,
}

fn apps_view(t: &'static Locale, c: &Clients) -> AppsView {
    let apps = App::ALL
        .into_iter()
        .map(|app| {
            let v = c.apps.get(app);
            let why: Vec<&str> = v.missing.iter().map(|x| t.t(x.fails_key())).collect();
            AppRow {
                name: t.t(app.name_key()),
                symbol: v.works.symbol(),
                class: v.works.as_str(),
                word: t.t(v.works.key()),
                why: why.join(t.t(key::CLAUSE_SEP)),
            }
        })
        .collect();
    let checks = Check::ALL
        .into_iter()
        .map(|check| {
            let (state, class) = match c.passes(check) {
                Some(true) => (t.t(key::CHECK_YES), "yes"),
                Some(false) => (t.t(key::CHECK_NO), "no"),
                None => (t.t(key::CHECK_UNMEASURED), "unmeasured"),
            };
            CheckRow {
                name: t.t(check.name_key()),
                state,
                class,
                said: c
                    .notes
                    .iter()
                    .filter(|n| n.check == check)
                    .map(|n| n.said.clone())
                    .collect(),
            }
        })
        .collect();
    // A fix for each check some app misses, once, in the checks' order.
    let fixes = Check::ALL
        .into_iter()
        .filter(|check| {
            App::ALL
                .iter()
                .any(|a| c.apps.get(*a).missing.contains(check))
        })
        .map(|check| t.t(check.fix_key()))
        .collect();
    let login: Vec<&str> = c
        .login
        .iter()
        .map(|w| {
            t.t(match w {
                LoginWay::Password => key::LOGIN_PASSWORD,
                LoginWay::Sso => key::LOGIN_SSO,
                LoginWay::Oauth => key::LOGIN_OAUTH,
            })
        })
        .collect();
    AppsView {
        apps,
        checks,
        fixes,
        spec: c.spec_version.clone().unwrap_or_else(|| "–".into()),
        login: if login.is_empty() {
            "–".into()
        } else {
            login.join(t.t(key::LIST_SEP))
        },
        checked_at: super::time_html(t, c.checked_at),
    }
}

/// The detail page's "Federation both ways".
struct FederationView {
    intro: String,
    symbol: &'static str,
    class: &'static str,
    word: &'static str,
    said: String,
    elapsed: String,
    fetched_by: &'static str,
    directory: Option<DirectoryView>,
    checked_at: String,
}

enum DirectoryView {
    Shared { count: String, top: Vec<RoomRow> },
    NotShared,
}

struct RoomRow {
    label: String,
    href: String,
    name: String,
    members: String,
}

fn federation_view(t: &'static Locale, origin: &str, f: &Outbound) -> FederationView {
    let ok = f.outbound == Outcome::BothWays;
    FederationView {
        intro: t.f(key::FED_INTRO, &[("origin", origin)]),
        symbol: if ok { "✓" } else { "✗" },
        class: if ok { "yes" } else { "no" },
        word: t.t(match f.outbound {
            Outcome::BothWays => key::FED_BOTH_WAYS,
            Outcome::CannotReachUs => key::FED_CANNOT_REACH_US,
            Outcome::AllowList => key::FED_ALLOW_LIST,
            Outcome::SignatureRefused => key::FED_SIGNATURE_REFUSED,
            Outcome::Error => key::FED_ERROR,
        }),
        said: f
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default(),
        elapsed: f
            .elapsed_ms
            .map(|elapsed| ms(Some(elapsed)))
            .unwrap_or_default(),
        fetched_by: t.t(match f.key_fetched_by {
            Some(FetchedBy::Server) => key::FED_BY_SERVER,
            Some(FetchedBy::Notary) => key::FED_BY_NOTARY,
            None => key::FED_BY_NOBODY,
        }),
        directory: f.directory.as_ref().map(|d| match d {
            Directory::NotShared => DirectoryView::NotShared,
            Directory::Shared { rooms, top } => DirectoryView::Shared {
                count: t.f(key::FED_ROOMS, &[("n", &rooms.to_string())]),
                top: top
                    .iter()
                    .map(|r| {
                        let label = r.alias.clone().unwrap_or_else(|| r.room_id.clone());
                        RoomRow {
                            href: format!("https://matrix.to/#/{}", encode(&label)),
                            label,
                            name: r.name.clone().unwrap_or_default(),
                            members: t.f(key::FED_MEMBERS, &[("n", &r.members.to_string())]),
                        }
                    })
                    .collect(),
            },
        }),
        checked_at: super::time_html(t, f.checked_at),
    }
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
    state: StatusView,
    latency: String,
    /// Median and 95th percentile over 24 h and 7 days (empty before any latency).
    latency_percentiles: String,
    software: String,
    checked_at: String,
    client_url: Option<String>,
    error: Option<ErrorView>,
    uptime: Vec<UptimeCell>,
    bar: String,
    chart: String,
    chart_caption: String,
    explanation: String,
    well_known: String,
    discovery: Vec<explain::Step>,
    targets: Vec<TargetRow>,
    findings: Vec<FindingRow>,
    addresses: Vec<AddressRow>,
    client: Option<ClientView>,
    signup: Option<SignupView>,
    apps: Option<AppsView>,
    federation: Option<FederationView>,
    facts: FactsView,
    recent: Vec<RecentRow>,
    api_href: String,
    /// The history export per day as CSV, when the monitor keeps a store.
    history_href: Option<String>,
    /// On a hub: every vantage's view, this instance's first.
    vantages: Vec<super::index::VantageCell>,
    /// What the operator said, with the status changes around it.
    incident: Option<IncidentView>,
}

/// An incident as a timeline: its notes and the server's status changes, in order.
struct IncidentView {
    /// Open since, or resolved when (HTML).
    state: String,
    /// Oldest first.
    items: Vec<super::NoteView>,
}

/// The incident of `v` with the status changes of `events` since the outage it is about
/// began: from the last change away from green before its first note.
fn incident_view(
    t: &Locale,
    v: &crate::scheduler::ServerView,
    events: &[crate::history::events::Event],
) -> Option<IncidentView> {
    let i = v.incident.as_ref()?;
    let opened = i.opened_at.unix_timestamp();
    let end = i.resolved_at.map_or(i64::MAX, |r| r.unix_timestamp());
    let mine: Vec<_> = events
        .iter()
        .filter(|e| e.server == v.report.name && e.at <= end)
        .collect();
    // The outage began with the last change away from green before the first note.
    let since = mine
        .iter()
        .filter(|e| e.at <= opened && e.from == Status::Green)
        .map(|e| e.at)
        .max()
        .unwrap_or(opened);
    let mut items: Vec<(i64, super::NoteView)> = i
        .notes
        .iter()
        .map(|n| (n.at.unix_timestamp(), super::NoteView::new(t, n)))
        .collect();
    for e in mine.iter().filter(|e| e.at >= since) {
        let at = OffsetDateTime::from_unix_timestamp(e.at).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        items.push((
            e.at,
            super::NoteView {
                header: super::time_html(t, at),
                text: t.f(
                    key::INCIDENT_STATUS,
                    &[
                        ("from", status_word(t, e.from)),
                        ("to", status_word(t, e.to)),
                    ],
                ),
                said: false,
            },
        ));
    }
    items.sort_by_key(|(at, _)| *at);
    let (state_key, when) = match i.resolved_at {
        Some(r) => (key::INCIDENT_RESOLVED, r),
        None => (key::INCIDENT_OPEN, i.opened_at),
    };
    Some(IncidentView {
        state: t.fill(
            &crate::text::escape_html(t.t(state_key)),
            &[("time", &super::time_html(t, when))],
        ),
        items: items.into_iter().map(|(_, n)| n).collect(),
    })
}

/// Why the last round failed.
struct ErrorView {
    /// The kind in words.
    words: String,
    /// The kind's code.
    kind: &'static str,
    /// What the probe reported, quoted as it is.
    message: String,
}

/// An uptime window ("24h", "7d") in words: "24 h", "7 天".
fn window_words(t: &Locale, window: &str) -> String {
    let (n, unit) = window.split_at(window.len().saturating_sub(1));
    let key = match unit {
        "h" => key::UNIT_HOURS,
        "d" => key::UNIT_DAYS,
        _ => return window.to_owned(),
    };
    t.f(key, &[("n", n)])
}

/// Uptime over one window.
struct UptimeCell {
    window: String,
    value: String,
}

/// One address to probe and what to send it.
struct TargetRow {
    address: String,
    host_header: String,
    tls_name: String,
    via: String,
}

/// A finding in the reader's language.
struct FindingRow {
    severity: &'static str,
    /// The severity in words.
    word: String,
    text: String,
    /// What a lookup or the server said, quoted as it was.
    said: String,
}

struct AddressRow {
    address: String,
    family: &'static str,
    class: &'static str,
    result: String,
    /// What the probe reported, quoted as it is.
    said: String,
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

pub(in crate::web) async fn server(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&query, &headers);
    let t = lang.locale;
    let Some((config, v)) = state.board.server(&name) else {
        let message = t.f(key::NOT_FOUND_SERVER, &[("name", &name)]);
        return not_found_page(&state.board.config(), &lang, message);
    };
    let base =
        Base::new(&config, t, &|code| format!("{}?lang={code}", href(&name))).with_health(&state);
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
            // The body as served, or what the answer was in words (the steps quote the
            // problem as the fetch reported it).
            let answer = match &wk.body {
                Some(body) if wk.status == WellKnownStatus::Delegated => body.clone(),
                _ => t.t(explain::well_known_key(wk.status)).to_owned(),
            };
            well_known = t.f(
                key::EXPLAIN_WELL_KNOWN,
                &[("name", &d.server_name), ("answer", &answer)],
            );
        }
        discovery = explain::steps(d, t);
        if let Some(e) = &d.error {
            discovery.push(explain::Step {
                label: t.t(key::STEP_ERROR).to_owned(),
                summary: kind_text(t, Some(e.kind)).to_owned(),
                said: Some(e.message.clone()),
                details: Vec::new(),
            });
        }
        for tg in &d.targets {
            targets.push(TargetRow {
                address: tg.address.to_string(),
                host_header: tg.host_header.clone(),
                tls_name: tg
                    .tls_name
                    .clone()
                    .unwrap_or_else(|| t.t(key::TLS_NAME_NONE).to_owned()),
                via: tg.via.clone(),
            });
        }
        for f in d.findings.iter().chain(&r.findings) {
            let (severity, word) = match f.severity {
                Severity::Info => ("info", key::SEVERITY_INFO),
                Severity::Warning => ("warning", key::SEVERITY_WARNING),
                Severity::Error => ("error", key::SEVERITY_ERROR),
            };
            findings.push(FindingRow {
                severity,
                word: t.t(word).to_owned(),
                text: f.text(t),
                said: f.said.clone().unwrap_or_default(),
            });
        }
    }
    let hrr = format!(" · {}", t.t(key::HELLO_RETRY_REQUEST));
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
                said: a
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default(),
                result: match &a.error {
                    None => t.t(key::OK).to_owned(),
                    Some(e) => kind_text(t, Some(e.kind)).to_owned(),
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
                                hrr.as_str()
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
                        .map(|x| ms_number(*x, Places::Whole))
                        .collect::<Vec<_>>()
                        .join(" ")
                        + " ms"
                },
                cert: cert
                    .map(|c| {
                        let expires = t.f(
                            key::CERT_EXPIRES,
                            &[
                                ("date", &t.date(c.not_after)),
                                ("days", &days_until(c.not_after, now).to_string()),
                            ],
                        );
                        let valid = tls.is_some_and(|x| x.certificate_valid);
                        let clause = t.t(key::CLAUSE_SEP);
                        let mut said = format!("{}{clause}{expires}", c.names_for_display());
                        if !valid {
                            said = format!("{said}{clause}{}", t.t(key::CERT_INVALID));
                        }
                        said
                    })
                    .unwrap_or_else(|| "–".to_owned()),
                uptime: percent(
                    v.address_uptime_24h
                        .iter()
                        .find(|(at, _)| *at == a.address.to_string())
                        .and_then(|(_, u)| *u),
                ),
            }
        })
        .collect();
    let client = r.client.as_ref().map(|c| {
        let base = c.base_url.clone().unwrap_or_else(|| "–".to_owned());
        let base = match c.discovery {
            ClientDiscovery::Ignore => t.f(
                key::WITH_NOTE,
                &[("what", &base), ("note", t.t(key::CLIENT_NO_WELL_KNOWN))],
            ),
            _ => base,
        };
        ClientView {
            base_url: base,
            latency: ms(c.latency_ms),
            versions: c.versions.join(t.t(key::LIST_SEP)),
            error: c.error.clone().unwrap_or_default(),
            redirects: c.redirects.clone(),
            identity_server: c.identity_server.as_ref().map(|is| {
                let state = if is.ok {
                    t.t(key::CLIENT_IDENTITY_OK)
                } else {
                    t.t(key::CLIENT_IDENTITY_FAILING)
                };
                t.f(key::WITH_NOTE, &[("what", &is.base_url), ("note", state)])
            }),
        }
    });
    let recent = v
        .recent()
        .rev()
        .take(20)
        .map(|s| {
            let kind = s
                .error
                .map(|k| kind_text(t, Some(k)).to_owned())
                .unwrap_or_default();
            RecentRow {
                time: OffsetDateTime::from_unix_timestamp(s.at)
                    .map(|x| super::time_html(t, x))
                    .unwrap_or_default(),
                result: match (s.up, s.all_ok) {
                    (_, true) => t.t(key::OK).to_owned(),
                    (true, false) => t.f(key::PARTLY_FAILING, &[("kind", &kind)]),
                    (false, _) => t.f(key::FAILED, &[("kind", &kind)]),
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
        state: StatusView::new(t, r.status, r.reason.as_ref()),
        latency: ms(r.latency_ms),
        latency_percentiles: [
            (key::LATENCY_24H_SUMMARY, v.latency_p50_ms, v.latency_p95_ms),
            (
                key::LATENCY_7D_SUMMARY,
                v.latency_p50_7d_ms,
                v.latency_p95_7d_ms,
            ),
        ]
        .into_iter()
        .filter_map(|(key, p50, p95)| {
            Some(t.f(key, &[("p50", &ms(Some(p50?))), ("p95", &ms(Some(p95?)))]))
        })
        .collect::<Vec<_>>()
        .join(" "),
        software: r
            .software
            .as_ref()
            .map(|s| format!("{} {}", s.name, s.version))
            .unwrap_or_else(|| "–".to_owned()),
        checked_at: r.checked_at.map_or_else(
            || crate::text::escape_html(t.t(key::NEVER)),
            |x| super::time_html(t, x),
        ),
        client_url: v.client_url.clone(),
        error: r.error.as_ref().map(|e| ErrorView {
            words: kind_text(t, Some(e.kind)).to_owned(),
            kind: e.kind.as_str(),
            message: e.message.clone(),
        }),
        uptime: v
            .uptime
            .iter()
            .map(|(w, u)| UptimeCell {
                window: window_words(t, w),
                value: percent(*u),
            })
            .collect(),
        bar: chart::uptime_bar(&days(t, &v, now.unix_timestamp()), t.t(key::BAR_LABEL)),
        chart: chart::latency_svg(
            &v.chart(now.unix_timestamp()),
            now.unix_timestamp(),
            threshold,
            &chart::ChartWords {
                label: t.t(key::LATENCY_CHART),
                no_data: t.t(key::CHART_NO_DATA),
                hours_ago: &|h| match h {
                    0 => t.t(key::HOURS_NOW).to_owned(),
                    h => t.f(key::HOURS_AGO, &[("n", &h.to_string())]),
                },
            },
        ),
        chart_caption: t.f(
            key::CHART_CAPTION,
            &[("ms", &config.monitor.green_below.as_millis().to_string())],
        ),
        explanation,
        well_known,
        discovery,
        targets,
        findings,
        addresses,
        client,
        signup: v.signup.as_deref().map(|s| signup_view(t, s)),
        apps: v.clients.as_deref().map(|c| apps_view(t, c)),
        federation: config
            .federation
            .as_ref()
            .zip(v.federation.as_deref())
            .map(|(c, f)| federation_view(t, &c.server_name, f)),
        facts: FactsView {
            jurisdiction: v.facts.jurisdiction.clone(),
            languages: v.facts.languages.join(t.t(key::LIST_SEP)),
            rules_url: v.facts.rules_url.clone(),
            homepage: v.facts.homepage.clone(),
            privacy_url: v.facts.privacy_url.clone(),
            note: v.facts.note.clone(),
        },
        recent,
        api_href: format!("/api/v1/servers/{}", encode(&r.name)),
        incident: incident_view(t, &v, &state.board.events()),
        history_href: state.store.as_ref().map(|_| {
            format!(
                "/api/v1/servers/{}/history?step=day&format=csv",
                encode(&r.name)
            )
        }),
        vantages: super::index::vantage_cells(t, &v, false),
        base,
    };
    html(&page, &lang, None)
}
