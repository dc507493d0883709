//! An Atom feed of status changes (`/feed.atom`), newest first.

use crate::text::escape_html as xml;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::AppState;

fn stamp(at: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .map(crate::timestamp::format)
        .unwrap_or_default()
}

pub(super) async fn atom(State(state): State<AppState>) -> Response {
    let config = state.board.config();
    let events = state.board.events();
    let updated = events.first().map_or_else(
        || crate::timestamp::format(OffsetDateTime::now_utc()),
        |e| stamp(e.at),
    );
    let vantage = xml(config.web.vantage_name());
    let mut out = String::with_capacity(1024 + events.len() * 512);
    out.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    out.push_str(r#"<feed xmlns="http://www.w3.org/2005/Atom">"#);
    out.push_str(&format!(
        "<title>mxping: status changes ({vantage})</title><id>urn:mxping:{vantage}:status</id>\
         <updated>{updated}</updated><link href=\"/\"/><link rel=\"self\" href=\"/feed.atom\"/>\
         <author><name>mxping</name></author>"
    ));
    for e in &events {
        let server = xml(&e.server);
        let when = stamp(e.at);
        let reason = xml(&e
            .reason
            .as_ref()
            .map_or_else(|| "back to normal".to_owned(), ToString::to_string));
        out.push_str(&format!(
            "<entry><title>{server}: {} → {}</title><id>urn:mxping:{vantage}:{server}:{}</id>\
             <updated>{when}</updated><link href=\"/server/{}\"/><content type=\"text\">{reason}</content></entry>",
            e.from.as_str(),
            e.to.as_str(),
            e.at,
            url::form_urlencoded::byte_serialize(e.server.as_bytes()).collect::<String>(),
        ));
    }
    out.push_str("</feed>");
    (
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        out,
    )
        .into_response()
}
