//! Step 3 of the spec: `GET https://<hostname>/.well-known/matrix/server`.
//!
//! A "regular HTTPS request": port 443, certificate verified for each hop's host. Redirects are
//! followed by hand (at most [`MAX_REDIRECTS`](crate::net::fetch::MAX_REDIRECTS), loops detected, HTTPS only, every hop's
//! addresses guarded), the body is capped at [`MAX_BODY_BYTES`] and the whole fetch at the
//! configured timeout. Any invalid answer is reported and discovery falls through to step 4.
//! Cache lifetimes follow the spec: `Cache-Control`/`Expires`, 24 h by default, 48 h at most,
//! and failures for up to 1 h with exponential backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hyper::StatusCode;
use hyper::header::{CACHE_CONTROL, EXPIRES, HeaderMap};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::error::{ErrorKind, ProbeError};
use crate::i18n::{Locale, key};
use crate::net::fetch::{Endpoint, Fetcher};

use crate::server_name::{Host, ServerName};
use crate::text;

/// Body size cap, as Synapse and gomatrixserverlib use.
pub(crate) const MAX_BODY_BYTES: usize = 50 * 1024;
/// Cache lifetime when the response has no cache headers (spec recommendation).
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest cache lifetime honoured (spec recommendation).
pub(crate) const MAX_TTL: Duration = Duration::from_secs(48 * 3600);
/// First failure is cached this long; each further failure doubles it up to [`MAX_FAILURE_TTL`].
pub(crate) const FIRST_FAILURE_TTL: Duration = Duration::from_secs(120);
/// Failures are cached for at most an hour (spec).
pub(crate) const MAX_FAILURE_TTL: Duration = Duration::from_secs(3600);
/// A valid delegation is refetched once this share of its lifetime is left (Synapse's
/// `WELL_KNOWN_GRACE_PERIOD_FACTOR`), so a transient failure then can fall back on it.
pub(crate) const REFRESH_SHARE: f64 = 0.2;
/// How long after a valid delegation expires the host still counts as "recently valid"
/// (Synapse's `WELL_KNOWN_REMEMBER_DOMAIN_HAD_VALID`): its failures are retried and cached
/// for only [`FIRST_FAILURE_TTL`].
pub(crate) const REMEMBER_VALID: Duration = Duration::from_secs(2 * 3600);
/// Attempts, 500 ms apart, when a recently valid well-known fails transiently (Synapse's).
pub(crate) const RETRY_ATTEMPTS: u32 = 3;

/// What the well-known lookup gave (the `discovery.well_known` contract field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WellKnownStatus {
    /// A valid `m.server` was found.
    Delegated,
    /// HTTP 404: the server does not delegate this way.
    NotFound,
    /// An HTTP answer that is not a valid delegation (status, JSON, `m.server` grammar, size).
    Invalid,
    /// No HTTP answer (DNS, connection, TLS, timeout, redirect loop).
    Error,
    /// Not looked up: the server name is an IP literal or has an explicit port.
    Skipped,
}

/// How long a well-known result is cached, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CachePolicy {
    /// Seconds from the fetch until the result expires.
    pub ttl_s: u64,
    /// When the result expires.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub expires_at: OffsetDateTime,
    /// Where the lifetime came from, in English words (the JSON's `reason`).
    pub reason: String,
    /// Where the lifetime came from, for each language to word ([`cache_words`]).
    #[serde(skip)]
    pub why: CacheWhy,
}

/// Where a cache lifetime came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheWhy {
    /// No cache headers: the spec's default of 24 h.
    Default,
    /// The headers asked for more than the spec's 48 h maximum (seconds asked).
    Capped(u64),
    /// The headers forbid caching.
    Forbidden,
    /// The response's cache headers.
    Headers,
    /// A first failure: retried after 2 min.
    Failure,
    /// Failures in a row (how many): retried later each time.
    Backoff(u32),
    /// A failure after a valid well-known: retried soon, as homeservers do.
    AfterValid,
}

/// Where `policy`'s lifetime came from, in `t`'s words.
pub(crate) fn cache_words(t: &Locale, policy_ttl_s: u64, why: CacheWhy) -> String {
    let ttl = crate::i18n::duration(t, policy_ttl_s as i64);
    match why {
        CacheWhy::Default => t.t(key::CACHE_DEFAULT).to_owned(),
        CacheWhy::Capped(asked) => t.f(
            key::CACHE_CAPPED,
            &[("asked", &crate::i18n::duration(t, asked as i64))],
        ),
        CacheWhy::Forbidden => t.t(key::CACHE_FORBIDDEN).to_owned(),
        CacheWhy::Headers => t.f(key::CACHE_HEADERS, &[("ttl", &ttl)]),
        CacheWhy::Failure => t.f(key::CACHE_FAILURE, &[("ttl", &ttl)]),
        CacheWhy::Backoff(n) => t.f(
            key::CACHE_BACKOFF,
            &[("failures", &n.to_string()), ("ttl", &ttl)],
        ),
        CacheWhy::AfterValid => t.f(key::CACHE_AFTER_VALID, &[("ttl", &ttl)]),
    }
}

/// Everything the well-known lookup found, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct WellKnownReport {
    /// The outcome.
    pub status: WellKnownStatus,
    /// The first URL requested.
    pub url: Option<String>,
    /// Redirect targets followed, in order.
    pub redirects: Vec<String>,
    /// HTTP status of the last response.
    pub http_status: Option<u16>,
    /// Start of the last response body (capped, control characters removed).
    pub body: Option<String>,
    /// The `m.server` value, when the body had one (even an invalid one).
    pub m_server: Option<String>,
    /// Why the result is not a delegation, in words.
    pub problem: Option<String>,
    /// For `error`: which kind of failure.
    pub error_kind: Option<ErrorKind>,
    /// Time the fetch took (absent when served from cache).
    pub duration_ms: Option<f64>,
    /// Cache lifetime of this result.
    pub cache: Option<CachePolicy>,
    /// True when this result came from the cache rather than a fetch.
    pub from_cache: bool,
    /// The fetch failed for the monitor's own lack of a resource (no socket, no memory):
    /// it says nothing about the server, and is neither cached nor followed by SRV steps.
    #[serde(rename = "monitor_trouble", skip_serializing_if = "Option::is_none")]
    pub trouble: Option<crate::error::Trouble>,
    /// The parsed delegation, when `status` is `delegated`.
    #[serde(skip)]
    pub delegated: Option<ServerName>,
}

impl WellKnownReport {
    /// The report for names that skip the well-known step.
    pub fn skipped() -> Self {
        Self::blank(WellKnownStatus::Skipped, None)
    }

    fn blank(status: WellKnownStatus, url: Option<String>) -> Self {
        WellKnownReport {
            status,
            url,
            redirects: Vec::new(),
            http_status: None,
            body: None,
            m_server: None,
            problem: None,
            error_kind: None,
            duration_ms: None,
            cache: None,
            from_cache: false,
            trouble: None,
            delegated: None,
        }
    }
}

/// Fetches well-known files through the guarded client, verifying TLS.
#[derive(Clone)]
pub(crate) struct WellKnownClient {
    fetcher: Fetcher,
    timeout: Duration,
}

impl WellKnownClient {
    /// A client fetching through `fetcher` (guarded, verifying certificates), giving up on a
    /// whole fetch (all hops) after `timeout`.
    pub(crate) fn new(fetcher: Fetcher, timeout: Duration) -> WellKnownClient {
        WellKnownClient { fetcher, timeout }
    }

    /// Fetches the well-known of `host` within the timeout; with `retry` (the host
    /// had a valid well-known recently) a transient failure is retried up to
    /// [`RETRY_ATTEMPTS`] times, 500 ms apart, within the one timeout, as Synapse does.
    pub(crate) async fn fetch_retrying(&self, host: &str, retry: bool) -> WellKnownReport {
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 1;
        loop {
            let report = self.fetch_until(host, deadline).await;
            if !retry || attempt >= RETRY_ATTEMPTS || !report.is_transient_failure() {
                return report;
            }
            let next = Instant::now() + Duration::from_millis(500);
            if next >= deadline {
                return report;
            }
            tokio::time::sleep_until(next).await;
            attempt += 1;
        }
    }

    /// Fetches and validates the well-known file of `host` (a DNS name without port, exactly
    /// as written in the server name: never re-read as an address), given up at `deadline`
    /// (shared by a fetch's retries).
    async fn fetch_until(&self, host: &str, deadline: Instant) -> WellKnownReport {
        let first = Endpoint::https(Host::Dns(host.to_owned()), 443, PATH);
        let mut report = WellKnownReport::blank(WellKnownStatus::Error, Some(first.to_string()));
        let started = Instant::now();
        let outcome = self.fetch_inner(first, deadline, &mut report).await;
        report.duration_ms = Some(crate::numbers::duration_ms(started.elapsed()));
        if let Err(e) = outcome {
            report.status = WellKnownStatus::Error;
            report.error_kind = Some(e.kind);
            report.problem = Some(e.message);
            report.trouble = e.trouble;
            report.cache = Some(failure_cache_policy(1, SystemTime::now()));
        }
        report
    }

    async fn fetch_inner(
        &self,
        first: Endpoint,
        deadline: Instant,
        report: &mut WellKnownReport,
    ) -> Result<(), ProbeError> {
        let mut conn = None;
        let mut hops = Vec::new();
        let mut on_hop = |next: &Endpoint| hops.push(next.to_string());
        let fetch = self
            .fetcher
            .get_following(&first, MAX_BODY_BYTES, &mut conn, &mut on_hop);
        let outcome = tokio::time::timeout_at(deadline, fetch).await;
        report.redirects = hops;
        let followed = match outcome {
            Err(_) => return Err(timeout_error(self.timeout)),
            Ok(Err(e)) if e.kind == ErrorKind::BodyTooLarge => {
                // An HTTP answer, just too big to be a delegation.
                report.status = WellKnownStatus::Invalid;
                report.error_kind = Some(e.kind);
                report.problem = Some(e.message);
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(f)) => f,
        };
        let response = followed.response;
        report.http_status = Some(response.status.as_u16());
        report.body = Some(text::excerpt(&response.body, 200));
        judge(response.status, &response.body, report);
        report.cache = Some(if report.status == WellKnownStatus::Delegated {
            success_cache_policy(&response.headers, SystemTime::now())
        } else {
            failure_cache_policy(1, SystemTime::now())
        });
        Ok(())
    }
}

/// The path of the server well-known file.
const PATH: &str = "/.well-known/matrix/server";

fn timeout_error(timeout: Duration) -> ProbeError {
    ProbeError::new(
        ErrorKind::Timeout,
        format!(
            "no complete answer within {}",
            humantime::format_duration(timeout)
        ),
    )
}

/// What a final (non-redirect) answer with `status` and `body` means, on its own (for tests
/// and fuzzing; `fetch` does the same on the wire).
pub fn judge_answer(status: u16, body: &[u8]) -> WellKnownReport {
    let mut report = WellKnownReport::blank(WellKnownStatus::Error, None);
    match StatusCode::from_u16(status) {
        Ok(code) => judge(code, body, &mut report),
        Err(_) => {
            report.status = WellKnownStatus::Invalid;
            report.problem = Some(format!("HTTP status {status} is not valid"));
        }
    }
    report
}

/// Decides what a final (non-redirect) answer means, filling `report`.
fn judge(status: StatusCode, body: &[u8], report: &mut WellKnownReport) {
    if status == StatusCode::NOT_FOUND {
        report.status = WellKnownStatus::NotFound;
        report.problem = Some("no well-known file (HTTP 404)".into());
        return;
    }
    report.status = WellKnownStatus::Invalid;
    if status != StatusCode::OK {
        // The spec accepts 200 only (a 2xx like 204 is "non-200" too).
        report.problem = Some(format!("HTTP {status}; only 200 is a valid answer"));
        return;
    }
    // The Content-Type is ignored: the spec says to assume JSON regardless (edge case C8).
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            report.problem = Some(format!("the body is not JSON ({e})"));
            return;
        }
    };
    let Value::Object(map) = value else {
        report.problem = Some("the body is JSON but not an object".into());
        return;
    };
    let m_server = match map.get("m.server") {
        None => {
            report.problem = Some("the object has no \"m.server\" key".into());
            return;
        }
        Some(Value::String(s)) if s.is_empty() => {
            report.problem = Some("\"m.server\" is empty".into());
            return;
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            report.problem = Some(format!(
                "\"m.server\" is {}, not a string",
                json_type(other)
            ));
            return;
        }
    };
    report.m_server = Some(text::cap(m_server));
    match ServerName::parse(m_server) {
        Ok(name) => {
            report.status = WellKnownStatus::Delegated;
            report.delegated = Some(name);
        }
        Err(e) => {
            report.problem = Some(format!(
                "\"m.server\" is not a valid server name: {}",
                e.message.trim_start_matches("invalid server name ")
            ));
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The cache lifetime the response headers ask for, read as Synapse reads them plus the two
/// HTTP rules it skips (RFC 9111): `no-store` and `no-cache` → 0 (`no-cache` means "revalidate
/// before every use", which for a fetch without validators is "don't cache"); `max-age=N`
/// (case-insensitive, spaces around `=` allowed) wins over `Expires`, less the response's `Age`
/// (`max-age=3600` with `Age: 3500` lives 100 s); a malformed `max-age` falls through to
/// `Expires`; an invalid `Expires` → 0. `None` when neither header says anything usable.
pub(crate) fn cache_period(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim().to_ascii_lowercase();
            // `no-cache="field"` only restricts that field; the bare directive forbids reuse.
            if directive == "no-store" || directive == "no-cache" {
                return Some(Duration::ZERO);
            }
            if let Some((k, v)) = directive.split_once('=')
                && k.trim() == "max-age"
                && let Ok(secs) = v.trim().parse::<u64>()
            {
                max_age = Some(Duration::from_secs(secs));
            }
        }
    }
    if let Some(max_age) = max_age {
        // Age: how long the answer already sat in a cache on the way (RFC 9111 §5.1).
        let age = headers
            .get(hyper::header::AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::ZERO, Duration::from_secs);
        return Some(max_age.saturating_sub(age));
    }
    let expires = headers.get(EXPIRES)?;
    match expires
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
    {
        Some(at) => Some(at.duration_since(now).unwrap_or(Duration::ZERO)),
        None => Some(Duration::ZERO),
    }
}

/// The cache policy for a fetched answer (valid or not: an HTTP answer is a result too).
fn success_cache_policy(headers: &HeaderMap, now: SystemTime) -> CachePolicy {
    let (ttl, why) = match cache_period(headers, now) {
        None => (DEFAULT_TTL, CacheWhy::Default),
        Some(p) if p > MAX_TTL => (MAX_TTL, CacheWhy::Capped(p.as_secs())),
        Some(p) if p.is_zero() => (p, CacheWhy::Forbidden),
        Some(p) => (p, CacheWhy::Headers),
    };
    policy(ttl, why, now)
}

/// The cache policy for the `failures`-th failure in a row (1-based): 2 min, doubling, at most 1 h.
pub(crate) fn failure_cache_policy(failures: u32, now: SystemTime) -> CachePolicy {
    let factor = 1u32 << failures.saturating_sub(1).min(10);
    let ttl = (FIRST_FAILURE_TTL * factor).min(MAX_FAILURE_TTL);
    let why = if failures <= 1 {
        CacheWhy::Failure
    } else {
        CacheWhy::Backoff(failures)
    };
    policy(ttl, why, now)
}

fn policy(ttl: Duration, why: CacheWhy, now: SystemTime) -> CachePolicy {
    CachePolicy {
        ttl_s: ttl.as_secs(),
        expires_at: OffsetDateTime::from(now + ttl),
        reason: cache_words(crate::i18n::english(), ttl.as_secs(), why),
        why,
    }
}

/// Well-known results by host, for the spec's cache lifetimes, refreshed the way Synapse does.
#[derive(Default)]
pub(crate) struct WellKnownCache {
    /// Entries boxed: a hash table keeps room for more entries than it holds, and an entry
    /// (a whole report) is 300 bytes; at 10,000 servers the spare room was 2 MB.
    entries: Mutex<HashMap<String, Box<CacheEntry>>>,
}

struct CacheEntry {
    report: WellKnownReport,
    expires: Instant,
    ttl: Duration,
    failures: u32,
    /// Until when the host counts as having had a valid delegation.
    had_valid_until: Option<Instant>,
}

/// What the cache says about a host.
pub(crate) enum Cached {
    /// Use this; no fetch needed.
    Fresh(WellKnownReport),
    /// Fetch again. `previous` is a still-valid delegation in the last part of its lifetime:
    /// keep it if the fetch fails transiently. `had_valid`: the host had a valid well-known
    /// recently, so retry transient failures.
    Refetch {
        /// The delegation to fall back on.
        previous: Option<WellKnownReport>,
        /// The host had a valid well-known recently.
        had_valid: bool,
    },
}

impl WellKnownReport {
    /// A failure that may pass by itself (Synapse's "temporary"): no HTTP answer (DNS,
    /// connection, TLS, timeout), a 5xx, or a body over the cap. A 404, another 4xx or an
    /// invalid body is the server's answer and is taken as it is.
    pub fn is_transient_failure(&self) -> bool {
        match self.status {
            WellKnownStatus::Error => true,
            WellKnownStatus::Invalid => {
                self.http_status.is_some_and(|s| (500..600).contains(&s))
                    || self.error_kind == Some(ErrorKind::BodyTooLarge)
            }
            _ => false,
        }
    }
}

impl WellKnownCache {
    /// What to do for `host` at `now`.
    pub(crate) fn lookup(&self, host: &str, now: Instant) -> Cached {
        let entries = self.entries.lock().expect("cache lock");
        let Some(entry) = entries.get(host) else {
            return Cached::Refetch {
                previous: None,
                had_valid: false,
            };
        };
        let had_valid = entry.had_valid_until.is_some_and(|t| now < t);
        let delegated = entry.report.status == WellKnownStatus::Delegated;
        let refresh_at = if delegated {
            entry.expires - entry.ttl.mul_f64(REFRESH_SHARE)
        } else {
            entry.expires
        };
        let cached = || {
            let mut report = entry.report.clone();
            report.from_cache = true;
            report.duration_ms = None;
            report
        };
        if now < refresh_at {
            Cached::Fresh(cached())
        } else if delegated && now < entry.expires {
            Cached::Refetch {
                previous: Some(cached()),
                had_valid,
            }
        } else {
            Cached::Refetch {
                previous: None,
                had_valid,
            }
        }
    }

    /// Stores a fresh `report` (fetched at `now`), setting its cache policy. A delegation keeps
    /// its own lifetime; failures back off exponentially, except that a host with a valid
    /// well-known in the last [`REMEMBER_VALID`] is retried after [`FIRST_FAILURE_TTL`] each
    /// time, as Synapse does.
    pub(crate) fn store(&self, host: &str, report: &mut WellKnownReport, now: Instant) {
        let mut entries = self.entries.lock().expect("cache lock");
        let previous = entries.get(host);
        let had_valid_until = previous.and_then(|e| e.had_valid_until);
        let recently_valid = had_valid_until.is_some_and(|t| now < t);
        let (failures, had_valid_until) = if report.status == WellKnownStatus::Delegated {
            (0, None)
        } else if recently_valid {
            (1, had_valid_until)
        } else {
            (previous.map_or(0, |e| e.failures) + 1, None)
        };
        if failures > 0 {
            let now = SystemTime::now();
            report.cache = Some(if recently_valid {
                policy(FIRST_FAILURE_TTL, CacheWhy::AfterValid, now)
            } else {
                failure_cache_policy(failures, now)
            });
        }
        let ttl = Duration::from_secs(report.cache.as_ref().map_or(0, |c| c.ttl_s));
        let had_valid_until = if report.status == WellKnownStatus::Delegated {
            Some(now + ttl + REMEMBER_VALID)
        } else {
            had_valid_until
        };
        entries.insert(
            host.to_owned(),
            Box::new(CacheEntry {
                report: report.clone(),
                expires: now + ttl,
                ttl,
                failures,
                had_valid_until,
            }),
        );
    }

    /// When the entry for `host` is due for its early refresh, if there is one.
    pub(crate) fn refresh_at(&self, host: &str) -> Option<Instant> {
        self.entries.lock().expect("cache lock").get(host).map(|e| {
            if e.report.status == WellKnownStatus::Delegated {
                e.expires - e.ttl.mul_f64(REFRESH_SHARE)
            } else {
                e.expires
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::fetch::MAX_REDIRECTS;
    use crate::net::fetch::next_hop;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// Synapse's `TestCachePeriodFromHeaders` table (discovery.md §5).
    #[test]
    fn cache_period_matches_synapse_table() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_548_833_700);
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<u64>);
        let cases: &[Case<'_>] = &[
            (&[("cache-control", "foo, Max-Age = 100, bar")], Some(100)),
            (&[("cache-control", "max-age=, bar")], None),
            (&[("cache-control", "private; max-age=0")], None),
            (
                &[("cache-control", "max-age=0, private, must-revalidate")],
                Some(0),
            ),
            (&[("expires", "Wed, 30 Jan 2019 07:35:33 GMT")], Some(33)),
            (
                &[
                    ("cache-control", "max-age=10"),
                    ("expires", "Wed, 30 Jan 2019 07:35:33 GMT"),
                ],
                Some(10),
            ),
            (&[("expires", "0")], Some(0)),
            (&[("cache-control", "no-store")], Some(0)),
            (&[("cache-control", "no-cache")], Some(0)),
            (&[("cache-control", "public, No-Cache")], Some(0)),
            (
                &[("cache-control", "no-cache=\"set-cookie\", max-age=60")],
                Some(60),
            ),
            (
                &[("cache-control", "max-age=3600"), ("age", "3500")],
                Some(100),
            ),
            (
                &[("cache-control", "max-age=3600"), ("age", "7200")],
                Some(0),
            ),
            (
                &[("cache-control", "max-age=3600"), ("age", "soon")],
                Some(3600),
            ),
            (
                &[("expires", "Wed, 30 Jan 2019 07:35:33 GMT"), ("age", "20")],
                Some(33),
            ),
            (&[], None),
        ];
        for (h, want) in cases {
            assert_eq!(
                cache_period(&headers(h), now).map(|d| d.as_secs()),
                *want,
                "{h:?}"
            );
        }
    }

    #[test]
    fn cache_policy_defaults_and_caps() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let p = success_cache_policy(&headers(&[]), now);
        assert_eq!(p.ttl_s, 24 * 3600);
        assert!(p.reason.contains("default of 24 h"));
        let p = success_cache_policy(&headers(&[("cache-control", "max-age=3600")]), now);
        assert_eq!(p.ttl_s, 3600);
        let p = success_cache_policy(&headers(&[("cache-control", "max-age=604800")]), now);
        assert_eq!(p.ttl_s, 48 * 3600);
        assert!(p.reason.contains("capped"));
        let p = success_cache_policy(&headers(&[("cache-control", "max-age=0")]), now);
        assert_eq!(p.ttl_s, 0);
        // A malformed directive list (semicolon) is ignored, so the default applies (I6).
        let p = success_cache_policy(&headers(&[("cache-control", "private; max-age=0")]), now);
        assert_eq!(p.ttl_s, 24 * 3600);
    }

    #[test]
    fn failures_back_off_exponentially_up_to_an_hour() {
        let now = SystemTime::UNIX_EPOCH;
        let ttls: Vec<u64> = (1..=8)
            .map(|n| failure_cache_policy(n, now).ttl_s)
            .collect();
        assert_eq!(ttls, [120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    }

    #[test]
    fn judging_bodies() {
        let judge_body = |status: u16, body: &str| {
            let mut r = WellKnownReport::blank(WellKnownStatus::Error, None);
            judge(
                StatusCode::from_u16(status).unwrap(),
                body.as_bytes(),
                &mut r,
            );
            r
        };
        let r = judge_body(
            200,
            r#"{"m.server":"matrix.example.com:443","org.example.x":1}"#,
        );
        assert_eq!(r.status, WellKnownStatus::Delegated);
        assert_eq!(r.delegated.unwrap().as_str(), "matrix.example.com:443");
        assert_eq!(judge_body(404, "").status, WellKnownStatus::NotFound);
        for (status, body, problem) in [
            (204, "", "only 200"),
            (500, "", "only 200"),
            (200, "NOT JSON", "not JSON"),
            (200, "<html></html>", "not JSON"),
            (200, "[]", "not an object"),
            (200, "null", "not an object"),
            (200, "42", "not an object"),
            (200, "{}", "no \"m.server\""),
            (200, r#"{"m.server":123}"#, "a number"),
            (200, r#"{"m.server":null}"#, "null"),
            (200, r#"{"m.server":""}"#, "is empty"),
            (
                200,
                r#"{"m.server":"https://matrix.example.com"}"#,
                "not a valid server name",
            ),
            (
                200,
                r#"{"m.server":"matrix.example.com/"}"#,
                "not a valid server name",
            ),
            (
                200,
                r#"{"m.server":"matrix example.com"}"#,
                "not a valid server name",
            ),
            (
                200,
                r#"{"m.server":"matrix.example.com:99999"}"#,
                "larger than 65535",
            ),
            (200, r#"{"m.server":"[::1"}"#, "closing"),
            (200, r#"{"m.server":"bücher.com"}"#, "ASCII"),
        ] {
            let r = judge_body(status, body);
            assert_eq!(r.status, WellKnownStatus::Invalid, "{status} {body}");
            let p = r.problem.unwrap();
            assert!(p.contains(problem), "{body}: {p}");
        }
    }

    #[test]
    fn redirects_are_checked() {
        let here = Endpoint::https(Host::Dns("example.com".into()), 443, PATH);
        let loc = |l: &str| headers(&[("location", l)]);
        let seen = vec![here.clone()];
        let next = next_hop(&here, &loc("https://www.example.com/wk"), &seen).unwrap();
        assert_eq!(next.to_string(), "https://www.example.com/wk");
        let rel = next_hop(&here, &loc("/other"), &seen).unwrap();
        assert_eq!(rel.to_string(), "https://example.com/other");
        let e = next_hop(&here, &loc("http://example.com/x"), &seen).unwrap_err();
        assert!(e.message.contains("not HTTPS"));
        let e = next_hop(&here, &loc(&here.to_string()), &seen).unwrap_err();
        assert!(e.message.contains("loop"));
        let e = next_hop(&here, &HeaderMap::new(), &seen).unwrap_err();
        assert!(e.message.contains("without a Location"));
        let many: Vec<Endpoint> = (0..=MAX_REDIRECTS)
            .map(|i| Endpoint::https(Host::Dns(format!("h{i}.example.com")), 443, "/"))
            .collect();
        let e = next_hop(&here, &loc("https://new.example.com/"), &many).unwrap_err();
        assert!(e.message.contains("more than 10 redirects"));
    }
}
