//! SVG badges for READMEs and dashboards: `/badge/{server}/status.svg`, `uptime.svg` (30 days)
//! and `latency.svg`. Flat, self-contained, no external fonts.

use crate::text::escape_html as escape;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::numbers::{self, Places};
use crate::report::Status;

const GREY: &str = "#555";
const GREEN: &str = "#1a7f37";
const YELLOW: &str = "#9a6700";
const RED: &str = "#b3261e";
const UNKNOWN: &str = "#6e7781";

/// Width in pixels of `s` in 11 px Verdana-like text (an estimate good enough for badges).
fn text_width(s: &str) -> u32 {
    s.chars()
        .map(|c| if c.is_ascii() { 7 } else { 12 })
        .sum::<u32>()
        + 10
}

/// A two-part badge: `label` on grey, `value` on `colour`.
pub(super) fn badge(label: &str, value: &str, colour: &str) -> String {
    let (lw, vw) = (text_width(label), text_width(value));
    let w = lw + vw;
    let (label, value) = (escape(label), escape(value));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><rect width="{lw}" height="20" fill="{GREY}"/><rect x="{lw}" width="{vw}" height="20" fill="{colour}"/><g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle"><text x="{lx}" y="14">{label}</text><text x="{vx}" y="14">{value}</text></g></svg>"##,
        lx = lw / 2,
        vx = lw + vw / 2,
    )
}

fn svg(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn badge_handler(
    State(state): State<AppState>,
    Path((name, kind)): Path<(String, String)>,
) -> Response {
    let Some((config, view)) = state.board.server(&name) else {
        return svg(
            StatusCode::NOT_FOUND,
            badge("mxping", "unknown server", UNKNOWN),
        );
    };
    let status = view.status();
    let colour = |s: Status| match s {
        Status::Green => GREEN,
        Status::Yellow => YELLOW,
        Status::Red => RED,
        Status::Unknown => UNKNOWN,
    };
    let body = match kind.as_str() {
        "status.svg" => {
            let word = match status {
                Status::Green => "operational",
                Status::Yellow => "degraded",
                Status::Red => "down",
                Status::Unknown => "not checked yet",
            };
            badge(&name, word, colour(status))
        }
        "uptime.svg" => {
            let value = view
                .uptime("30d")
                .map_or("no data".to_owned(), |u| super::pages::percent(Some(u)));
            let c = match view.uptime("30d") {
                Some(u) if u >= 0.999 => GREEN,
                Some(u) if u >= 0.99 => YELLOW,
                Some(_) => RED,
                None => UNKNOWN,
            };
            badge("uptime 30d", &value, c)
        }
        "latency.svg" => {
            let threshold = config.monitor.green_below.as_secs_f64() * 1000.0;
            match view.report.latency_ms {
                Some(ms) => badge(
                    "latency",
                    &numbers::ms(ms, Places::Whole),
                    if ms < threshold { GREEN } else { YELLOW },
                ),
                None => badge(
                    "latency",
                    "unreachable",
                    if status == Status::Unknown {
                        UNKNOWN
                    } else {
                        RED
                    },
                ),
            }
        }
        _ => {
            return svg(
                StatusCode::NOT_FOUND,
                badge("mxping", "no such badge", UNKNOWN),
            );
        }
    };
    svg(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_escape_and_size_their_text() {
        let b = badge("a<b", "x&y", GREEN);
        assert!(b.contains("a&lt;b") && b.contains("x&amp;y") && !b.contains("a<b"));
        assert!(b.starts_with("<svg") && b.ends_with("</svg>"));
        assert!(text_width("operational") > text_width("down"));
    }
}
