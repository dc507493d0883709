//! The web app: the status page, the detail pages, the JSON API, `/metrics` and `/healthz`.
//! Every handler reads the monitor's published snapshots; nothing a visitor sends makes the
//! monitor contact a host. The router is built in a plain function, apart from binding.

mod admin;
mod api;
mod badges;
mod cache;
mod chart;
mod federation;
mod feed;
pub mod listener;
mod pages;
mod public_list;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::alert::{AlertHealth, ChannelState};
use crate::metrics::Metrics;
use crate::scheduler::Board;
use crate::vantage::hub::{Hub, RejectReason};
pub use admin::Admin;

/// The stylesheet, served from the binary.
const STYLE: &str = include_str!("../../static/style.css");
/// The only script: latency measured from the visitor's browser.
const PING_JS: &str = include_str!("../../static/ping.js");
/// Times in the reader's time zone, on every page.
const TIME_JS: &str = include_str!("../../static/time.js");

/// The policy every response gets: no inline script, nothing from elsewhere.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Longest list of origins written into the status page's policy. Beyond it (a monitor of
/// hundreds of servers) the header would outgrow what reverse proxies accept (nginx: 4 or
/// 8 KiB of headers by default), so the policy allows any `https:` origin instead; scripts
/// stay limited to our own, which is what keeps injected code out.
const MAX_CONNECT_SOURCES: usize = 2048;

/// The policy of the status page, whose script may also reach the monitored servers'
/// federation addresses (and nothing else).
pub(crate) fn csp_with_connect(origins: &std::collections::BTreeSet<String>) -> String {
    let extra: Vec<&str> = origins.iter().map(String::as_str).collect();
    let mut sources = extra.join(" ");
    if sources.len() > MAX_CONNECT_SOURCES {
        sources = "https:".to_owned();
    }
    CSP.replace(
        "connect-src 'self'",
        format!("connect-src 'self' {sources}").trim_end(),
    )
}

/// What the web app reads and where it sends: one narrow handle for each.
#[derive(Clone)]
pub struct Handles {
    /// What the scheduler publishes: every server's view, the config, the feed.
    pub board: Arc<Board>,
    /// The counters `/metrics` renders, and what the monitor is short of (the footer,
    /// `/healthz`).
    pub metrics: Arc<Metrics>,
    /// How alert delivery is doing, when alerts are on.
    pub alerts: Option<Arc<AlertHealth>>,
    /// On a hub, where agents' reports go.
    pub hub: Option<Arc<Hub>>,
    /// A read connection to the history store, for the history export (none without
    /// `[storage] data_dir`).
    pub store: Option<Arc<std::sync::Mutex<crate::history::store::StoreReader>>>,
    /// The admin API (none without `[web] admin_token_file`).
    pub admin: Option<Admin>,
    /// The maintenance windows: what the admin API starts and ends, and what the history
    /// export counts (none in a board filled by hand).
    pub maintenance: Option<Arc<crate::maintenance::Schedule>>,
    /// The incidents the admin API adds notes to (none in a board filled by hand).
    pub incidents: Option<Arc<crate::maintenance::incidents::Incidents>>,
}

/// Shared state of the handlers: the handles (read through it), and the built status pages.
#[derive(Clone)]
pub(crate) struct AppState {
    handles: Handles,
    pages: Arc<cache::PageCache>,
}

impl std::ops::Deref for AppState {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.handles
    }
}

impl Handles {
    /// Every alert channel and its state, by label (empty without alerts).
    fn alert_channels(&self) -> Vec<(String, ChannelState)> {
        self.alerts
            .as_ref()
            .map(|h| h.channels())
            .unwrap_or_default()
    }
}

/// The router over `handles` (the monitor's, or a board a test fills by hand).
pub fn app(handles: Handles) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/server/{name}", get(pages::server))
        .route("/api/v1/servers", get(api::servers))
        .route("/api/v1/servers/{name}", get(api::server))
        .route("/api/v1/servers/{name}/history", get(api::history))
        .route(
            "/api/v1/public_servers.json",
            get(public_list::public_servers),
        )
        .route(
            "/api/v1/admin/maintenance",
            axum::routing::post(admin::start_maintenance),
        )
        .route(
            "/api/v1/admin/maintenance/end",
            axum::routing::post(admin::end_maintenance),
        )
        .route("/api/v1/admin/note", axum::routing::post(admin::add_note))
        .route("/badge/{server}/{kind}", get(badges::badge_handler))
        .route("/feed.atom", get(feed::atom))
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/_matrix/key/v2/server", get(federation::server_keys))
        .route("/_matrix/federation/v1/version", get(federation::version))
        .route("/.well-known/matrix/server", get(federation::well_known))
        .route(
            crate::vantage::REPORT_PATH,
            axum::routing::post(vantage_report),
        )
        .route("/static/style.css", get(style))
        .route("/static/ping.js", get(|| script(PING_JS)))
        .route("/static/time.js", get(|| script(TIME_JS)))
        .fallback(pages::not_found)
        .layer(axum::middleware::map_response(security_headers))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(AppState {
            handles,
            pages: Arc::default(),
        })
}

/// `/metrics`. With 10,000 servers the text is about 10 MB and takes tens of milliseconds to
/// write and compress, so both happen on a blocking thread: a scrape never holds up the
/// probes' timers on the async workers. Uncompressed, the parts are sent as written.
async fn render_metrics(State(state): State<AppState>, headers: header::HeaderMap) -> Response {
    let gzip = cache::accepts_gzip(&headers);
    let body = tokio::task::spawn_blocking(move || {
        let mut parts = state.metrics.render_parts();
        if let Some(hub) = &state.hub {
            parts.push(hub.render_metrics());
        }
        if gzip {
            axum::body::Body::from(cache::gzip_parts(&parts, flate2::Compression::fast()))
        } else {
            axum::body::Body::new(Parts::new(parts))
        }
    })
    .await
    .expect("rendering metrics does not panic");
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            ),
            (header::VARY, HeaderValue::from_static("Accept-Encoding")),
        ],
        body,
    )
        .into_response();
    if gzip {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// A response body of buffers sent one after another, its length known up front so the
/// response carries a Content-Length as one buffer's would.
struct Parts {
    parts: std::vec::IntoIter<String>,
    remaining: u64,
}

impl Parts {
    fn new(parts: Vec<String>) -> Parts {
        let remaining = parts.iter().map(|p| p.len() as u64).sum();
        Parts {
            parts: parts.into_iter(),
            remaining,
        }
    }
}

impl http_body::Body for Parts {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let part = self.parts.find(|p| !p.is_empty());
        if let Some(p) = &part {
            self.remaining -= p.len() as u64;
        }
        std::task::Poll::Ready(part.map(|p| Ok(http_body::Frame::data(p.into()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// How long an agent's report body may take to arrive: a report holds one of the hub's few
/// report slots ([`listener::REPORTS_IN_FLIGHT`]) while it does.
const REPORT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `POST /api/v1/vantage/report`: an agent's signed report (404 unless this is a hub).
/// Every refusal is logged with its reason, counted, and answered with it, so the agent's
/// operator sees it too.
async fn vantage_report(
    State(state): State<AppState>,
    headers: header::HeaderMap,
    body: axum::body::Body,
) -> Response {
    use axum::http::StatusCode;
    let Some(hub) = state.hub.clone() else {
        return (
            StatusCode::NOT_FOUND,
            "this instance is not a hub: it has no [[vantage]]\n",
        )
            .into_response();
    };
    let refuse = |reason: RejectReason, detail: String| {
        hub.count_rejected(reason);
        tracing::warn!("vantage report refused ({}): {detail}", reason.as_str());
        let status = StatusCode::from_u16(reason.http_status()).expect("a valid status");
        (
            status,
            axum::Json(serde_json::json!({"error": reason.as_str(), "message": detail})),
        )
            .into_response()
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = hub.check_sender(auth) {
        return refuse(e.reason, e.detail);
    }
    let read = axum::body::to_bytes(body, crate::vantage::MAX_REPORT_BYTES);
    let bytes = match tokio::time::timeout(REPORT_BODY_TIMEOUT, read).await {
        Ok(Ok(b)) => b,
        Err(_) => {
            return refuse(
                RejectReason::TooSlow,
                format!(
                    "the report's body did not arrive within {}s",
                    REPORT_BODY_TIMEOUT.as_secs()
                ),
            );
        }
        Ok(Err(_)) => {
            return refuse(
                RejectReason::TooLarge,
                format!(
                    "the report is larger than {} MiB",
                    crate::vantage::MAX_REPORT_BYTES >> 20
                ),
            );
        }
    };
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    // Verifying megabytes of signed JSON and storing the report are blocking work: off the
    // runtime's threads, so the page and the probes' timers do not wait for them.
    let auth = auth.map(str::to_owned);
    // The verdicts are combined before the answer, so an agent (or anyone) reading the page
    // after its report sees it counted.
    let accepting = hub.clone();
    let board = state.board.clone();
    let accepted = tokio::task::spawn_blocking(move || {
        let accepted = accepting.accept(auth.as_deref(), &bytes, now_ms);
        if accepted.is_ok() {
            board.apply_verdicts(&accepting, now_ms.div_euclid(1000), true);
        }
        accepted
    })
    .await
    .expect("accepting a report does not panic");
    match accepted {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refuse(e.reason, e.detail),
    }
}

/// `/healthz`: `ok` while the process serves (always 200, so a container is not restarted
/// for a homeserver's outage), then what the monitor is short of (file descriptors, buffers,
/// memory) while it is, then one line per alert channel: `ok`, or why its alerts are not
/// getting through and how many wait.
async fn healthz(State(state): State<AppState>) -> String {
    let mut out = "ok\n".to_owned();
    if let Some(hub) = &state.hub {
        for line in hub.health(time::OffsetDateTime::now_utc().unix_timestamp()) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    for c in state.metrics.troubles().current() {
        out.push_str(&format!(
            "monitor: short of {} for {}s (last {}s ago, while {}): {}\n",
            c.trouble.as_str(),
            c.since.as_secs(),
            c.last.as_secs(),
            c.what,
            c.trouble.explain()
        ));
    }
    for (label, s) in state.alert_channels() {
        match s.problem {
            None if s.checking => out.push_str(&format!(
                "alerts {label}: checking the room ({} queued)\n",
                s.queued
            )),
            None => out.push_str(&format!("alerts {label}: ok ({} queued)\n", s.queued)),
            Some(p) => out.push_str(&format!(
                "alerts {label}: failing ({} queued): {p}\n",
                s.queued
            )),
        }
    }
    out
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

async fn script(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_policy_names_origins_until_the_header_would_be_too_long() {
        let few: std::collections::BTreeSet<String> = [
            "https://a.test:8448".to_owned(),
            "https://b.test".to_owned(),
        ]
        .into();
        let csp = csp_with_connect(&few);
        assert!(csp.contains("connect-src 'self' https://a.test:8448 https://b.test;"));
        assert!(csp.contains("script-src 'self';"));
        assert!(csp_with_connect(&Default::default()).contains("connect-src 'self';"));
        let many: std::collections::BTreeSet<String> = (0..10_000)
            .map(|i| format!("https://s{i:05}.example.test:8448"))
            .collect();
        let csp = csp_with_connect(&many);
        assert!(csp.contains("connect-src 'self' https:;"), "{csp}");
        assert!(csp.len() < 1024, "{} bytes", csp.len());
        assert!(csp.contains("script-src 'self';"));
    }

    /// The `--name: #rrggbb` variables of the light (first) or dark (second) `:root` block.
    fn palette(dark: bool) -> std::collections::HashMap<String, (f64, f64, f64)> {
        let block = STYLE
            .split(":root {")
            .nth(if dark { 2 } else { 1 })
            .unwrap();
        let block = &block[..block.find('}').unwrap()];
        block
            .split(';')
            .filter_map(|decl| {
                let (name, value) = decl.split_once(':')?;
                let hex = value.trim().strip_prefix('#')?;
                let c =
                    |i: usize| f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
                Some((
                    name.trim().trim_start_matches("--").to_owned(),
                    (c(0), c(2), c(4)),
                ))
            })
            .collect()
    }

    fn luminance((r, g, b): (f64, f64, f64)) -> f64 {
        let lin = |c: f64| {
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    }

    fn contrast(a: (f64, f64, f64), b: (f64, f64, f64)) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    /// WCAG 2 AA: text needs a contrast of at least 4.5:1, in both themes.
    #[test]
    fn text_colours_meet_wcag_aa_in_light_and_dark_themes() {
        for dark in [false, true] {
            let p = palette(dark);
            for (fg, bg) in [
                ("fg", "bg"),
                ("muted", "bg"),
                ("link", "bg"),
                ("green", "bg"),
                ("yellow", "bg"),
                ("red", "bg"),
                ("green", "green-bg"),
                ("yellow", "yellow-bg"),
                ("red", "red-bg"),
                ("grey", "grey-bg"),
                ("fg", "head"),
            ] {
                let ratio = contrast(p[fg], p[bg]);
                assert!(
                    ratio >= 4.5,
                    "{fg} on {bg} ({}): {ratio:.2}:1",
                    if dark { "dark" } else { "light" }
                );
            }
        }
    }
}
