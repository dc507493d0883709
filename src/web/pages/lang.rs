//! The visitor's language: `?lang=`, then the cookie the switch sets, then
//! `Accept-Language`; and the headers that say which language a page is in.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use crate::i18n::{self, Locale};

/// The language of a request and whether to remember it in a cookie.
pub(in crate::web) struct Lang {
    pub(in crate::web) locale: &'static Locale,
    pub(super) remember: bool,
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

pub(in crate::web) fn language(query: &super::PageQuery, headers: &HeaderMap) -> Lang {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let locale = i18n::negotiate(
        query.lang.as_deref(),
        cookie_value(headers, i18n::COOKIE),
        accept,
    );
    Lang {
        locale,
        remember: query.lang.as_deref().and_then(i18n::find).is_some(),
    }
}

/// varies with, and the cookie remembering a language just chosen.
pub(in crate::web) fn language_headers(response: &mut Response, lang: &Lang, vary: &'static str) {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_str(&lang.locale.code).expect("language codes are ASCII"),
    );
    h.insert(header::VARY, HeaderValue::from_static(vary));
    if lang.remember {
        let cookie = format!(
            "{}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            i18n::COOKIE,
            lang.locale.code
        );
        h.insert(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("ASCII cookie"),
        );
    }
}
