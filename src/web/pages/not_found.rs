//! The 404 page, in the visitor's language.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::config::Config;
use crate::i18n::Locale;
use crate::i18n::key;
use crate::web::AppState;

use super::lang::{Lang, language};
use super::{Base, PageQuery, html};

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage {
    t: &'static Locale,
    base: Base,
    message: String,
}

pub(super) fn not_found_page(config: &Config, lang: &Lang, message: String) -> Response {
    let t = lang.locale;
    let mut base = Base::new(config, t, &|code| format!("/?lang={code}"));
    base.refresh_s = 0;
    let mut response = html(&NotFoundPage { t, base, message }, lang, None);
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

pub(in crate::web) async fn not_found(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&query, &headers);
    let message = lang.locale.t(key::NOT_FOUND_PAGE).to_owned();
    not_found_page(&state.board.config(), &lang, message)
}
