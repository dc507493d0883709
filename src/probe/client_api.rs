//! The client API, checked the way Matrix clients discover it (spec client-server API §
//! Server Discovery): `GET https://<hostname>/.well-known/matrix/client` → `m.homeserver.base_url`
//! → `GET <base_url>/_matrix/client/versions`. A server can federate fine while its client API
//! is down, and the reverse; newcomers' apps only ever talk to this one.
//!
//! Outcomes follow the spec's table: 404 → IGNORE (the client keeps `https://<hostname>`);
//! another status, an empty or non-JSON body, or a missing `base_url` → FAIL_PROMPT; a
//! `base_url` that is not a URL, or a `/versions` that errors or has the wrong shape →
//! FAIL_ERROR. An `m.identity_server` without `base_url` → FAIL_PROMPT; one whose
//! `/_matrix/identity/v2` does not answer → FAIL_ERROR. Redirects are followed, as the spec says
//! they SHOULD be and browsers and SDKs do: at most 10, loops refused, never from HTTPS to plain
//! HTTP, every hop's address through the private-address guard.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::error::{ErrorKind, ProbeError};
use crate::net::fetch::{Connection, Endpoint, Fetcher};
use crate::server_name::ServerName;
use crate::text;

/// Cap on either body.
const MAX_BODY: usize = 64 * 1024;

/// What the spec's discovery table says to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Discovery {
    /// A valid well-known gave the base URL.
    Found,
    /// 404: the client keeps `https://<hostname>`.
    Ignore,
    /// The well-known is broken: clients ask the user for a homeserver URL.
    FailPrompt,
    /// The base URL or the server behind it is broken: clients show an error.
    FailError,
}

/// The client API check of one server.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClientReport {
    /// The discovery outcome.
    pub discovery: Discovery,
    /// The base URL clients would use.
    pub base_url: Option<String>,
    /// `/versions` answered with a valid list.
    pub ok: bool,
    /// Time to the response head of `/versions` on a warm connection, ms.
    pub latency_ms: Option<f64>,
    /// Spec versions the server supports (capped).
    pub versions: Vec<String>,
    /// What went wrong, in words.
    pub error: Option<String>,
    /// Redirects followed on the way (well-known and `/versions`), in order.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub redirects: Vec<String>,
    /// The identity server the well-known names, if any, and whether it answered.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub identity_server: Option<IdentityServer>,
}

/// The `m.identity_server` of a client well-known.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdentityServer {
    /// Its `base_url` (capped).
    pub base_url: String,
    /// `/_matrix/identity/v2` answered 200 with a JSON object.
    pub ok: bool,
}

/// Checks client APIs.
pub struct ClientChecker {
    fetcher: Fetcher,
    timeout: Duration,
}

/// The identity server's status endpoint (identity service API v2).
const IDENTITY_PATH: &str = "/_matrix/identity/v2";

impl ClientReport {
    fn failed(discovery: Discovery, error: String) -> ClientReport {
        ClientReport {
            discovery,
            base_url: None,
            ok: false,
            latency_ms: None,
            versions: Vec::new(),
            error: Some(error),
            redirects: Vec::new(),
            identity_server: None,
        }
    }
}

impl ClientChecker {
    /// A checker fetching through `fetcher` (guarded, verifying TLS).
    pub fn new(fetcher: Fetcher, timeout: Duration) -> ClientChecker {
        ClientChecker { fetcher, timeout }
    }

    /// Runs the check for `name`, bounded by the timeout as a whole.
    pub async fn check(&self, name: &str) -> ClientReport {
        let mut redirects = Vec::new();
        let outcome =
            tokio::time::timeout(self.timeout, self.check_unbounded(name, &mut redirects)).await;
        let mut report = outcome.unwrap_or_else(|_| {
            ClientReport::failed(
                Discovery::FailError,
                format!(
                    "the client API check did not finish within {}",
                    humantime::format_duration(self.timeout)
                ),
            )
        });
        report.redirects = redirects.into_iter().map(|r| text::cap(&r)).collect();
        report
    }

    /// The base URL a client would use for `name` (the well-known step of discovery), or why a
    /// client could not find one.
    pub async fn base_url(&self, name: &ServerName) -> Result<String, ProbeError> {
        match self.well_known(name, &mut |_| {}).await {
            Ok((_, base, _)) => Ok(base),
            Err((_, error)) => Err(error),
        }
    }

    /// The spec's well-known step: the outcome, the base URL and the identity server named.
    async fn well_known(
        &self,
        name: &ServerName,
        hop: &mut (dyn FnMut(&Endpoint) + Send),
    ) -> Result<(Discovery, String, Option<Option<String>>), (Discovery, ProbeError)> {
        // The hostname exactly as typed: a name made of digits stays a DNS name.
        let start = Endpoint::https(name.host().clone(), 443, "/.well-known/matrix/client");
        let fallback = start.with_path("");
        let mut conn = None;
        let well_known = self
            .fetcher
            .get_following(&start, MAX_BODY, &mut conn, hop)
            .await;
        let fail = |d, kind, message: String| Err((d, ProbeError::new(kind, message)));
        match well_known {
            Err(e) => fail(
                Discovery::FailPrompt,
                e.kind,
                format!("{start}: {}", e.message),
            ),
            Ok(f) if f.response.status.as_u16() == 404 => {
                Ok((Discovery::Ignore, fallback.to_string(), None))
            }
            Ok(f) if f.response.status.as_u16() != 200 => fail(
                Discovery::FailPrompt,
                ErrorKind::HttpStatus,
                format!("{}: HTTP {}", f.url, f.response.status),
            ),
            Ok(f) => match parse_well_known(&f.response.body) {
                Ok(found) => Ok((Discovery::Found, found.homeserver, found.identity_server)),
                Err((d, why)) => fail(d, ErrorKind::InvalidResponse, format!("{}: {why}", f.url)),
            },
        }
    }

    async fn check_unbounded(&self, name: &str, redirects: &mut Vec<String>) -> ClientReport {
        let Ok(parsed) = ServerName::parse(name) else {
            return ClientReport::failed(Discovery::FailError, "invalid server name".into());
        };
        let mut hop = |e: &Endpoint| redirects.push(e.to_string());
        let (discovery, base_url, identity) = match self.well_known(&parsed, &mut hop).await {
            Ok(found) => found,
            Err((d, e)) => return ClientReport::failed(d, e.message),
        };
        let mut report = ClientReport {
            discovery,
            base_url: Some(text::cap(&base_url)),
            ok: false,
            latency_ms: None,
            versions: Vec::new(),
            error: None,
            redirects: Vec::new(),
            identity_server: None,
        };
        let versions_url = match base_endpoint(&base_url, "/_matrix/client/versions") {
            Ok(u) => u,
            Err(why) => {
                report.discovery = Discovery::FailError;
                report.error = Some(why);
                return report;
            }
        };
        // Twice: the first request pays for DNS, TCP and TLS (and follows any redirect); the
        // second, to where the first ended, is what an already-connected client waits for.
        let mut conn: Option<Connection> = None;
        let mut url = versions_url;
        for attempt in 0..2 {
            let answer = self
                .fetcher
                .get_following(&url, MAX_BODY, &mut conn, &mut hop)
                .await;
            let why = match answer {
                Err(e) => Some(format!("{url}: {}", e.message)),
                Ok(f) if f.response.status.as_u16() != 200 => {
                    Some(format!("{}: HTTP {}", f.url, f.response.status))
                }
                Ok(f) => match parse_versions(&f.response.body) {
                    Err(why) => Some(format!("{}: {why}", f.url)),
                    Ok(v) => {
                        report.versions = v;
                        if attempt == 1 {
                            report.latency_ms =
                                Some(crate::numbers::duration_ms(f.response.head_time));
                        }
                        url = f.url;
                        None
                    }
                },
            };
            if let Some(why) = why {
                report.discovery = Discovery::FailError;
                report.error = Some(why);
                return report;
            }
        }
        report.ok = true;
        // Spec step: an identity server named without a base_url → FAIL_PROMPT; one that does
        // not answer → FAIL_ERROR. The homeserver itself is fine either way, so `ok` stays.
        match identity {
            None => {}
            Some(None) => {
                report.discovery = Discovery::FailPrompt;
                report.error = Some(
                    "m.identity_server is present but has no base_url; clients ask the user".into(),
                );
            }
            Some(Some(is_base)) => {
                let answer = match base_endpoint(&is_base, IDENTITY_PATH) {
                    Err(why) => Err(why),
                    Ok(u) => {
                        let mut is_conn = None;
                        match self
                            .fetcher
                            .get_following(&u, MAX_BODY, &mut is_conn, &mut hop)
                            .await
                        {
                            Err(e) => Err(format!("{u}: {}", e.message)),
                            Ok(f) => {
                                check_identity(&f.url, f.response.status.as_u16(), &f.response.body)
                            }
                        }
                    }
                };
                let ok = answer.is_ok();
                report.identity_server = Some(IdentityServer {
                    base_url: text::cap(&is_base),
                    ok,
                });
                if let Err(why) = answer {
                    report.discovery = Discovery::FailError;
                    report.error = Some(format!(
                        "the identity server (m.identity_server) does not answer: {why}"
                    ));
                }
            }
        }
        report
    }
}

/// `base` (a base URL from a well-known) with `path` appended, as clients build it.
pub(crate) fn base_endpoint(base: &str, path: &str) -> Result<Endpoint, String> {
    let url = url::Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
        .map_err(|e| format!("{base:?} is not a URL: {e}"))?;
    Endpoint::from_url(&url).map_err(|e| text::cap(&e))
}

/// `/_matrix/identity/v2` must answer 200 with a JSON object.
fn check_identity(url: &Endpoint, status: u16, body: &[u8]) -> Result<(), String> {
    if status != 200 {
        return Err(format!("{url}: HTTP {status}"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(_)) => Ok(()),
        _ => Err(format!("{url}: the answer is not a JSON object")),
    }
}

/// What a valid client well-known names.
#[derive(Debug, PartialEq)]
pub(crate) struct ClientWellKnown {
    /// `m.homeserver.base_url`.
    pub homeserver: String,
    /// `m.identity_server`: absent (`None`), present without a `base_url` (`Some(None)`), or
    /// its `base_url`.
    pub identity_server: Option<Option<String>>,
}

/// `m.homeserver.base_url` from a client well-known body, or the spec's failure outcome.
pub(crate) fn parse_well_known(body: &[u8]) -> Result<ClientWellKnown, (Discovery, String)> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err((Discovery::FailPrompt, "the body is empty".into()));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| (Discovery::FailPrompt, format!("the body is not JSON ({e})")))?;
    let base = value
        .get("m.homeserver")
        .and_then(|h| h.get("base_url"))
        .and_then(Value::as_str)
        .ok_or((
            Discovery::FailPrompt,
            "m.homeserver.base_url is missing".to_owned(),
        ))?;
    match url::Url::parse(base) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
        _ => {
            return Err((
                Discovery::FailError,
                format!("base_url {:?} is not an http(s) URL", text::cap(base)),
            ));
        }
    }
    let identity_server = value.get("m.identity_server").map(|is| {
        is.get("base_url")
            .and_then(Value::as_str)
            .map(ToOwned::to_owned)
    });
    Ok(ClientWellKnown {
        homeserver: base.to_owned(),
        identity_server,
    })
}

/// The `versions` list of a `/_matrix/client/versions` body (required: an array of strings).
pub(crate) fn parse_versions(body: &[u8]) -> Result<Vec<String>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let list = value
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("\"versions\" is missing or not a list")?;
    list.iter()
        .take(32)
        .map(|v| {
            v.as_str()
                .map(|s| text::cap_to(s, 16))
                .ok_or_else(|| "a version is not a string".to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_outcomes_follow_the_spec_table() {
        assert_eq!(
            parse_well_known(
                br#"{"m.homeserver":{"base_url":"https://matrix-client.matrix.org"}}"#
            )
            .unwrap()
            .homeserver,
            "https://matrix-client.matrix.org"
        );
        let wk = parse_well_known(
            br#"{"m.homeserver":{"base_url":"https://x.org/"},"m.identity_server":{}}"#,
        )
        .unwrap();
        assert_eq!(wk.homeserver, "https://x.org/");
        assert_eq!(wk.identity_server, Some(None));
        let wk = parse_well_known(
            br#"{"m.homeserver":{"base_url":"https://x.org"},"m.identity_server":{"base_url":"https://id.x.org"}}"#,
        )
        .unwrap();
        assert_eq!(wk.identity_server, Some(Some("https://id.x.org".into())));
        for (body, outcome) in [
            (&b""[..], Discovery::FailPrompt),
            (b"  ", Discovery::FailPrompt),
            (b"<html>", Discovery::FailPrompt),
            (br#"{}"#, Discovery::FailPrompt),
            (br#"{"m.homeserver":{}}"#, Discovery::FailPrompt),
            (
                br#"{"m.homeserver":{"base_url":"not a url"}}"#,
                Discovery::FailError,
            ),
            (
                br#"{"m.homeserver":{"base_url":"ftp://x.org"}}"#,
                Discovery::FailError,
            ),
        ] {
            assert_eq!(
                parse_well_known(body).unwrap_err().0,
                outcome,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn versions_bodies() {
        assert_eq!(
            parse_versions(br#"{"versions":["v1.1","v1.11"],"unstable_features":{"x":true}}"#)
                .unwrap(),
            ["v1.1", "v1.11"]
        );
        assert!(parse_versions(br#"{"unstable_features":{}}"#).is_err());
        assert!(parse_versions(br#"{"versions":[1]}"#).is_err());
        assert!(parse_versions(b"nope").is_err());
    }
}
