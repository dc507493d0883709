//! `/api/v1/public_servers.json`: the monitored servers in the shape public server lists
//! publish (servers.joinmatrix.org's `public_servers` array, as Matrix clients' sign-in pages
//! read it — FluffyChat's `PublicHomeserverData`: `name`, `client_domain`, `server_domain`,
//! `website`, `reg_method`, `reg_link`, `online_status`, `email`, `captcha`, `sliding_sync`,
//! `ipv6`, `languages`, …), filled from measurements rather than by hand, plus mxping's own
//! numbers under `mxping`. A client can point its server picker here instead.
//!
//! Where each field comes from: `name` the server list; `client_domain` the client API's base
//! URL as discovery found it (host, and port and path when it has them); `server_domain` the
//! delegated federation name; `description`, `website` (the list's `homepage`), `languages`,
//! `staff_jur`, `rules`, `privacy` the server list; `reg_method`, `reg_link`,
//! `using_vanilla_reg`, `email`, `captcha` the sign-up check; `sliding_sync` the apps' check;
//! `software`, `version`, `ipv6` (an IPv6 address answered) the last round; `online_status`
//! the 30-day uptime.
//!
//! By default only the servers a newcomer can join now are listed (open, after verification,
//! or on the website), as a sign-up list should; `?all=true` lists every monitored server.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::AppState;
use crate::discovery::IpFamily;
use crate::probe::signup::SignupStatus;
use crate::scheduler::ServerView;

#[derive(Deserialize)]
pub(super) struct ListQuery {
    all: Option<bool>,
}

#[derive(Serialize)]
struct PublicList {
    public_servers: Vec<PublicServer>,
}

/// One entry, with the list's field names and types (clients cast them strictly: booleans
/// are always present, `online_status` is a whole number).
#[derive(Serialize)]
struct PublicServer {
    /// The Matrix server name (the part after `:` in user IDs).
    name: String,
    /// The host of the client API's base URL (what a client connects to).
    client_domain: String,
    /// The host federation is delegated to.
    server_domain: String,
    description: Option<String>,
    /// The server's website (the server list's `homepage`).
    website: Option<String>,
    /// How to sign up, in the words these lists use: "In-client" (in the app, open or after
    /// verification), "Registration token", "SSO" (on a web page); null when sign-up is
    /// closed or not known, which is how readers (FluffyChat's sign-up list) leave a server
    /// out.
    reg_method: Option<&'static str>,
    /// Where to sign up outside the app: the authorization server, else the web client.
    reg_link: Option<String>,
    /// Sign-up happens through the homeserver's own `/register`.
    using_vanilla_reg: bool,
    email: bool,
    captcha: bool,
    software: Option<String>,
    version: Option<String>,
    /// Simplified sliding sync (what Element X needs), measured; null before the check.
    sliding_sync: Option<bool>,
    /// Uptime over 30 days, whole percent.
    online_status: u8,
    /// An IPv6 address answered in the last round.
    ipv6: bool,
    languages: Vec<String>,
    staff_jur: Option<String>,
    rules: Option<String>,
    privacy: Option<String>,
    mxping: Measured,
}

/// mxping's own fields.
#[derive(Serialize)]
struct Measured {
    status: &'static str,
    federation_ok: bool,
    latency_ms: Option<f64>,
    uptime_24h: Option<f64>,
    uptime_30d: Option<f64>,
    uptime_90d: Option<f64>,
    signup_status: Option<SignupStatus>,
    #[serde(with = "time::serde::rfc3339::option")]
    checked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    signup_checked_at: Option<OffsetDateTime>,
}

/// The host of a URL, or the text itself.
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| url.to_owned())
}

/// A base URL without its scheme: the host, with the port and path when it has them
/// (`matrix.example.org:8448/prefix`), so a client that puts `https://` in front reaches the
/// same client API.
fn client_domain_of(url: &str) -> String {
    let Ok(u) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let Some(host) = u.host_str() else {
        return url.to_owned();
    };
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = u.path().trim_end_matches('/');
    format!("{host}{port}{path}")
}

fn entry(v: &ServerView) -> PublicServer {
    let r = &v.report;
    let signup = v.signup.as_deref();
    let has = |stage: &str| signup.is_some_and(|s| s.stages.iter().any(|x| x == stage));
    let reg_method = signup.and_then(|s| match s.status {
        SignupStatus::Open | SignupStatus::RequiresVerification => Some("In-client"),
        SignupStatus::InviteOnly => Some("Registration token"),
        SignupStatus::External => Some("SSO"),
        SignupStatus::Closed | SignupStatus::Unknown => None,
    });
    let server_domain = r
        .discovery
        .as_ref()
        .map(|d| host_of(&format!("https://{}", d.delegated_name)))
        .unwrap_or_else(|| r.name.clone());
    let client_domain = r
        .client
        .as_ref()
        .and_then(|c| c.base_url.as_deref())
        .map(client_domain_of)
        .unwrap_or_else(|| r.name.clone());
    PublicServer {
        name: r.name.clone(),
        client_domain,
        server_domain,
        description: v.description.get("en").cloned(),
        website: v.facts.homepage.clone(),
        reg_method,
        reg_link: signup
            .and_then(|s| s.issuer.clone())
            .or_else(|| v.client_url.clone()),
        using_vanilla_reg: signup.is_some_and(|s| {
            matches!(
                s.status,
                SignupStatus::Open | SignupStatus::RequiresVerification | SignupStatus::InviteOnly
            )
        }),
        email: has("m.login.email.identity"),
        captcha: has("m.login.recaptcha"),
        software: r.software.as_ref().map(|s| s.name.clone()),
        version: r.software.as_ref().map(|s| s.version.clone()),
        sliding_sync: v.clients.as_ref().and_then(|c| c.sliding_sync),
        online_status: v
            .uptime("30d")
            .map_or(0, |u| (u * 100.0).round().clamp(0.0, 100.0) as u8),
        ipv6: r
            .addresses
            .iter()
            .any(|a| a.ok && a.ip_family == IpFamily::Ipv6),
        languages: v.facts.languages.clone(),
        staff_jur: v.facts.jurisdiction.clone(),
        rules: v.facts.rules_url.clone(),
        privacy: v.facts.privacy_url.clone(),
        mxping: Measured {
            status: r.status.as_str(),
            federation_ok: r.addresses.iter().any(|a| a.ok),
            latency_ms: r.latency_ms,
            uptime_24h: v.uptime("24h"),
            uptime_30d: v.uptime("30d"),
            uptime_90d: v.uptime("90d"),
            signup_status: signup.map(|s| s.status),
            checked_at: r.checked_at,
            signup_checked_at: signup.map(|s| s.checked_at),
        },
    }
}

pub(super) async fn public_servers(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Response {
    let all = query.all.unwrap_or(false);
    let snap = state.board.snapshot();
    let public_servers = snap
        .servers
        .iter()
        .filter(|v| all || v.joinable())
        .map(|v| entry(v))
        .collect();
    Json(PublicList { public_servers }).into_response()
}

#[cfg(test)]
mod tests {
    use super::client_domain_of;

    #[test]
    fn the_client_domain_keeps_a_port_and_a_path() {
        assert_eq!(
            client_domain_of("https://matrix.example.org"),
            "matrix.example.org"
        );
        assert_eq!(
            client_domain_of("https://matrix.example.org/"),
            "matrix.example.org"
        );
        assert_eq!(
            client_domain_of("https://example.org:8448/matrix/"),
            "example.org:8448/matrix"
        );
        assert_eq!(client_domain_of("https://example.org:443"), "example.org");
    }
}
