//! The JSON API: `/api/v1/servers` and `/api/v1/servers/{name}` (design.md "HTTP").

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;

use super::AppState;
use crate::report::Status;
use crate::scheduler::ServerView;

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
    summary: Summary,
    servers: Vec<Arc<ServerView>>,
}

#[derive(Serialize)]
struct One {
    vantage: String,
    #[serde(flatten)]
    server: Arc<ServerView>,
}

pub(super) async fn servers(State(state): State<AppState>) -> Response {
    let snap = state.board.snapshot();
    let count = |s: Status| snap.servers.iter().filter(|v| v.status() == s).count();
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
        servers: snap.servers,
    })
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
