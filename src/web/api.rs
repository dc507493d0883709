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
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": "not_found",
                "message": format!("{name:?} is not monitored here; GET /api/v1/servers lists the servers that are"),
            })),
        )
            .into_response(),
    }
}
