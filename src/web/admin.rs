//! The admin API (design.md "Maintenance and incidents"): `POST /api/v1/admin/…` with the
//! bearer token of `[web] admin_token_file`, on the same listener as the page. Without the
//! file there is no admin API (404). The token is compared in constant time, and every call
//! is logged with its peer and what it did, whether it was allowed or not.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::AppState;
use crate::maintenance::incidents::{Incidents, Said};
use crate::maintenance::{Plan, Refusal, Schedule, Source};

/// The admin API's token.
#[derive(Clone)]
pub struct Admin {
    token: Arc<[u8]>,
}

/// What the admin API acts on.
struct Desk<'a> {
    maintenance: &'a Schedule,
    incidents: &'a Incidents,
}

/// Shortest token accepted: guessing one must be out of the question.
pub(crate) const MIN_TOKEN: usize = 16;

impl Admin {
    /// The admin API with the token read from `file` (trimmed; at least [`MIN_TOKEN`]
    /// characters).
    pub fn from_file(file: &std::path::Path) -> Result<Admin, String> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "[web] admin_token_file: cannot read {}: {e}; create it with a long random token (e.g. `openssl rand -hex 32 > {}`), or remove the key",
                file.display(),
                file.display()
            )
        })?;
        let token = text.trim();
        if token.chars().count() < MIN_TOKEN {
            return Err(format!(
                "[web] admin_token_file: the token in {} is shorter than {MIN_TOKEN} characters; write a long random one (e.g. `openssl rand -hex 32`)",
                file.display()
            ));
        }
        Ok(Admin {
            token: token.as_bytes().into(),
        })
    }

    fn allows(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        // Equal lengths are compared byte for byte in constant time; a length differs in
        // constant time too (`ct_eq` on slices checks it first without branching on data).
        bool::from(given.as_bytes().ct_eq(&self.token))
    }
}

fn problem(status: StatusCode, error: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": error, "message": message.into()})),
    )
        .into_response()
}

/// What the admin API of `state` acts on, or the response that refuses the call (logged).
fn admit<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    peer: &str,
    what: &str,
) -> Result<Desk<'a>, Box<Response>> {
    let (Some(admin), Some(maintenance), Some(incidents)) =
        (&state.admin, &state.maintenance, &state.incidents)
    else {
        tracing::warn!("admin: {what} from {peer} refused: there is no admin API");
        return Err(Box::new(problem(
            StatusCode::NOT_FOUND,
            "no_admin_api",
            "this monitor has no admin API: set [web] admin_token_file to turn it on",
        )));
    };
    if !admin.allows(headers) {
        tracing::warn!("admin: {what} from {peer} refused: missing or wrong token");
        let mut r = problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the token of [web] admin_token_file as Authorization: Bearer TOKEN",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return Err(Box::new(r));
    }
    Ok(Desk {
        maintenance,
        incidents,
    })
}

/// Runs `write` (a synchronous SQLite commit) where the runtime moves its other tasks to
/// another worker meanwhile: `serve` runs the admin API on the multi-threaded runtime.
fn written<T>(write: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(write)
}

/// The peer as logged (a router used without the listener has none).
fn who(peer: Option<Extension<ConnectInfo<SocketAddr>>>) -> String {
    peer.map_or_else(
        || "an unknown peer".to_owned(),
        |Extension(ConnectInfo(p))| p.to_string(),
    )
}

fn refused(r: &Refusal) -> Response {
    let (status, code) = match r {
        Refusal::NoServer(_) => (StatusCode::NOT_FOUND, "no_server"),
        Refusal::NoteTooLong(_) => (StatusCode::PAYLOAD_TOO_LARGE, "note_too_long"),
        Refusal::EmptyNote => (StatusCode::BAD_REQUEST, "empty_note"),
        Refusal::NoIncident(_) => (StatusCode::CONFLICT, "no_incident"),
        Refusal::Duration => (StatusCode::BAD_REQUEST, "bad_duration"),
        Refusal::NotInWindow(_) | Refusal::Planned(_) => (StatusCode::CONFLICT, "not_in_window"),
        Refusal::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store"),
    };
    problem(status, code, r.to_string())
}

/// `POST /api/v1/admin/maintenance`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartWindow {
    /// A server name or glob.
    servers: String,
    /// How long, as a duration (`2h`, `90m`).
    duration: String,
    #[serde(default)]
    note: String,
    /// Who starts it (shown with the note).
    #[serde(default)]
    by: Option<String>,
}

/// `POST /api/v1/admin/note`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddNote {
    server: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    by: Option<String>,
    /// The note resolves the incident.
    #[serde(default)]
    resolve: bool,
    /// Opening an incident: resolve it by itself once the server is green again.
    #[serde(default)]
    until_recovered: bool,
}

/// `POST /api/v1/admin/maintenance/end`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EndWindow {
    server: String,
}

fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t).map_or_else(|_| t.to_string(), crate::timestamp::format)
}

/// The body as `T`, or a 400 that says what is wrong with it.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(bytes).map_err(|e| {
        Box::new(problem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body is not the JSON this call takes: {e}"),
        ))
    })
}

pub(super) async fn start_maintenance(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Response {
    let peer = who(peer);
    let (admin, call): (_, StartWindow) = match admit(&state, &headers, &peer, "start maintenance")
        .and_then(|a| Ok((a, body(&bytes)?)))
    {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Ok(duration) = humantime::parse_duration(call.duration.trim()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_duration",
            format!(
                "{:?} is not a duration; write one such as \"2h\" or \"90m\"",
                call.duration
            ),
        );
    };
    let by = call
        .by
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "admin".to_owned());
    let config = state.board.config();
    let known: Vec<String> = config.servers.iter().map(|s| s.name.to_string()).collect();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let seconds = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
    let plan = Plan {
        pattern: call.servers.trim(),
        duration: seconds,
        note: call.note.trim(),
        by: by.trim(),
        source: Source::Admin,
    };
    let result = written(|| admin.maintenance.start(&plan, &known, now));
    match result {
        Ok(servers) => {
            tracing::info!(
                "admin: {peer} started maintenance of {} ({} server(s)) for {}: {:?}",
                call.servers,
                servers.len(),
                humantime::format_duration(duration),
                call.note
            );
            Json(json!({
                "servers": servers,
                "start": rfc3339(now),
                "end": rfc3339(now + seconds),
                "note": call.note.trim(),
                "by": by.trim(),
            }))
            .into_response()
        }
        Err(r) => {
            tracing::warn!("admin: {peer} could not start maintenance: {r}");
            refused(&r)
        }
    }
}

pub(super) async fn end_maintenance(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Response {
    let peer = who(peer);
    let (admin, call): (_, EndWindow) = match admit(&state, &headers, &peer, "end maintenance")
        .and_then(|a| Ok((a, body(&bytes)?)))
    {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    match written(|| admin.maintenance.end(call.server.trim(), now)) {
        Ok(()) => {
            tracing::info!("admin: {peer} ended the maintenance of {}", call.server);
            Json(json!({"server": call.server.trim(), "ended": rfc3339(now)})).into_response()
        }
        Err(r) => {
            tracing::warn!("admin: {peer} could not end maintenance: {r}");
            refused(&r)
        }
    }
}

pub(super) async fn add_note(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Response {
    let peer = who(peer);
    let (desk, call): (_, AddNote) =
        match admit(&state, &headers, &peer, "note").and_then(|a| Ok((a, body(&bytes)?))) {
            Ok(x) => x,
            Err(r) => return *r,
        };
    let by = call
        .by
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "admin".to_owned());
    let config = state.board.config();
    let known: Vec<String> = config.servers.iter().map(|s| s.name.to_string()).collect();
    let said = Said {
        server: call.server.trim(),
        text: &call.text,
        by: by.trim(),
        resolves: call.resolve,
        until_recovered: call.until_recovered,
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    match written(|| desk.incidents.add(&said, &known, now)) {
        Ok(incident) => {
            tracing::info!(
                "admin: {peer} wrote a note on {}{}: {:?}",
                said.server,
                if said.resolves { " (resolved)" } else { "" },
                said.text
            );
            Json(json!({"server": said.server, "incident": incident})).into_response()
        }
        Err(r) => {
            tracing::warn!("admin: {peer} could not write a note: {r}");
            refused(&r)
        }
    }
}
