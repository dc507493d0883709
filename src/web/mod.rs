//! The web app: the status page, the detail pages, the JSON API, `/metrics` and `/healthz`.
//! Every handler reads the monitor's published snapshots; nothing a visitor sends makes the
//! monitor contact a host. The router is built in a plain function, apart from binding.

mod api;
mod badges;
mod chart;
mod feed;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::monitor::Monitor;

/// The stylesheet, served from the binary.
const STYLE: &str = include_str!("../../static/style.css");
/// The only script: latency measured from the visitor's browser.
const PING_JS: &str = include_str!("../../static/ping.js");

/// The policy every response gets: no inline script, nothing from elsewhere.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The policy of the status page, whose script may also reach the monitored servers'
/// federation addresses (and nothing else).
pub(crate) fn csp_with_connect(origins: &std::collections::BTreeSet<String>) -> String {
    let extra: Vec<&str> = origins.iter().map(String::as_str).collect();
    CSP.replace(
        "connect-src 'self'",
        format!("connect-src 'self' {}", extra.join(" ")).trim_end(),
    )
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The monitor whose snapshots are shown.
    pub monitor: Arc<Monitor>,
}

/// The router.
pub fn app(monitor: Arc<Monitor>) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/server/{name}", get(pages::server))
        .route("/api/v1/servers", get(api::servers))
        .route("/api/v1/servers/{name}", get(api::server))
        .route("/badge/{server}/{kind}", get(badges::badge_handler))
        .route("/feed.atom", get(feed::atom))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/static/style.css", get(style))
        .route("/static/ping.js", get(ping_js))
        .fallback(pages::not_found)
        .layer(axum::middleware::map_response(security_headers))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(AppState { monitor })
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.monitor.metrics().render(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

async fn ping_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        PING_JS,
    )
        .into_response()
}

/// Headers every response carries: no inline script, no framing, no MIME sniffing. A page
/// may set a stricter or wider policy itself (the status page allows pinging servers).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
