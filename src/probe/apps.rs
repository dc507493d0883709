//! Which app works there (design.md "Apps"): what the apps newcomers are told to install need
//! from a server, measured without an account, and each app's verdict from the measurements.
//!
//! Measured with the sign-up check (same schedule, the same guarded [`Fetcher`], the same
//! 64 KiB caps and one time budget), on the client API's base URL as clients discover it:
//! - `/_matrix/client/versions`, asked as a browser on another origin asks it (`Origin:`
//!   [`ORIGIN`]): the highest stable spec version, simplified sliding sync
//!   (`org.matrix.simplified_msc3575` in `unstable_features`), and whether the answer carries
//!   `Access-Control-Allow-Origin`;
//! - `/.well-known/matrix/client` the same way (a browser cannot read it, not even a 404,
//!   without that header);
//! - a CORS preflight (`OPTIONS /_matrix/client/v3/login` with the headers a browser client's
//!   first authenticated request makes it send), judged by the Fetch standard's rules: an ok
//!   status, the origin or `*` allowed, `Authorization` named explicitly (a `*` does not cover
//!   it) and `Content-Type` named or `*`;
//! - `GET /_matrix/client/v1/media/config` without a token: 401 `M_MISSING_TOKEN` means
//!   authenticated media (Matrix 1.11), which clients since then need to load images; 404 or
//!   `M_UNRECOGNIZED` means the server has none;
//! - how one logs in: `/login` (password, SSO) and next-generation auth (`auth_metadata` on the
//!   stable path, or on the unstable `org.matrix.msc2965` paths), read by the sign-up check.
//!
//! The rule for each app is written once, in [`App::needs`] (and in design.md's table).

use hyper::Method;
use hyper::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, HeaderMap, HeaderName, HeaderValue,
};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::i18n::{Key, key};
use crate::net::fetch::{Endpoint, Fetcher, Response};
use crate::text;

/// The origin the browser checks pretend to come from: Element Web's.
pub(crate) const ORIGIN: &str = "https://app.element.io";
/// Simplified sliding sync's flag in `unstable_features` (MSC4186).
const SLIDING_SYNC: &str = "org.matrix.simplified_msc3575";
/// Cap on every body read here.
const MAX_BODY: usize = 64 * 1024;

/// One thing an app needs from a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// `/_matrix/client/versions` answers at the base URL clients discover.
    ClientApi,
    /// The base URL is https (a page served over https cannot call plain http).
    HttpsBaseUrl,
    /// Browsers on another origin can read the client well-known.
    CorsWellKnown,
    /// Browsers on another origin can call the client API (preflight and answers).
    CorsClientApi,
    /// Simplified sliding sync.
    SlidingSync,
    /// Where login is next-generation auth only, its metadata at an `auth_metadata` path.
    AuthMetadata,
    /// Authenticated media.
    AuthenticatedMedia,
}

impl Check {
    /// Every check, in the order the detail page lists them.
    pub const ALL: [Check; 7] = [
        Check::ClientApi,
        Check::HttpsBaseUrl,
        Check::CorsWellKnown,
        Check::CorsClientApi,
        Check::SlidingSync,
        Check::AuthMetadata,
        Check::AuthenticatedMedia,
    ];

    /// Without it an app does not work at all, except for authenticated media: without it
    /// an app works but images do not load.
    fn without(self) -> Works {
        match self {
            Check::AuthenticatedMedia => Works::Partly,
            _ => Works::No,
        }
    }

    /// What failing it means for a newcomer, in English (JSON and `mxping check`).
    pub fn english(self) -> &'static str {
        match self {
            Check::ClientApi => "the client API does not answer",
            Check::HttpsBaseUrl => "the client API's base URL is not https",
            Check::CorsWellKnown => {
                "browsers cannot read /.well-known/matrix/client (no CORS headers)"
            }
            Check::CorsClientApi => "browsers cannot call the client API (CORS refused)",
            Check::SlidingSync => "no simplified sliding sync",
            Check::AuthMetadata => {
                "next-generation auth is the only login and its metadata is not at an auth_metadata path"
            }
            Check::AuthenticatedMedia => "images will not load: no authenticated media",
        }
    }

    /// The check's name on the detail page.
    pub fn name_key(self) -> Key {
        match self {
            Check::ClientApi => key::CHECK_CLIENT_API,
            Check::HttpsBaseUrl => key::CHECK_HTTPS,
            Check::CorsWellKnown => key::CHECK_CORS_WELL_KNOWN,
            Check::CorsClientApi => key::CHECK_CORS_CLIENT_API,
            Check::SlidingSync => key::CHECK_SLIDING_SYNC,
            Check::AuthMetadata => key::CHECK_AUTH_METADATA,
            Check::AuthenticatedMedia => key::CHECK_AUTH_MEDIA,
        }
    }

    /// What failing it means for a newcomer, in the reader's words.
    pub fn fails_key(self) -> Key {
        match self {
            Check::ClientApi => key::FAILS_CLIENT_API,
            Check::HttpsBaseUrl => key::FAILS_HTTPS,
            Check::CorsWellKnown => key::FAILS_CORS_WELL_KNOWN,
            Check::CorsClientApi => key::FAILS_CORS_CLIENT_API,
            Check::SlidingSync => key::FAILS_SLIDING_SYNC,
            Check::AuthMetadata => key::FAILS_AUTH_METADATA,
            Check::AuthenticatedMedia => key::FAILS_AUTH_MEDIA,
        }
    }

    /// What the operator should change.
    pub fn fix_key(self) -> Key {
        match self {
            Check::ClientApi => key::FIX_CLIENT_API,
            Check::HttpsBaseUrl => key::FIX_HTTPS,
            Check::CorsWellKnown => key::FIX_CORS_WELL_KNOWN,
            Check::CorsClientApi => key::FIX_CORS_CLIENT_API,
            Check::SlidingSync => key::FIX_SLIDING_SYNC,
            Check::AuthMetadata => key::FIX_AUTH_METADATA,
            Check::AuthenticatedMedia => key::FIX_AUTH_MEDIA,
        }
    }
}

/// An app newcomers are told to install.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum App {
    /// Element in the browser.
    ElementWeb,
    /// Cinny in the browser.
    Cinny,
    /// Element X (phones; what Element now ships).
    ElementX,
    /// Element (classic) on phones.
    ElementMobile,
    /// FluffyChat.
    Fluffychat,
}

impl App {
    /// Every app, in the page's order.
    pub const ALL: [App; 5] = [
        App::ElementWeb,
        App::Cinny,
        App::ElementX,
        App::ElementMobile,
        App::Fluffychat,
    ];

    /// The rule: what the app needs from a server. Browser apps need CORS on the client
    /// well-known and the client API and an https base URL; Element X needs simplified
    /// sliding sync (and, where login is next-generation auth only, its metadata); every app
    /// needs the client API, and authenticated media to show images.
    pub fn needs(self) -> &'static [Check] {
        match self {
            App::ElementWeb | App::Cinny => &[
                Check::ClientApi,
                Check::HttpsBaseUrl,
                Check::CorsWellKnown,
                Check::CorsClientApi,
                Check::AuthenticatedMedia,
            ],
            App::ElementX => &[
                Check::ClientApi,
                Check::SlidingSync,
                Check::AuthMetadata,
                Check::AuthenticatedMedia,
            ],
            App::ElementMobile | App::Fluffychat => &[Check::ClientApi, Check::AuthenticatedMedia],
        }
    }

    /// The contract's word (JSON, the page's filter).
    pub fn as_str(self) -> &'static str {
        match self {
            App::ElementWeb => "element_web",
            App::Cinny => "cinny",
            App::ElementX => "element_x",
            App::ElementMobile => "element_mobile",
            App::Fluffychat => "fluffychat",
        }
    }

    /// The app's name as the page writes it.
    pub fn name_key(self) -> Key {
        match self {
            App::ElementWeb => key::APP_ELEMENT_WEB,
            App::Cinny => key::APP_CINNY,
            App::ElementX => key::APP_ELEMENT_X,
            App::ElementMobile => key::APP_ELEMENT_MOBILE,
            App::Fluffychat => key::APP_FLUFFYCHAT,
        }
    }

    /// The app named by `word` (the contract's word).
    pub fn parse(word: &str) -> Option<App> {
        App::ALL.into_iter().find(|a| a.as_str() == word)
    }
}

/// Whether an app works on a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Works {
    /// Everything it needs was measured and is there.
    Yes,
    /// It works, but something is missing (images will not load).
    Partly,
    /// It does not work.
    No,
}

impl Works {
    /// The contract's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Works::Yes => "yes",
            Works::Partly => "partly",
            Works::No => "no",
        }
    }

    /// A sign every system font has, so the verdict is never shown by colour alone.
    pub fn symbol(self) -> &'static str {
        match self {
            Works::Yes => "✓",
            Works::Partly => "◐",
            Works::No => "✗",
        }
    }

    /// The verdict in the reader's words.
    pub fn key(self) -> Key {
        match self {
            Works::Yes => key::WORKS_YES,
            Works::Partly => key::WORKS_PARTLY,
            Works::No => key::WORKS_NO,
        }
    }
}

/// One app's verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// Works, partly or not.
    pub works: Works,
    /// Why not, in English: what each missing check means (null when it works).
    pub reason: Option<String>,
    /// The checks it needs that failed, the ones that stop it first.
    pub missing: Vec<Check>,
}

/// The apps' verdicts (an object keyed by the app's word).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Apps {
    /// Element (web).
    pub element_web: Verdict,
    /// Cinny (web).
    pub cinny: Verdict,
    /// Element X.
    pub element_x: Verdict,
    /// Element (mobile).
    pub element_mobile: Verdict,
    /// FluffyChat.
    pub fluffychat: Verdict,
}

impl Apps {
    /// The verdict for `app`.
    pub fn get(&self, app: App) -> &Verdict {
        match app {
            App::ElementWeb => &self.element_web,
            App::Cinny => &self.cinny,
            App::ElementX => &self.element_x,
            App::ElementMobile => &self.element_mobile,
            App::Fluffychat => &self.fluffychat,
        }
    }
}

/// CORS as a browser on another origin sees it (`null`: not measured).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cors {
    /// The client well-known can be read.
    pub well_known: Option<bool>,
    /// The client API answers the preflight and its answers can be read.
    pub client_api: Option<bool>,
}

/// A way to log in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginWay {
    /// `m.login.password` on `/login`.
    Password,
    /// `m.login.sso` on `/login`.
    Sso,
    /// Next-generation auth (OAuth 2.0 through the issuer).
    Oauth,
}

/// Where next-generation auth was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataPath {
    /// `/_matrix/client/v1/auth_metadata`.
    Stable,
    /// `/_matrix/client/unstable/org.matrix.msc2965/auth_metadata`.
    Unstable,
    /// Only the older `/_matrix/client/unstable/org.matrix.msc2965/auth_issuer`.
    IssuerOnly,
}

/// What one check saw when it failed or could not be measured: technical, in English, quoted
/// on the detail page.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Note {
    /// The check.
    pub check: Check,
    /// What the server answered.
    pub said: String,
}

/// The apps' facts about one server (JSON field `clients`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Clients {
    /// The highest stable spec version `/versions` lists (`v1.15`).
    pub spec_version: Option<String>,
    /// Simplified sliding sync is advertised.
    pub sliding_sync: Option<bool>,
    /// CORS.
    pub cors: Cors,
    /// Authenticated media.
    pub authenticated_media: Option<bool>,
    /// How one logs in.
    pub login: Vec<LoginWay>,
    /// Where next-generation auth was found, when it was.
    pub auth_metadata: Option<MetadataPath>,
    /// Each app's verdict.
    pub apps: Apps,
    /// When the check finished.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// What the failed checks saw.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

impl Clients {
    /// The state of `check` (`None`: not measured).
    pub fn passes(&self, check: Check) -> Option<bool> {
        self.facts().passes(check)
    }

    fn facts(&self) -> Facts {
        Facts {
            client_api: self.client_api(),
            https: self.https(),
            cors: self.cors,
            sliding_sync: self.sliding_sync,
            login: self.login.clone(),
            auth_metadata: self.auth_metadata,
            authenticated_media: self.authenticated_media,
        }
    }

    fn client_api(&self) -> bool {
        !self.notes.iter().any(|n| n.check == Check::ClientApi)
    }

    fn https(&self) -> Option<bool> {
        if self.notes.iter().any(|n| n.check == Check::HttpsBaseUrl) {
            Some(false)
        } else {
            self.client_api().then_some(true)
        }
    }
}

/// What was measured, before the verdicts.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Facts {
    pub client_api: bool,
    pub https: Option<bool>,
    pub cors: Cors,
    pub sliding_sync: Option<bool>,
    pub login: Vec<LoginWay>,
    pub auth_metadata: Option<MetadataPath>,
    pub authenticated_media: Option<bool>,
}

impl Facts {
    /// The state of `check` (`None`: not measured, which does not count against an app).
    pub(crate) fn passes(&self, check: Check) -> Option<bool> {
        match check {
            Check::ClientApi => Some(self.client_api),
            Check::HttpsBaseUrl => self.https,
            Check::CorsWellKnown => self.cors.well_known,
            Check::CorsClientApi => self.cors.client_api,
            Check::SlidingSync => self.sliding_sync,
            Check::AuthMetadata => {
                let oauth_only = self.login == [LoginWay::Oauth];
                Some(!oauth_only || self.auth_metadata != Some(MetadataPath::IssuerOnly))
            }
            Check::AuthenticatedMedia => self.authenticated_media,
        }
    }

    /// `app`'s verdict: the worst of what its missing checks mean. Without the client API
    /// nothing else matters, so the reason names only that.
    pub(crate) fn verdict(&self, app: App) -> Verdict {
        let mut missing: Vec<Check> = app
            .needs()
            .iter()
            .copied()
            .filter(|c| self.passes(*c) == Some(false))
            .collect();
        if missing.contains(&Check::ClientApi) {
            missing = vec![Check::ClientApi];
        }
        missing.sort_by_key(|c| std::cmp::Reverse(c.without()));
        let works = missing
            .iter()
            .map(|c| c.without())
            .max()
            .unwrap_or(Works::Yes);
        let reason = (!missing.is_empty()).then(|| {
            missing
                .iter()
                .map(|c| c.english())
                .collect::<Vec<_>>()
                .join("; ")
        });
        Verdict {
            works,
            reason,
            missing,
        }
    }

    /// Every app's verdict.
    pub(crate) fn apps(&self) -> Apps {
        Apps {
            element_web: self.verdict(App::ElementWeb),
            cinny: self.verdict(App::Cinny),
            element_x: self.verdict(App::ElementX),
            element_mobile: self.verdict(App::ElementMobile),
            fluffychat: self.verdict(App::Fluffychat),
        }
    }
}

/// The client API could not be found or does not answer: every app fails, with `why`.
pub(crate) fn unreachable(why: &str) -> Clients {
    let facts = Facts::default();
    Clients {
        spec_version: None,
        sliding_sync: None,
        cors: Cors::default(),
        authenticated_media: None,
        login: Vec::new(),
        auth_metadata: None,
        apps: facts.apps(),
        checked_at: OffsetDateTime::now_utc(),
        notes: vec![Note {
            check: Check::ClientApi,
            said: text::cap(why),
        }],
    }
}

/// What the sign-up check learnt of login, shared with these checks.
pub(crate) struct LoginSeen {
    /// `/login` offers `m.login.password`.
    pub password: bool,
    /// `/login` offers `m.login.sso`.
    pub sso: bool,
    /// Where next-generation auth metadata was found.
    pub metadata: Option<MetadataPath>,
}

/// What the server answered to the apps' requests, before it is judged.
pub(crate) struct Answers {
    well_known: Endpoint,
    base: String,
    versions: Endpoint,
    media: Endpoint,
    preflight: Endpoint,
    wk: Result<Response, String>,
    versions_answer: Result<Response, String>,
    media_answer: Result<Response, String>,
    preflight_answer: Result<Response, crate::error::ProbeError>,
}

/// Asks the server whose client API is at `base` (a base URL found by discovery) what the
/// apps ask, `well_known` being where its client well-known is; all at once, and alongside
/// the sign-up check's own requests, so they share its time budget without lengthening it.
/// `Err`: the base URL is not one a client could use.
pub(crate) async fn ask(
    fetcher: &Fetcher,
    well_known: &Endpoint,
    base: &str,
) -> Result<Answers, String> {
    let origin = (
        HeaderName::from_static("origin"),
        HeaderValue::from_static(ORIGIN),
    );
    let endpoint = |path: &str| super::client_api::base_endpoint(base, path);
    let (versions, media, preflight) = match (
        endpoint("/_matrix/client/versions"),
        endpoint("/_matrix/client/v1/media/config"),
        endpoint("/_matrix/client/v3/login"),
    ) {
        (Ok(v), Ok(m), Ok(p)) => (v, m, p),
        (Err(why), ..) | (_, Err(why), _) | (.., Err(why)) => return Err(why),
    };
    let preflight_headers = [
        origin.clone(),
        (
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        ),
        (
            ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("authorization,content-type"),
        ),
    ];
    let get = |url: Endpoint, headers: Vec<(HeaderName, HeaderValue)>| async move {
        let mut conn = None;
        fetcher
            .get_following_with(&url, &headers, MAX_BODY, &mut conn, &mut |_| {})
            .await
            .map(|f| f.response)
            .map_err(|e| format!("{url}: {}", e.message))
    };
    let (wk, versions_answer, media_answer, preflight_answer) = tokio::join!(
        get(well_known.clone(), vec![origin.clone()]),
        get(versions.clone(), vec![origin.clone()]),
        get(media.clone(), Vec::new()),
        fetcher.request(
            Method::OPTIONS,
            &preflight,
            &preflight_headers,
            bytes::Bytes::new(),
            MAX_BODY
        ),
    );
    Ok(Answers {
        well_known: well_known.clone(),
        base: base.to_owned(),
        versions,
        media,
        preflight,
        wk,
        versions_answer,
        media_answer,
        preflight_answer,
    })
}

/// The apps' facts and verdicts from the server's `answers` and what the sign-up check learnt
/// of `login`.
pub(crate) fn judge(answers: Result<Answers, String>, login: &LoginSeen) -> Clients {
    let a = match answers {
        Ok(a) => a,
        Err(why) => return unreachable(&why),
    };
    let Answers {
        well_known,
        base,
        versions,
        media,
        preflight,
        wk,
        versions_answer,
        media_answer,
        preflight_answer,
    } = a;
    let mut notes = Vec::new();
    let spec_version;
    let mut facts = Facts {
        login: [
            (login.password, LoginWay::Password),
            (login.sso, LoginWay::Sso),
            (login.metadata.is_some(), LoginWay::Oauth),
        ]
        .into_iter()
        .filter_map(|(on, way)| on.then_some(way))
        .collect(),
        auth_metadata: login.metadata,
        ..Facts::default()
    };
    let mut note = |check, said: String| {
        notes.push(Note {
            check,
            said: text::cap(&said),
        })
    };
    // The client API itself: /versions must answer 200 with a list.
    match &versions_answer {
        Err(why) => return unreachable(why),
        Ok(r) if r.status.as_u16() != 200 => {
            return unreachable(&format!("{versions}: HTTP {}", r.status));
        }
        Ok(r) => match super::client_api::parse_versions(&r.body) {
            Err(why) => return unreachable(&format!("{versions}: {why}")),
            Ok(list) => {
                facts.client_api = true;
                let json: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                let sliding = json
                    .pointer("/unstable_features")
                    .and_then(|f| f.get(SLIDING_SYNC))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                facts.sliding_sync = Some(sliding);
                if !sliding {
                    note(
                        Check::SlidingSync,
                        format!("{versions}: unstable_features has no \"{SLIDING_SYNC}\": true"),
                    );
                }
                spec_version = highest_stable(&list);
            }
        },
    }
    let https = base.starts_with("https://");
    facts.https = Some(https);
    if !https {
        note(Check::HttpsBaseUrl, format!("base_url {base}"));
    }
    // CORS: the well-known (any status: a browser cannot read even a 404 without the header),
    // the preflight, and /versions' own answer.
    facts.cors.well_known = match &wk {
        Err(why) => {
            note(Check::CorsWellKnown, why.clone());
            None
        }
        Ok(r) => {
            let ok = allows_origin(&r.headers);
            if !ok {
                note(
                    Check::CorsWellKnown,
                    format!(
                        "{well_known} (HTTP {}): {}",
                        r.status.as_u16(),
                        said_origin(&r.headers)
                    ),
                );
            }
            Some(ok)
        }
    };
    let versions_cors = versions_answer
        .as_ref()
        .is_ok_and(|r| allows_origin(&r.headers));
    facts.cors.client_api = Some(match preflight_answer {
        Err(e) => {
            note(
                Check::CorsClientApi,
                format!("OPTIONS {preflight}: {}", e.message),
            );
            false
        }
        Ok(r) => match preflight_refusal(r.status.as_u16(), &r.headers) {
            Some(why) => {
                note(Check::CorsClientApi, format!("OPTIONS {preflight}: {why}"));
                false
            }
            None if !versions_cors => {
                let headers = &versions_answer.as_ref().expect("answered").headers;
                note(
                    Check::CorsClientApi,
                    format!("{versions}: {}", said_origin(headers)),
                );
                false
            }
            None => true,
        },
    });
    facts.authenticated_media = match media_answer {
        Err(why) => {
            note(Check::AuthenticatedMedia, why);
            None
        }
        Ok(r) => {
            let found = media_support(r.status.as_u16(), &r.body);
            if found != Some(true) {
                let errcode = errcode(&r.body)
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default();
                note(
                    Check::AuthenticatedMedia,
                    format!(
                        "{media} without a token: HTTP {}{errcode}",
                        r.status.as_u16()
                    ),
                );
            }
            found
        }
    };
    if facts.passes(Check::AuthMetadata) == Some(false) {
        note(
            Check::AuthMetadata,
            "only /_matrix/client/unstable/org.matrix.msc2965/auth_issuer answered".into(),
        );
    }
    Clients {
        spec_version,
        sliding_sync: facts.sliding_sync,
        cors: facts.cors,
        authenticated_media: facts.authenticated_media,
        login: facts.login.clone(),
        auth_metadata: facts.auth_metadata,
        apps: facts.apps(),
        checked_at: OffsetDateTime::now_utc(),
        notes,
    }
}

/// The highest stable version (`vX.Y`) of a `/versions` list.
pub(crate) fn highest_stable(list: &[String]) -> Option<String> {
    list.iter()
        .filter_map(|v| {
            let (major, minor) = v.strip_prefix('v')?.split_once('.')?;
            Some(((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?), v))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, v)| v.clone())
}

/// `Access-Control-Allow-Origin` lets [`ORIGIN`] read the answer (one value: `*` or the
/// origin itself).
pub(crate) fn allows_origin(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(ACCESS_CONTROL_ALLOW_ORIGIN).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v == "*" || v == ORIGIN,
        _ => false,
    }
}

/// What the answer said about origins, for a note.
fn said_origin(headers: &HeaderMap) -> String {
    let values: Vec<String> = headers
        .get_all(ACCESS_CONTROL_ALLOW_ORIGIN)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if values.is_empty() {
        "no Access-Control-Allow-Origin".into()
    } else {
        format!("Access-Control-Allow-Origin: {}", values.join(", "))
    }
}

/// Why a browser would refuse this answer to the preflight (the Fetch standard's CORS-preflight
/// checks for a request without credentials), or `None` when it passes.
pub(crate) fn preflight_refusal(status: u16, headers: &HeaderMap) -> Option<String> {
    if !(200..300).contains(&status) {
        return Some(format!("HTTP {status}"));
    }
    if !allows_origin(headers) {
        return Some(said_origin(headers));
    }
    let list = |name: &HeaderName| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect()
    };
    // POST is a CORS-safelisted method: a browser lets it through whatever
    // Access-Control-Allow-Methods says, so only the headers decide.
    let allowed = list(&ACCESS_CONTROL_ALLOW_HEADERS);
    let named = |h: &str| allowed.iter().any(|a| a.eq_ignore_ascii_case(h));
    let star = allowed.iter().any(|a| a == "*");
    // `Authorization` is never covered by `*`.
    if !named("authorization") {
        return Some(format!(
            "Access-Control-Allow-Headers does not name Authorization ({})",
            if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            }
        ));
    }
    if !named("content-type") && !star {
        return Some(format!(
            "Access-Control-Allow-Headers does not name Content-Type ({})",
            allowed.join(", ")
        ));
    }
    None
}

/// The `errcode` of a Matrix error body.
fn errcode(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("errcode")
        .and_then(Value::as_str)
        .map(|c| text::cap_to(c, 64))
}

/// Authenticated media from the answer to `/v1/media/config` without a token: 401
/// `M_MISSING_TOKEN` (or `M_UNKNOWN_TOKEN`) → yes; 404, 405 or 400 with `M_UNRECOGNIZED`, or a
/// 404 → no; anything else → not known.
pub(crate) fn media_support(status: u16, body: &[u8]) -> Option<bool> {
    let code = errcode(body);
    match (status, code.as_deref()) {
        (401, Some("M_MISSING_TOKEN" | "M_UNKNOWN_TOKEN")) => Some(true),
        (_, Some("M_UNRECOGNIZED")) | (404, _) => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_highest_stable_version_is_compared_as_numbers() {
        let list: Vec<String> = ["r0.6.1", "v1.2", "v1.11", "v1.9"]
            .map(String::from)
            .to_vec();
        assert_eq!(highest_stable(&list).as_deref(), Some("v1.11"));
        assert_eq!(highest_stable(&["r0.6.1".to_owned()]), None);
    }

    #[test]
    fn preflight_answers_are_judged_as_browsers_judge_them() {
        // Synapse's answer.
        let synapse = headers(&[
            ("access-control-allow-origin", "*"),
            (
                "access-control-allow-methods",
                "GET, HEAD, POST, PUT, DELETE, OPTIONS",
            ),
            (
                "access-control-allow-headers",
                "X-Requested-With, Content-Type, Authorization, Date",
            ),
        ]);
        assert_eq!(preflight_refusal(204, &synapse), None);
        assert_eq!(preflight_refusal(200, &synapse), None);
        assert_eq!(
            preflight_refusal(405, &synapse).as_deref(),
            Some("HTTP 405")
        );
        // A `*` for headers does not cover Authorization.
        let star = headers(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-headers", "*"),
        ]);
        assert!(
            preflight_refusal(204, &star)
                .unwrap()
                .contains("Authorization")
        );
        let star_and_auth = headers(&[
            ("access-control-allow-origin", "https://app.element.io"),
            ("access-control-allow-headers", "*, authorization"),
        ]);
        assert_eq!(preflight_refusal(204, &star_and_auth), None);
        let other_origin = headers(&[
            ("access-control-allow-origin", "https://example.org"),
            (
                "access-control-allow-headers",
                "authorization, content-type",
            ),
        ]);
        assert!(
            preflight_refusal(204, &other_origin)
                .unwrap()
                .contains("example.org")
        );
        let two = headers(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-origin", "*"),
            (
                "access-control-allow-headers",
                "authorization, content-type",
            ),
        ]);
        assert!(
            preflight_refusal(204, &two).is_some(),
            "two values are refused"
        );
        assert!(preflight_refusal(204, &HeaderMap::new()).is_some());
    }

    #[test]
    fn media_config_without_a_token_tells_authenticated_media() {
        assert_eq!(
            media_support(
                401,
                br#"{"errcode":"M_MISSING_TOKEN","error":"Missing access token"}"#
            ),
            Some(true)
        );
        assert_eq!(
            media_support(
                404,
                br#"{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}"#
            ),
            Some(false)
        );
        assert_eq!(media_support(404, b"<html>not found</html>"), Some(false));
        assert_eq!(
            media_support(405, br#"{"errcode":"M_UNRECOGNIZED"}"#),
            Some(false)
        );
        assert_eq!(media_support(500, b""), None);
        assert_eq!(
            media_support(200, b"{}"),
            None,
            "no token and yet an answer"
        );
    }

    fn all_good() -> Facts {
        Facts {
            client_api: true,
            https: Some(true),
            cors: Cors {
                well_known: Some(true),
                client_api: Some(true),
            },
            sliding_sync: Some(true),
            login: vec![LoginWay::Password],
            auth_metadata: None,
            authenticated_media: Some(true),
        }
    }

    #[test]
    fn each_app_follows_its_rule() {
        let good = all_good();
        for app in App::ALL {
            assert_eq!(good.verdict(app).works, Works::Yes, "{app:?}");
            assert_eq!(good.verdict(app).reason, None);
        }
        let works = |f: &Facts| App::ALL.map(|a| f.verdict(a).works);
        use Works::{No, Partly, Yes};
        // Order: Element web, Cinny, Element X, Element mobile, FluffyChat.
        let mut f = all_good();
        f.cors.well_known = Some(false);
        assert_eq!(works(&f), [No, No, Yes, Yes, Yes]);
        let mut f = all_good();
        f.cors.client_api = Some(false);
        assert_eq!(works(&f), [No, No, Yes, Yes, Yes]);
        let mut f = all_good();
        f.https = Some(false);
        assert_eq!(works(&f), [No, No, Yes, Yes, Yes]);
        let mut f = all_good();
        f.sliding_sync = Some(false);
        assert_eq!(works(&f), [Yes, Yes, No, Yes, Yes]);
        let mut f = all_good();
        f.authenticated_media = Some(false);
        assert_eq!(works(&f), [Partly, Partly, Partly, Partly, Partly]);
        assert_eq!(
            f.verdict(App::Fluffychat).reason.as_deref(),
            Some("images will not load: no authenticated media")
        );
        // Next-generation auth only, found only on the old auth_issuer path: Element X cannot
        // log in; with the metadata, or with a password too, it can.
        let mut f = all_good();
        f.login = vec![LoginWay::Oauth];
        f.auth_metadata = Some(MetadataPath::IssuerOnly);
        assert_eq!(works(&f), [Yes, Yes, No, Yes, Yes]);
        f.auth_metadata = Some(MetadataPath::Unstable);
        assert_eq!(works(&f), [Yes, Yes, Yes, Yes, Yes]);
        // Two things missing: the one that stops the app first leads the reason.
        let mut f = all_good();
        f.authenticated_media = Some(false);
        f.cors.well_known = Some(false);
        let v = f.verdict(App::Cinny);
        assert_eq!(v.works, No);
        assert_eq!(v.missing, [Check::CorsWellKnown, Check::AuthenticatedMedia]);
        // Not measured does not count against an app.
        let mut f = all_good();
        f.authenticated_media = None;
        f.cors.well_known = None;
        assert_eq!(works(&f), [Yes, Yes, Yes, Yes, Yes]);
        // Without the client API nothing works, and that is the reason.
        let down = unreachable("https://x.test/_matrix/client/versions: HTTP 502");
        for app in App::ALL {
            let v = down.apps.get(app);
            assert_eq!(v.works, No);
            assert_eq!(v.missing, [Check::ClientApi]);
        }
        assert_eq!(down.passes(Check::ClientApi), Some(false));
    }

    #[test]
    fn every_check_is_needed_by_some_app_and_listed() {
        for check in Check::ALL {
            assert!(
                App::ALL.iter().any(|a| a.needs().contains(&check)),
                "{check:?} decides nothing"
            );
        }
        for app in App::ALL {
            assert_eq!(App::parse(app.as_str()), Some(app));
        }
    }
}
