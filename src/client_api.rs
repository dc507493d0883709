//! The client API, checked the way Matrix clients discover it (spec client-server API §
//! Server Discovery): `GET https://<hostname>/.well-known/matrix/client` → `m.homeserver.base_url`
//! → `GET <base_url>/_matrix/client/versions`. A server can federate fine while its client API
//! is down, and the reverse; newcomers' apps only ever talk to this one.
//!
//! Outcomes follow the spec's table: 404 → IGNORE (the client keeps `https://<hostname>`);
//! another status, an empty or non-JSON body, or a missing `base_url` → FAIL_PROMPT; a
//! `base_url` that is not a URL, or a `/versions` that errors or has the wrong shape →
//! FAIL_ERROR. Redirects are not followed (that is new in v1.20, not yet released).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::dns::Dns;
use crate::net_guard::NetGuard;
use crate::server_name::{Host, ServerName};
use crate::{classify, text};

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
}

/// Checks client APIs.
pub struct ClientChecker {
    client: reqwest::Client,
    timeout: Duration,
}

impl ClientChecker {
    /// A checker using the guarded resolver and verifying TLS.
    pub fn new(
        dns: Dns,
        guard: NetGuard,
        tls: rustls::ClientConfig,
        timeout: Duration,
    ) -> ClientChecker {
        ClientChecker {
            // One idle connection, so the second /versions request measures a warm connection.
            client: crate::http::guarded_client(dns, guard, tls, 1),
            timeout,
        }
    }

    /// Runs the check for `name`, bounded by the timeout as a whole.
    pub async fn check(&self, name: &str) -> ClientReport {
        match tokio::time::timeout(self.timeout, self.check_unbounded(name)).await {
            Ok(report) => report,
            Err(_) => ClientReport {
                discovery: Discovery::FailError,
                base_url: None,
                ok: false,
                latency_ms: None,
                versions: Vec::new(),
                error: Some(format!(
                    "the client API check did not finish within {}",
                    humantime::format_duration(self.timeout)
                )),
            },
        }
    }

    async fn check_unbounded(&self, name: &str) -> ClientReport {
        let failed = |discovery, error: String| ClientReport {
            discovery,
            base_url: None,
            ok: false,
            latency_ms: None,
            versions: Vec::new(),
            error: Some(error),
        };
        let Ok(parsed) = ServerName::parse(name) else {
            return failed(Discovery::FailError, "invalid server name".into());
        };
        let hostname = match parsed.host() {
            Host::Dns(h) => h.clone(),
            other => other.to_string(),
        };
        let fallback = format!("https://{hostname}");
        let url = format!("{fallback}/.well-known/matrix/client");
        let (discovery, base_url) = match self.get(&url).await {
            Err(e) => return failed(Discovery::FailPrompt, format!("{url}: {e}")),
            Ok((404, _, _)) => (Discovery::Ignore, fallback),
            Ok((status, _, _)) if status != 200 => {
                return failed(Discovery::FailPrompt, format!("{url}: HTTP {status}"));
            }
            Ok((_, body, _)) => match parse_well_known(&body) {
                Ok(base) => (Discovery::Found, base),
                Err((d, why)) => return failed(d, format!("{url}: {why}")),
            },
        };
        let versions_url = format!("{}/_matrix/client/versions", base_url.trim_end_matches('/'));
        let mut report = ClientReport {
            discovery,
            base_url: Some(text::cap(&base_url)),
            ok: false,
            latency_ms: None,
            versions: Vec::new(),
            error: None,
        };
        // Twice: the first request pays for DNS, TCP and TLS; the second is what a client
        // that is already connected waits for.
        for attempt in 0..2 {
            match self.get(&versions_url).await {
                Err(e) => {
                    report.discovery = Discovery::FailError;
                    report.error = Some(format!("{versions_url}: {e}"));
                    return report;
                }
                Ok((status, body, elapsed)) => {
                    if status != 200 {
                        report.discovery = Discovery::FailError;
                        report.error = Some(format!("{versions_url}: HTTP {status}"));
                        return report;
                    }
                    match parse_versions(&body) {
                        Ok(v) => report.versions = v,
                        Err(why) => {
                            report.discovery = Discovery::FailError;
                            report.error = Some(format!("{versions_url}: {why}"));
                            return report;
                        }
                    }
                    if attempt == 1 {
                        report.latency_ms = Some(crate::ms(elapsed));
                    }
                }
            }
        }
        report.ok = true;
        report
    }

    /// GET `url`: status, capped body, and time to the response head.
    async fn get(&self, url: &str) -> Result<(u16, Vec<u8>, Duration), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
        let started = Instant::now();
        let request = self.client.get(parsed.clone()).timeout(self.timeout).send();
        let mut response = match tokio::time::timeout(self.timeout, request).await {
            Err(_) => {
                return Err(format!(
                    "no answer within {}",
                    humantime::format_duration(self.timeout)
                ));
            }
            Ok(Err(e)) => return Err(classify::reqwest_error(&e, &parsed).message),
            Ok(Ok(r)) => r,
        };
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let deadline = started + self.timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, response.chunk()).await {
                Err(_) => return Err("the body did not arrive in time".into()),
                Ok(Err(e)) => {
                    return Err(format!(
                        "the body could not be read: {}",
                        classify::chain_text(&e)
                    ));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(format!("the body is larger than {} KiB", MAX_BODY / 1024));
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
        Ok((status, body, elapsed))
    }
}

/// `m.homeserver.base_url` from a client well-known body, or the spec's failure outcome.
pub fn parse_well_known(body: &[u8]) -> Result<String, (Discovery, String)> {
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
    match reqwest::Url::parse(base) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(base.to_owned()),
        _ => Err((
            Discovery::FailError,
            format!("base_url {:?} is not an http(s) URL", text::cap(base)),
        )),
    }
}

/// The `versions` list of a `/_matrix/client/versions` body (required: an array of strings).
pub fn parse_versions(body: &[u8]) -> Result<Vec<String>, String> {
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
            .unwrap(),
            "https://matrix-client.matrix.org"
        );
        assert_eq!(
            parse_well_known(br#"{"m.homeserver":{"base_url":"https://x.org/"}}"#).unwrap(),
            "https://x.org/"
        );
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
