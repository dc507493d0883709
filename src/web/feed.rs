//! An Atom feed of status changes and operators' notes (`/feed.atom`), newest first.

use crate::text::escape_html as xml;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::AppState;
use super::pages::{PageQuery, language, language_headers};
use crate::i18n::{key, reason_words, status_word};

fn link(server: &str) -> String {
    url::form_urlencoded::byte_serialize(server.as_bytes()).collect()
}

fn stamp(at: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .map(crate::timestamp::format)
        .unwrap_or_default()
}

/// `/feed.atom`, in the language `?lang=` names or the reader negotiates (English by default).
pub(super) async fn atom(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&query, &headers);
    let t = lang.locale;
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
        "<title>{}</title><id>urn:mxping:{vantage}:status</id>\
         <updated>{updated}</updated><link href=\"/\"/><link rel=\"self\" href=\"/feed.atom\"/>\
         <author><name>mxping</name></author>",
        xml(&t.f(key::FEED_TITLE, &[("vantage", config.web.vantage_name())]))
    ));
    // Status changes and operators' notes, newest first.
    let notes: Vec<(String, usize, crate::maintenance::incidents::Note)> = state
        .board
        .snapshot()
        .servers
        .iter()
        .filter_map(|v| Some((v.report.name.clone(), v.incident.clone()?)))
        .flat_map(|(name, i)| {
            i.notes
                .iter()
                .enumerate()
                .map(|(k, n)| (name.clone(), k, n.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut entries: Vec<(i64, String)> = Vec::with_capacity(events.len() + notes.len());
    for e in &events {
        let server = xml(&e.server);
        let when = stamp(e.at);
        let reason = xml(&e.reason.as_ref().map_or_else(
            || t.t(key::FEED_BACK_TO_NORMAL).to_owned(),
            |r| reason_words(t, r),
        ));
        let title = t.f(
            key::FEED_ENTRY,
            &[
                ("server", &e.server),
                ("from", status_word(t, e.from)),
                ("to", status_word(t, e.to)),
            ],
        );
        entries.push((
            e.at,
            format!(
                "<entry><title>{}</title><id>urn:mxping:{vantage}:{server}:{}</id>\
                 <updated>{when}</updated><link href=\"/server/{}\"/><content type=\"text\">{reason}</content></entry>",
                xml(&title),
                e.at,
                link(&e.server),
            ),
        ));
    }
    for (server, k, n) in &notes {
        let at = n.at.unix_timestamp();
        let title = t.f(
            if n.resolves {
                key::FEED_NOTE_RESOLVED
            } else {
                key::FEED_NOTE
            },
            &[("server", server), ("by", &n.by)],
        );
        entries.push((
            at,
            format!(
                "<entry><title>{}</title><id>urn:mxping:{vantage}:{}:note:{}:{k}</id>\
                 <updated>{}</updated><link href=\"/server/{}\"/><content type=\"text\">{}</content></entry>",
                xml(&title),
                xml(server),
                n.at.unix_timestamp(),
                stamp(at),
                link(server),
                xml(&n.text),
            ),
        ));
    }
    entries.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    for (_, entry) in entries {
        out.push_str(&entry);
    }
    out.push_str("</feed>");
    let mut response = (
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        out,
    )
        .into_response();
    language_headers(&mut response, &lang, "Accept-Language, Cookie");
    response
}
