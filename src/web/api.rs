//! The JSON API: `/api/v1/servers` and `/api/v1/servers/{name}` (design.md "HTTP").

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::AppState;
use super::pages::Sort;
use crate::scheduler::ServerView;
use crate::status::Status;

#[derive(Serialize)]
struct Summary {
    total: usize,
    green: usize,
    yellow: usize,
    red: usize,
    unknown: usize,
}

#[derive(Serialize)]
struct ServerList {
    /// The monitoring location, so several instances can be told apart.
    vantage: String,
    #[serde(serialize_with = "crate::timestamp::serialize")]
    generated_at: OffsetDateTime,
    /// Counts over every server, whatever the filters.
    summary: Summary,
    servers: Vec<Arc<ServerView>>,
    /// Pass as `cursor` for the servers after these (absent when there are no more).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// The list's filters, as the status page has them, and paging.
#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    /// Only servers with this status (`green`, `yellow`, `red`, `unknown`).
    status: Option<String>,
    /// Only servers a newcomer can join now.
    join: Option<bool>,
    /// Only servers this app works on (`element_x`, …).
    app: Option<String>,
    /// Name or title contains this (any case).
    q: Option<String>,
    /// `status`, `latency` or `name`; config order otherwise.
    sort: Option<String>,
    /// At most this many servers (1–1000); all without it.
    limit: Option<usize>,
    /// The `next_cursor` of the previous response.
    cursor: Option<String>,
}

#[derive(Serialize)]
struct One {
    vantage: String,
    #[serde(flatten)]
    server: Arc<ServerView>,
}

pub(super) async fn servers(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Response {
    let snap = state.board.snapshot();
    let count = |s: Status| snap.servers.iter().filter(|v| v.status() == s).count();
    let status = match query.status.as_deref() {
        None => None,
        Some(word) => match Status::ALL.into_iter().find(|s| s.as_str() == word) {
            Some(s) => Some(s),
            None => {
                return bad_request(format!(
                    "status={word:?} is not a status; use green, yellow, red or unknown"
                ));
            }
        },
    };
    let limit = match query.limit {
        Some(n) if !(1..=1000).contains(&n) => {
            return bad_request(format!("limit={n} is out of range; use 1 to 1000"));
        }
        other => other,
    };
    let sort = match query.sort.as_deref() {
        None | Some("") => None,
        Some(word) => match Sort::parse(word) {
            Some(sort) => Some(sort),
            None => {
                return bad_request(format!(
                    "sort={word:?} is not an order; use status, latency or name"
                ));
            }
        },
    };
    let join = query.join.unwrap_or(false);
    let app = match query.app.as_deref() {
        None => None,
        Some(word) => match crate::probe::apps::App::parse(word) {
            Some(a) => Some(a),
            None => {
                let words: Vec<&str> = crate::probe::apps::App::ALL
                    .iter()
                    .map(|a| a.as_str())
                    .collect();
                return bad_request(format!(
                    "app={word:?} is not an app; use {}",
                    words.join(", ")
                ));
            }
        },
    };
    let q: String = query
        .q
        .as_deref()
        .unwrap_or("")
        .trim()
        .chars()
        .take(100)
        .collect();
    let chosen = super::pages::select(
        &snap.servers,
        sort,
        |v| {
            status.is_none_or(|s| v.status() == s)
                && (!join || v.joinable())
                && app.is_none_or(|a| v.works_with(a))
        },
        &q,
    );
    // The cursor is an offset into this selection: stable while the config and, for sorted
    // lists, the order do not change.
    let start = match query.cursor.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad_request("cursor is not one this API gave out".into()),
    };
    let end = limit.map_or(chosen.len(), |n| start.saturating_add(n).min(chosen.len()));
    let servers: Vec<Arc<ServerView>> = chosen
        .get(start.min(chosen.len())..end)
        .unwrap_or_default()
        .iter()
        .map(|v| Arc::clone(v))
        .collect();
    Json(ServerList {
        vantage: snap.config.web.vantage_name().to_owned(),
        generated_at: OffsetDateTime::now_utc(),
        summary: Summary {
            total: snap.servers.len(),
            green: count(Status::Green),
            yellow: count(Status::Yellow),
            red: count(Status::Red),
            unknown: count(Status::Unknown),
        },
        servers,
        next_cursor: (end < chosen.len()).then(|| end.to_string()),
    })
    .into_response()
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({"error": "bad_request", "message": message})),
    )
        .into_response()
}

pub(super) async fn server(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match state.board.server(&name) {
        Some((config, view)) => Json(One {
            vantage: config.web.vantage_name().to_owned(),
            server: view,
        })
        .into_response(),
        None => not_monitored(&name),
    }
}

fn not_monitored(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "error": "not_found",
            "message": format!("{name:?} is not monitored here; GET /api/v1/servers lists the servers that are"),
        })),
    )
        .into_response()
}

/// `GET /api/v1/servers/{name}/history`: the server's stored history per hour or day.
#[derive(Deserialize, Default)]
pub(super) struct HistoryQuery {
    /// Start: RFC 3339, a date (`2026-11-01`, midnight UTC) or Unix seconds.
    from: Option<String>,
    /// End (excluded), the same forms; now without it.
    to: Option<String>,
    /// `hour` or `day` (default).
    step: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// One step of the history export.
#[derive(Serialize)]
struct Step {
    #[serde(serialize_with = "crate::timestamp::serialize")]
    start: OffsetDateTime,
    /// Rounds recorded (rounds this monitor could not make are not counted).
    rounds: u32,
    /// Rounds in which an address answered.
    up: u32,
    /// `up / rounds`; `null` without rounds.
    uptime: Option<f64>,
    latency_mean_ms: Option<f64>,
    /// While the store keeps the step's sketch (hours: 24 h, days: 7 days).
    latency_p50_ms: Option<f64>,
    latency_p95_ms: Option<f64>,
    /// Confirmed outages that began in the step.
    incidents: usize,
    /// Seconds of the step in a maintenance window (its rounds are not counted above).
    maintenance_s: i64,
}

#[derive(Serialize)]
struct Totals {
    rounds: u64,
    up: u64,
    uptime: Option<f64>,
    incidents: usize,
    maintenance_s: i64,
}

#[derive(Serialize)]
struct HistoryExport {
    server: String,
    step: &'static str,
    #[serde(serialize_with = "crate::timestamp::serialize")]
    from: OffsetDateTime,
    #[serde(serialize_with = "crate::timestamp::serialize")]
    to: OffsetDateTime,
    total: Totals,
    steps: Vec<Step>,
}

/// A time as the export takes it: RFC 3339, a date (midnight UTC) or Unix seconds.
fn parse_time(what: &str, text: &str) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(text, &date) {
        return Ok(d.midnight().assume_utc().unix_timestamp());
    }
    Err(format!(
        "{what}={text:?} is not a time; use RFC 3339 (2026-11-01T00:00:00Z), a date (2026-11-01) \
         or Unix seconds"
    ))
}

fn utc(t: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn ratio(up: u64, rounds: u64) -> Option<f64> {
    (rounds > 0).then(|| up as f64 / rounds as f64)
}

pub(super) async fn history(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let Some((config, _)) = state.board.server(&name) else {
        return not_monitored(&name);
    };
    let Some(reader) = state.store.clone() else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": "no_history",
                "message": "this monitor keeps its history in memory only ([storage] data_dir is empty), so there is no stored history to export",
            })),
        )
            .into_response();
    };
    let (step, width, kept) = match query.step.as_deref().unwrap_or("day") {
        "hour" => ("hour", 3600, 7 * 86_400),
        "day" => (
            "day",
            86_400,
            i64::try_from(config.storage.rollup_retention.as_secs()).unwrap_or(i64::MAX / 2),
        ),
        other => return bad_request(format!("step={other:?} is not a step; use hour or day")),
    };
    let csv = match query.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => return bad_request(format!("format={other:?}: use json or csv")),
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let to = match query.to.as_deref().map(|t| parse_time("to", t)).transpose() {
        Ok(t) => t.unwrap_or(now),
        Err(e) => return bad_request(e),
    };
    let from = match query
        .from
        .as_deref()
        .map(|t| parse_time("from", t))
        .transpose()
    {
        Ok(f) => f.unwrap_or(to - if width == 3600 { 86_400 } else { 30 * 86_400 }),
        Err(e) => return bad_request(e),
    };
    if from >= to {
        return bad_request(format!(
            "from ({}) must be before to ({})",
            crate::timestamp::format(utc(from)),
            crate::timestamp::format(utc(to))
        ));
    }
    if from < now - kept - width {
        return bad_request(format!(
            "{step} steps are kept for {} days (from={} is older); {}",
            kept / 86_400,
            crate::timestamp::format(utc(from)),
            if width == 3600 {
                "use step=day for older history"
            } else {
                "[storage] rollup_retention sets how long"
            }
        ));
    }
    let first = from.div_euclid(width) * width;
    let who = name.clone();
    let read = tokio::task::spawn_blocking(move || {
        let reader = reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok::<_, crate::history::store::StoreError>((
            reader.periods(&who, width, from, to)?,
            reader.outages(&who, first, to)?,
        ))
    })
    .await;
    let (periods, outages) = match read {
        Ok(Ok((periods, outages))) => (periods.unwrap_or_default(), outages),
        Ok(Err(e)) => {
            tracing::error!("history export of {name}: {e}");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({"error": "store", "message": "the history store could not be read; the log says why"})),
            )
                .into_response();
        }
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let spans: Vec<(i64, i64)> = (0..)
        .map(|i| first + i * width)
        .take_while(|s| *s < to)
        .map(|s| (s, s + width))
        .collect();
    let maintenance = state
        .maintenance
        .as_ref()
        .map(|m| m.seconds(&name, &spans))
        .unwrap_or_else(|| vec![0; spans.len()]);
    let mut steps = Vec::new();
    let mut periods = periods.into_iter().peekable();
    let mut start = first;
    while start < to {
        let period = periods.next_if(|p| p.bucket.start == start);
        let b = period.as_ref().map(|p| &p.bucket);
        let sketch = period.as_ref().and_then(|p| p.sketch.as_ref());
        let quantile = |q| sketch.and_then(|s| crate::history::sketch::Sketch::quantile([s], q));
        let (rounds, up) = b.map_or((0, 0), |b| (b.rounds, b.up));
        steps.push(Step {
            start: utc(start),
            rounds,
            up,
            uptime: ratio(u64::from(up), u64::from(rounds)),
            latency_mean_ms: b
                .filter(|b| b.latency_n > 0)
                .map(|b| (b.latency_sum / f64::from(b.latency_n) * 1000.0).round() / 1000.0),
            latency_p50_ms: quantile(0.5),
            latency_p95_ms: quantile(0.95),
            incidents: outages
                .iter()
                .filter(|at| (start..start + width).contains(*at))
                .count(),
            maintenance_s: maintenance.get(steps.len()).copied().unwrap_or(0),
        });
        start += width;
    }
    let rounds: u64 = steps.iter().map(|s| u64::from(s.rounds)).sum();
    let up: u64 = steps.iter().map(|s| u64::from(s.up)).sum();
    let export = HistoryExport {
        total: Totals {
            rounds,
            up,
            uptime: ratio(up, rounds),
            incidents: steps.iter().map(|s| s.incidents).sum(),
            maintenance_s: steps.iter().map(|s| s.maintenance_s).sum(),
        },
        server: name,
        step,
        from: utc(from),
        to: utc(to),
        steps,
    };
    if csv {
        return (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8; header=present",
            )],
            history_csv(&export),
        )
            .into_response();
    }
    Json(export).into_response()
}

/// The export as CSV: one line per step, empty fields for `null`.
fn history_csv(export: &HistoryExport) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "start,rounds,up,uptime,latency_mean_ms,latency_p50_ms,latency_p95_ms,incidents,maintenance_s\n",
    );
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for s in &export.steps {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            crate::timestamp::format(s.start),
            s.rounds,
            s.up,
            opt(s.uptime),
            opt(s.latency_mean_ms),
            opt(s.latency_p50_ms),
            opt(s.latency_p95_ms),
            s.incidents,
            s.maintenance_s
        );
    }
    out
}
