//! mxping as a minimal federation server (`[federation]`, design.md "Federation both ways"):
//! its own signing key at `/_matrix/key/v2/server`, self-signed and valid for half a check
//! interval (so a server verifying mxping must fetch it again for each check rather than
//! answer from its cache; who fetched it is logged for the checks), `/_matrix/federation/v1/version`, and, when asked,
//! `/.well-known/matrix/server`. Nothing else federated is served; nothing is stored from other
//! servers. Without `[federation]` each answers 404 as any unknown path does.

use axum::{Extension, Json};
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;

/// The Matrix error a server sends for an endpoint it does not offer.
fn unrecognized() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})),
    )
        .into_response()
}

/// `GET /_matrix/key/v2/server`: the key, signed now, valid for one interval.
pub(super) async fn server_keys(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let config = state.board.config();
    let Some(f) = &config.federation else {
        return unrecognized();
    };
    // Read at each request (rare: one per check by each server), so a reload or a new key
    // file takes effect at once; through tokio, not a blocking read on a runtime thread.
    let key = match tokio::fs::read_to_string(&f.key_file)
        .await
        .map_err(|e| e.to_string())
        .and_then(|text| crate::signing::Key::parse(&text).map_err(|e| e.to_string()))
    {
        Ok(k) => k,
        Err(e) => {
            tracing::error!("[federation] key_file {}: {e}", f.key_file.display());
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"errcode": "M_UNKNOWN", "error": "the signing key cannot be read"})),
            )
                .into_response();
        }
    };
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    // Half an interval: checks come every 0.9 to 1.1 intervals, so the key a server fetched
    // for one check has always expired by the next.
    let valid_for = i64::try_from(f.interval.as_millis() / 2).unwrap_or(i64::MAX / 4);
    let valid_until_ts = now_ms + valid_for;
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let from = peer.map(|Extension(ConnectInfo(p))| requester(p.ip(), &headers));
    if let Some(from) = from {
        state.board.key_fetches().record(from, agent);
    }
    tracing::info!(
        from = %from.map_or("-".to_owned(), |a| a.to_string()),
        user_agent = %crate::text::cap_to(agent, 120),
        "served the federation key"
    );
    (
        // Fetched again for each check: a cache would answer for a server that cannot.
        [(header::CACHE_CONTROL, "no-store")],
        Json(key.server_keys(&f.server_name, valid_until_ts)),
    )
        .into_response()
}

/// Who asked: the peer, or, when the peer is a reverse proxy on this machine (loopback), the
/// last address of its `X-Forwarded-For` (nginx's `proxy_set_header X-Forwarded-For
/// $remote_addr`). Nobody else can make a request arrive from loopback, so the header is not
/// believed from anywhere else.
fn requester(peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if !peer.to_canonical().is_loopback() {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
        .unwrap_or(peer)
}

/// `GET /_matrix/federation/v1/version`.
pub(super) async fn version(State(state): State<AppState>) -> Response {
    if state.board.config().federation.is_none() {
        return unrecognized();
    }
    Json(json!({"server": {"name": "mxping", "version": env!("CARGO_PKG_VERSION")}}))
        .into_response()
}

/// `GET /.well-known/matrix/server`, when `[federation] well_known` is set.
pub(super) async fn well_known(State(state): State<AppState>) -> Response {
    let config = state.board.config();
    match config
        .federation
        .as_ref()
        .and_then(|f| f.well_known.as_ref())
    {
        Some(to) => Json(json!({"m.server": to})).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
