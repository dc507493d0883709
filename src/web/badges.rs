//! SVG badges for READMEs and dashboards: `/badge/{server}/status.svg`, `uptime.svg` (30 days)
//! and `latency.svg`, in English or the language `?lang=` names. Flat, self-contained, no
//! external fonts.

use crate::text::escape_html as escape;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::i18n::{key, status_word};
use crate::numbers::{self, Places};
use crate::status::Status;

const GREY: &str = "#555";
const GREEN: &str = "#1a7f37";
const YELLOW: &str = "#9a6700";
const RED: &str = "#b3261e";
const UNKNOWN: &str = "#6e7781";
const MAINTENANCE: &str = "#0a5fb4";

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

/// The language of a badge: only what `?lang=` names (English by default), so a badge
/// embedded elsewhere looks the same to every reader.
#[derive(serde::Deserialize)]
pub(super) struct BadgeQuery {
    lang: Option<String>,
}

pub(super) async fn badge_handler(
    State(state): State<AppState>,
    Path((name, kind)): Path<(String, String)>,
    Query(query): Query<BadgeQuery>,
) -> Response {
    let t = query
        .lang
        .as_deref()
        .and_then(crate::i18n::find)
        .unwrap_or_else(crate::i18n::english);
    let Some((config, view)) = state.board.server(&name) else {
        return svg(
            StatusCode::NOT_FOUND,
            badge("mxping", t.t(key::BADGE_UNKNOWN_SERVER), UNKNOWN),
        );
    };
    let status = view.status();
    let colour = |s: Status| match s {
        Status::Green => GREEN,
        Status::Yellow => YELLOW,
        Status::Red => RED,
        Status::Maintenance => MAINTENANCE,
        Status::Unknown => UNKNOWN,
    };
    let body = match kind.as_str() {
        "status.svg" => badge(&name, status_word(t, status), colour(status)),
        "uptime.svg" => {
            let value = view
                .uptime("30d")
                .map_or(t.t(key::BADGE_NO_DATA).to_owned(), |u| {
                    super::pages::percent(Some(u))
                });
            let c = match view.uptime("30d") {
                Some(u) if u >= 0.999 => GREEN,
                Some(u) if u >= 0.99 => YELLOW,
                Some(_) => RED,
                None => UNKNOWN,
            };
            badge(t.t(key::BADGE_UPTIME_30D), &value, c)
        }
        "latency.svg" => {
            let threshold = config.monitor.green_below.as_secs_f64() * 1000.0;
            match view.report.latency_ms {
                Some(ms) => badge(
                    t.t(key::BADGE_LATENCY),
                    &numbers::ms(ms, Places::Whole),
                    if ms < threshold { GREEN } else { YELLOW },
                ),
                None => badge(
                    t.t(key::BADGE_LATENCY),
                    t.t(key::BADGE_UNREACHABLE),
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
                badge("mxping", t.t(key::BADGE_NO_SUCH), UNKNOWN),
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
