//! One round against one target (design.md "Measurement model"): a fresh TCP connection
//! (timed), a TLS handshake verifying the certificate for the target's TLS name (timed; no SNI
//! for IP literals), then `pings` sequential `GET /_matrix/federation/v1/version` on that same
//! connection, each timed to the response head, and optionally `GET /_matrix/key/v2/server`.
//!
//! Every round ends within the configured timeout, reads bounded bodies and headers, and ends
//! with success or exactly one [`ErrorKind`]. Timing uses the monotonic clock around the
//! socket operations only, so the monitor's own scheduling never leaks into the numbers.

pub(crate) mod apps;
pub(crate) mod client_api;
pub(crate) mod federation;
pub(crate) mod keys;
pub(crate) mod signup;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1;
use hyper::header::{ACCEPT, CONNECTION, HOST, HeaderValue, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName as TlsServerName;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::discovery::{IpFamily, Target};
use crate::error::{ErrorKind, ProbeError};
use crate::net::classify;
use crate::net::guard::NetGuard;
use crate::net::stamp::{StampedTcp, Stamps};
use crate::net::tls::{CertInfo, ProbeTls, explain_certificate_error};
use crate::numbers::duration_ms as ms;
use crate::text;
use keys::KeyChecks;

/// The federation version endpoint.
pub(crate) const VERSION_PATH: &str = "/_matrix/federation/v1/version";
/// The server keys endpoint.
pub(crate) const KEYS_PATH: &str = "/_matrix/key/v2/server";
/// Cap on a `/version` body.
pub(crate) const MAX_VERSION_BODY: usize = 64 * 1024;
/// Cap on a `/key/v2/server` body.
pub(crate) const MAX_KEYS_BODY: usize = 256 * 1024;

/// How to probe.
#[derive(Clone, Debug)]
pub struct ProbeSettings {
    /// The whole round, connect to last byte, must finish within this.
    pub timeout: Duration,
    /// Number of `/version` requests per round.
    pub pings: u32,
    /// Also fetch and check `/_matrix/key/v2/server`.
    pub check_keys: bool,
}

/// Phase timings of one round, milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Phases {
    /// TCP connect.
    pub connect: Option<f64>,
    /// TLS handshake.
    pub tls: Option<f64>,
    /// Each `/version` request, to the response head.
    pub requests: Vec<f64>,
}

/// What the TLS handshake negotiated and the certificate the server sent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TlsFacts {
    /// e.g. `TLSv1_3`.
    pub version: String,
    /// e.g. `TLS13_AES_128_GCM_SHA256`.
    pub cipher: String,
    /// Key-exchange group, e.g. `X25519` or `secp256r1`.
    pub group: Option<String>,
    /// The server asked for another key share (one extra round trip in the TLS phase).
    pub hello_retry_request: bool,
    /// The server's certificate.
    pub certificate: Option<CertInfo>,
    /// The certificate verified for the expected name.
    pub certificate_valid: bool,
}

/// The software the server reports on `/version` (capped, control characters removed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Software {
    /// `server.name`, e.g. `Synapse`.
    pub name: String,
    /// `server.version`.
    pub version: String,
}

/// The key check of one address.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeysReport {
    /// The checks, when a JSON answer arrived.
    pub checks: Option<KeyChecks>,
    /// Why the key response could not be checked.
    pub error: Option<String>,
}

impl KeysReport {
    /// The response was fetched and every check passed.
    pub fn all_ok(&self) -> bool {
        self.checks.as_ref().is_some_and(|c| c.all_ok)
    }
}

/// The result of one round against one address.
#[derive(Clone, Debug, Serialize)]
pub struct AddressReport {
    /// The address probed.
    pub address: SocketAddr,
    /// `ipv4` or `ipv6`.
    pub ip_family: IpFamily,
    /// The round succeeded.
    pub ok: bool,
    /// Why it did not.
    pub error: Option<ProbeError>,
    /// Phase timings.
    pub phases_ms: Phases,
    /// Median of the request times: the headline latency.
    pub latency_ms: Option<f64>,
    /// Connect + TLS + first request: what a first contact costs.
    pub cold_ms: Option<f64>,
    /// TLS facts, once the handshake completed.
    pub tls: Option<TlsFacts>,
    /// From `/version`.
    pub software: Option<Software>,
    /// From `/_matrix/key/v2/server`, when enabled.
    pub keys: Option<KeysReport>,
    /// Observations in plain words.
    pub notes: Vec<String>,
    /// When the round started.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub started_at: OffsetDateTime,
}

impl AddressReport {
    /// A report for `address` before anything happened (not ok, no error yet).
    pub fn new(address: SocketAddr) -> Self {
        AddressReport {
            address,
            ip_family: IpFamily::of(address.ip()),
            ok: false,
            error: None,
            phases_ms: Phases::default(),
            latency_ms: None,
            cold_ms: None,
            tls: None,
            software: None,
            keys: None,
            notes: Vec::new(),
            started_at: OffsetDateTime::now_utc(),
        }
    }
}

/// Probes targets. Cheap to clone.
#[derive(Clone)]
pub struct Prober {
    guard: NetGuard,
    tls: ProbeTls,
    settings: ProbeSettings,
}

struct Connection {
    sender: http1::SendRequest<Empty<Bytes>>,
    /// Kernel receive stamps of the connection's socket, for request times.
    stamps: Arc<Stamps>,
    _task: crate::net::fetch::ConnTask,
}

impl Prober {
    /// A prober connecting through `guard` with the given TLS setup and settings.
    pub fn new(guard: NetGuard, tls: ProbeTls, settings: ProbeSettings) -> Prober {
        Prober {
            guard,
            tls,
            settings,
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &ProbeSettings {
        &self.settings
    }

    /// Runs one round against `target` of `server_name` (the original name, for key checks).
    pub async fn probe(&self, target: &Target, server_name: &str) -> AddressReport {
        let mut report = AddressReport::new(target.address);
        if let Some(blocked) = &target.blocked {
            report.error = Some(blocked.clone());
            return report;
        }
        let timeout = self.settings.timeout;
        let outcome =
            tokio::time::timeout(timeout, self.run(target, server_name, &mut report)).await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => report.error = Some(e),
            Err(_) => report.error = Some(timeout_error(&report, target, timeout)),
        }
        report.ok = report.error.is_none();
        let requests = &report.phases_ms.requests;
        report.latency_ms = median(requests);
        if let (Some(c), Some(t), Some(first)) = (
            report.phases_ms.connect,
            report.phases_ms.tls,
            requests.first(),
        ) {
            report.cold_ms = Some(round3(c + t + first));
        }
        report
    }

    async fn run(
        &self,
        target: &Target,
        server_name: &str,
        report: &mut AddressReport,
    ) -> Result<(), ProbeError> {
        let (mut conn, cert_error) = self.open(target, Some(report)).await?;
        let mut reconnected = 0;
        for i in 0..self.settings.pings {
            if i > 0 && conn.sender.ready().await.is_err() {
                // The server closed the connection after the last answer (no keep-alive).
                // The next ping uses a new connection; its time still excludes the handshake.
                conn = self.open(target, None).await?.0;
                reconnected += 1;
            }
            let (elapsed, status, body) =
                request(&mut conn, target, VERSION_PATH, MAX_VERSION_BODY).await?;
            report.phases_ms.requests.push(ms(elapsed));
            if !status.is_success() {
                return Err(ProbeError::new(
                    ErrorKind::HttpStatus,
                    format!("HTTP {status} from {VERSION_PATH}{}", body_hint(&body)),
                ));
            }
            report.software = Some(parse_version(&body)?);
        }
        if reconnected > 0 {
            report.notes.push(format!(
                "the server closes the connection after each answer (no keep-alive); {reconnected} \
                 ping(s) needed a new connection, whose handshake is not counted in the ping time"
            ));
        }
        if self.settings.check_keys {
            if conn.sender.ready().await.is_err() {
                conn = self.open(target, None).await?.0;
            }
            report.keys = Some(
                match request(&mut conn, target, KEYS_PATH, MAX_KEYS_BODY).await {
                    Err(e) => KeysReport {
                        checks: None,
                        error: Some(e.message),
                    },
                    Ok((_, status, _)) if !status.is_success() => KeysReport {
                        checks: None,
                        error: Some(format!("HTTP {status} from {KEYS_PATH}")),
                    },
                    Ok((_, _, body)) => match serde_json::from_slice::<Value>(&body) {
                        Err(e) => KeysReport {
                            checks: None,
                            error: Some(format!("{KEYS_PATH} did not return JSON: {e}")),
                        },
                        Ok(v) => {
                            let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos()
                                / 1_000_000) as i64;
                            KeysReport {
                                checks: Some(keys::check_keys(&v, server_name, now_ms)),
                                error: None,
                            }
                        }
                    },
                },
            );
        }
        match cert_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends `gets` (path and `Authorization` header, each built when its turn comes from the
    /// path) one after another on one connection to `target`, within `timeout`, the
    /// certificate verified as for a round. Stops at the first that fails to get an answer;
    /// `next` decides from each answer whether to send the following one.
    pub(crate) async fn exchange(
        &self,
        target: &Target,
        gets: &[(String, String)],
        limit: usize,
        timeout: Duration,
        mut next: impl FnMut(&Answer) -> bool,
    ) -> Result<Vec<Answer>, ProbeError> {
        if let Some(blocked) = &target.blocked {
            return Err(blocked.clone());
        }
        let connected = std::sync::atomic::AtomicBool::new(false);
        let run = async {
            let (mut conn, cert_error) = self.open(target, None).await?;
            if let Some(e) = cert_error {
                return Err(e);
            }
            connected.store(true, std::sync::atomic::Ordering::Relaxed);
            let mut answers = Vec::new();
            for (path, auth) in gets {
                if conn.sender.ready().await.is_err() {
                    conn = self.open(target, None).await?.0;
                }
                let (elapsed, status, body) =
                    send(&mut conn, target, path, Some(auth), limit).await?;
                let answer = Answer {
                    elapsed,
                    status,
                    body,
                };
                let more = next(&answer);
                answers.push(answer);
                if !more {
                    break;
                }
            }
            Ok(answers)
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => {
                let t = humantime::format_duration(timeout);
                let addr = target.address;
                Err(if connected.load(std::sync::atomic::Ordering::Relaxed) {
                    ProbeError::new(
                        ErrorKind::Timeout,
                        format!("{addr} took the request and did not answer within {t}"),
                    )
                } else {
                    ProbeError::new(
                        ErrorKind::ConnectTimeout,
                        format!("no connection to {addr} within {t}"),
                    )
                })
            }
        }
    }

    /// Connects and completes the TLS and HTTP handshakes. With `report`, records the timings
    /// and TLS facts. Returns the certificate problem separately: the round goes on so the
    /// report can say what the server answers, and fails with it at the end.
    async fn open(
        &self,
        target: &Target,
        report: Option<&mut AddressReport>,
    ) -> Result<(Connection, Option<ProbeError>), ProbeError> {
        let addr = target.address;
        let shown = addr.to_string();
        let t0 = Instant::now();
        // Through the guard even though discovery checked this address: the probe never
        // relies on its caller for that.
        let tcp = StampedTcp::new(self.guard.connect(addr).await?);
        let connect_time = t0.elapsed();
        let stamps = tcp.stamps();

        let (config, verifier) = self.tls.for_connection();
        let name = match &target.tls_name {
            Some(n) => TlsServerName::try_from(n.clone()).map_err(|_| {
                ProbeError::new(
                    ErrorKind::InvalidName,
                    format!("{n:?} is not a valid TLS name"),
                )
            })?,
            None => TlsServerName::IpAddress(addr.ip().into()),
        };
        let expected = target
            .tls_name
            .clone()
            .unwrap_or_else(|| addr.ip().to_string());
        // Recorded before the TLS phase so a timeout in it is reported as a TLS timeout.
        let mut report = report;
        if let Some(r) = report.as_deref_mut() {
            r.phases_ms.connect = Some(ms(connect_time));
        }
        stamps.arm();
        let t1 = Instant::now();
        let tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| classify::tls_error(&e, &shown, &expected))?;
        let measured = t1.elapsed();
        // By the kernel's stamps when they can be right (see net::stamp).
        let tls_time = stamps
            .exchange()
            .filter(|d| *d <= measured)
            .unwrap_or(measured);

        let certificate = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(CertInfo::parse);
        let cert_error = match verifier.verdict() {
            Some(Ok(())) => None,
            Some(Err(e)) => Some(ProbeError::new(
                ErrorKind::TlsCertificate,
                explain_certificate_error(&e, &expected, certificate.as_ref()),
            )),
            None => Some(ProbeError::new(
                ErrorKind::TlsCertificate,
                format!("{shown} presented no certificate"),
            )),
        };
        if let Some(r) = report {
            r.phases_ms.tls = Some(ms(tls_time));
            r.tls = Some(tls_facts(&tls, certificate, cert_error.is_none()));
        }

        // The connection task ends with the round, whatever way it ends (ConnTask aborts it).
        let (sender, task) = crate::net::fetch::handshake(TokioIo::new(tls)).await?;
        Ok((
            Connection {
                sender,
                stamps,
                _task: task,
            },
            cert_error,
        ))
    }
}

/// One answer of [`Prober::exchange`].
pub(crate) struct Answer {
    /// Time to the response head.
    pub elapsed: Duration,
    /// Its status.
    pub status: StatusCode,
    /// Its body, within the limit.
    pub body: Bytes,
}

fn tls_facts(tls: &TlsStream<StampedTcp>, certificate: Option<CertInfo>, valid: bool) -> TlsFacts {
    let conn = tls.get_ref().1;
    TlsFacts {
        version: conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default(),
        group: conn
            .negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name())),
        hello_retry_request: conn.handshake_kind()
            == Some(rustls::HandshakeKind::FullWithHelloRetryRequest),
        certificate,
        certificate_valid: valid,
    }
}

/// Sends one GET on `conn` and reads the body through `limit`. Returns the time to the
/// response head, the status and the body.
async fn request(
    conn: &mut Connection,
    target: &Target,
    path: &str,
    limit: usize,
) -> Result<(Duration, StatusCode, Bytes), ProbeError> {
    send(conn, target, path, None, limit).await
}

/// [`request`] with an `Authorization` header (a signed federation request).
async fn send(
    conn: &mut Connection,
    target: &Target,
    path: &str,
    authorization: Option<&str>,
    limit: usize,
) -> Result<(Duration, StatusCode, Bytes), ProbeError> {
    let host = HeaderValue::from_str(&target.host_header).map_err(|_| {
        ProbeError::new(
            ErrorKind::InvalidName,
            format!("{:?} is not a valid Host header", target.host_header),
        )
    })?;
    let mut req = Request::get(path)
        .header(HOST, host)
        .header(USER_AGENT, crate::USER_AGENT)
        .header(ACCEPT, "application/json");
    if let Some(auth) = authorization {
        let value = HeaderValue::from_str(auth).map_err(|_| {
            ProbeError::new(
                ErrorKind::InvalidName,
                "the server name cannot be written in an Authorization header".to_owned(),
            )
        })?;
        req = req.header(hyper::header::AUTHORIZATION, value);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| ProbeError::new(ErrorKind::InvalidName, format!("{path}: {e}")))?;
    let (response, elapsed) =
        crate::net::fetch::send_timed(&mut conn.sender, req, path, Some(&conn.stamps)).await?;
    let status = response.status();
    let closing = response
        .headers()
        .get(CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ProbeError::new(
                    ErrorKind::BodyTooLarge,
                    format!("the {path} body is larger than {} KiB", limit / 1024),
                )
            } else {
                let detail = classify::chain_text(e.as_ref());
                let msg = if detail.contains("reset by peer") {
                    format!(
                        "the server reset the connection (TCP RST) in the middle of the {path} body"
                    )
                } else {
                    format!("the {path} body was cut off: {detail}")
                };
                ProbeError::new(ErrorKind::InvalidResponse, msg)
            }
        })?
        .to_bytes();
    if closing {
        // Let `ready()` see the close rather than racing the server's FIN.
        tokio::task::yield_now().await;
    }
    Ok((elapsed, status, body))
}

fn timeout_error(report: &AddressReport, target: &Target, timeout: Duration) -> ProbeError {
    let t = humantime::format_duration(timeout);
    let addr = target.address;
    if report.phases_ms.connect.is_none() {
        ProbeError::new(
            ErrorKind::ConnectTimeout,
            format!("no TCP connection to {addr} within {t}"),
        )
    } else if report.phases_ms.tls.is_none() {
        ProbeError::new(
            ErrorKind::Timeout,
            format!("the TLS handshake with {addr} did not finish within {t}"),
        )
    } else {
        let done = report.phases_ms.requests.len();
        ProbeError::new(
            ErrorKind::Timeout,
            format!(
                "the round did not finish within {t} ({done} request(s) answered; the server is too slow or stalled)"
            ),
        )
    }
}

fn body_hint(body: &[u8]) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {}", text::excerpt(body, 120))
    }
}

/// Parses a `/version` body. No property is required by the schema (edge case H3), but the
/// body must be a JSON object.
fn parse_version(body: &[u8]) -> Result<Software, ProbeError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let what = if body.trim_ascii_start().starts_with(b"<") {
            "HTML, not JSON"
        } else {
            "not JSON"
        };
        ProbeError::new(
            ErrorKind::InvalidResponse,
            format!(
                "{VERSION_PATH} returned {what} ({e}): {}",
                text::excerpt(body, 80)
            ),
        )
    })?;
    if !value.is_object() {
        return Err(ProbeError::new(
            ErrorKind::InvalidResponse,
            format!("{VERSION_PATH} returned JSON that is not an object"),
        ));
    }
    let field = |k: &str| {
        value
            .get("server")
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .map(text::cap)
            .unwrap_or_default()
    };
    Ok(Software {
        name: field("name"),
        version: field("version"),
    })
}

/// The median of `values` (mean of the middle two for an even count), rounded to µs.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(round3(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Probes every target of `targets` concurrently, returning reports in the same order.
pub(crate) async fn probe_all<'a, I>(
    prober: &Prober,
    targets: I,
    server_name: &str,
) -> Vec<AddressReport>
where
    I: IntoIterator<Item = &'a Target>,
{
    futures_util::future::join_all(targets.into_iter().map(|t| prober.probe(t, server_name))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5.0]), Some(5.0));
        assert_eq!(median(&[41.0, 41.7, 42.2, 41.9]), Some(41.8));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    }

    #[test]
    fn version_bodies() {
        let ok = parse_version(br#"{"server":{"name":"Synapse","version":"1.163.2"}}"#).unwrap();
        assert_eq!(
            ok,
            Software {
                name: "Synapse".into(),
                version: "1.163.2".into()
            }
        );
        // Nothing is required (H3).
        assert_eq!(parse_version(b"{}").unwrap().name, "");
        assert_eq!(parse_version(br#"{"server":{}}"#).unwrap().version, "");
        let html = parse_version(b"<html><body>502 Bad Gateway</body></html>").unwrap_err();
        assert_eq!(html.kind, ErrorKind::InvalidResponse);
        assert!(html.message.contains("HTML"), "{}", html.message);
        assert_eq!(
            parse_version(b"[1]").unwrap_err().kind,
            ErrorKind::InvalidResponse
        );
        assert_eq!(
            parse_version(b"\xff\xfe").unwrap_err().kind,
            ErrorKind::InvalidResponse
        );
        let evil = parse_version(br#"{"server":{"name":"<script>\u0007","version":"1"}}"#).unwrap();
        assert_eq!(evil.name, "<script> ");
    }
}
