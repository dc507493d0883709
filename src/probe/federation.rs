//! Federation both ways (design.md "Federation both ways"): mxping signs a request as its own
//! `[federation] server_name` (spec "Request Authentication") and sends it to a server's
//! federation address. To answer it, the server must fetch mxping's key (itself, or through
//! its notary) and verify the signature: what it must also do to receive anyone's messages and
//! to join rooms elsewhere. A server that answers `/version` but cannot do this is reachable
//! and still alone.
//!
//! The request is `GET /_matrix/federation/v1/query/profile` for a user that does not exist,
//! whose answer once authenticated is fixed (404 `M_NOT_FOUND`, or a refusal that comes after
//! authentication, e.g. profile lookups turned off). Then, on the same connection, the public
//! room directory over federation. Both go through the probe's guarded connector and verify
//! the certificate as a round does.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde::{Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;

use super::{Answer, Prober};
use crate::discovery::Resolution;
use crate::error::{ErrorKind, ProbeError};
use crate::numbers::duration_ms as ms;
use crate::signing::Key;
use crate::text;

/// The endpoint asked, signed.
pub(crate) const PROFILE_PATH: &str = "/_matrix/federation/v1/query/profile";
/// The local part of the user asked about: it never exists.
pub(crate) const PROBE_USER: &str = "mxping-probe";
/// A signed check may wait on the server fetching mxping's key (Synapse waits up to a minute
/// for an unreachable key server; half of that tells enough).
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Cap on each answer's body.
const MAX_BODY: usize = 64 * 1024;
/// Rooms shown from a directory.
pub(crate) const TOP_ROOMS: usize = 5;
/// Key fetches remembered: more than arrive within [`CHECK_TIMEOUT`] at 10,000 servers
/// checked every 10 minutes (about 17 a second).
const FETCHES_KEPT: usize = 4096;

pub use crate::status::Outcome;

/// Who fetched mxping's key while the check was in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchedBy {
    /// One of the server's own addresses.
    Server,
    /// Another address (its notary, or an outbound address that is not its federation
    /// address).
    Notary,
}

/// A public room from the directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Room {
    /// Its name, if it has one (capped).
    pub name: Option<String>,
    /// Its canonical alias, if any (capped).
    pub alias: Option<String>,
    /// Joined members.
    pub members: u64,
    /// Its ID (for a link when it has no alias).
    pub room_id: String,
}

/// The public room directory over federation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Directory {
    /// Shared: how many rooms, and the largest few.
    Shared {
        /// The server's estimate of its public rooms.
        rooms: u64,
        /// The largest, by members.
        top: Vec<Room>,
    },
    /// The server does not share its directory over federation (Synapse's default).
    NotShared,
}

impl Serialize for Directory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shared<'a> {
            rooms: u64,
            top: &'a [Room],
        }
        match self {
            Directory::Shared { rooms, top } => Shared { rooms: *rooms, top }.serialize(s),
            Directory::NotShared => s.serialize_str("not_shared"),
        }
    }
}

/// One signed check of one server (the contract's `federation` object).
#[derive(Clone, Debug, Serialize)]
pub struct Outbound {
    /// The verdict.
    pub outbound: Outcome,
    /// What the server said, or why the request failed (all but `both_ways`).
    pub error: Option<ProbeError>,
    /// Time to the signed answer, milliseconds (it includes the server's key fetch).
    pub elapsed_ms: Option<f64>,
    /// Who fetched mxping's key during the check, as mxping's listener saw it; `null` when
    /// no fetch arrived (the server had the key already, or `mxping check` has no listener).
    pub key_fetched_by: Option<FetchedBy>,
    /// The public room directory, when the check got that far.
    pub directory: Option<Directory>,
    /// When the check finished.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub checked_at: OffsetDateTime,
}

impl Outbound {
    /// The server answered the signed request and it was not accepted: the server is
    /// reachable but cannot talk with others (yellow). A request that found no server, or
    /// was cut off before an answer, is the rounds' business, not this check's.
    pub fn degrades(&self) -> bool {
        match self.outbound {
            Outcome::BothWays => false,
            Outcome::CannotReachUs | Outcome::AllowList | Outcome::SignatureRefused => true,
            Outcome::Error => self.error.as_ref().is_some_and(|e| {
                matches!(
                    e.kind,
                    ErrorKind::HttpStatus | ErrorKind::InvalidResponse | ErrorKind::Timeout
                ) && self.elapsed_ms.is_some()
            }),
        }
    }

    fn failed(error: ProbeError) -> Outbound {
        Outbound {
            outbound: Outcome::Error,
            error: Some(error),
            elapsed_ms: None,
            key_fetched_by: None,
            directory: None,
            checked_at: OffsetDateTime::now_utc(),
        }
    }
}

/// A request for mxping's key, as its listener saw it.
#[derive(Clone, Debug)]
pub struct KeyFetch {
    /// When it arrived.
    pub at: Instant,
    /// From where (the proxy's `X-Forwarded-For` when the peer is a proxy on this machine).
    pub from: IpAddr,
    /// Its `User-Agent` (capped).
    pub user_agent: String,
}

/// The last requests for mxping's key: the web listener adds, checks read.
#[derive(Debug, Default)]
pub struct KeyFetches {
    log: Mutex<VecDeque<KeyFetch>>,
}

impl KeyFetches {
    /// Records a fetch from `from` now.
    pub fn record(&self, from: IpAddr, user_agent: &str) {
        let mut log = self.log.lock().expect("key fetch log");
        if log.len() == FETCHES_KEPT {
            log.pop_front();
        }
        log.push_back(KeyFetch {
            at: Instant::now(),
            from,
            user_agent: text::cap_to(user_agent, 120),
        });
    }

    /// The fetches since `start`.
    pub fn since(&self, start: Instant) -> Vec<KeyFetch> {
        let log = self.log.lock().expect("key fetch log");
        log.iter().filter(|f| f.at >= start).cloned().collect()
    }
}

/// Signs and sends the check, as `origin` with `key`.
#[derive(Clone)]
pub struct FederationChecker {
    prober: Prober,
    key: Arc<Key>,
    origin: String,
    timeout: Duration,
}

impl FederationChecker {
    /// A checker sending through `prober` as `origin`, signing with `key`.
    pub fn new(prober: Prober, key: Key, origin: String) -> FederationChecker {
        FederationChecker {
            prober,
            key: Arc::new(key),
            origin,
            timeout: CHECK_TIMEOUT,
        }
    }

    /// Checks the server `resolution` resolved: its targets in order until one answers.
    /// `fetches` is mxping's own listener's log, when it has one.
    pub async fn check(&self, resolution: &Resolution, fetches: Option<&KeyFetches>) -> Outbound {
        let name = resolution.server_name.as_str();
        if let Some(e) = &resolution.error
            && resolution.targets.iter().all(|t| t.blocked.is_some())
        {
            return Outbound::failed(e.clone());
        }
        let user = text::percent_encode(&format!("@{PROBE_USER}:{name}"));
        let paths = [
            format!("{PROFILE_PATH}?user_id={user}&field=displayname"),
            format!("/_matrix/federation/v1/publicRooms?limit={TOP_ROOMS}"),
        ];
        let gets: Vec<(String, String)> = paths
            .iter()
            .map(|p| {
                let auth = self.key.x_matrix(&self.origin, name, "GET", p, None);
                (p.clone(), auth)
            })
            .collect();
        let started = Instant::now();
        let mut last = None;
        for target in &resolution.targets {
            let answers = self
                .prober
                .exchange(target, &gets, MAX_BODY, self.timeout, |a| {
                    judge(a.status, &a.body).0 == Outcome::BothWays
                })
                .await;
            match answers {
                Ok(answers) => {
                    let mut out = outcome(&answers);
                    out.key_fetched_by = fetches.and_then(|f| {
                        fetched_by(
                            &f.since(started),
                            resolution.targets.iter().map(|t| t.address.ip()),
                        )
                    });
                    return out;
                }
                Err(e) => {
                    let sent = e.kind == ErrorKind::Timeout;
                    let mut out = Outbound::failed(e);
                    if sent {
                        // Cut off while waiting for the answer, not while connecting: the
                        // server took the request and did not answer in time.
                        out.elapsed_ms = Some(ms(started.elapsed()));
                    }
                    last = Some(out);
                }
            }
        }
        last.unwrap_or_else(|| {
            Outbound::failed(resolution.error.clone().unwrap_or_else(|| {
                ProbeError::new(
                    ErrorKind::Dns,
                    format!("discovery found no address for {name}"),
                )
            }))
        })
    }
}

/// The verdict of the answers [`Prober::exchange`] got: the profile query's, then the
/// directory's.
fn outcome(answers: &[Answer]) -> Outbound {
    let first = &answers[0];
    let (outbound, error) = judge(first.status, &first.body);
    Outbound {
        outbound,
        error,
        elapsed_ms: Some(ms(first.elapsed)),
        key_fetched_by: None,
        directory: answers.get(1).and_then(|a| directory(a.status, &a.body)),
        checked_at: OffsetDateTime::now_utc(),
    }
}

/// Who fetched the key: a fetch from one of `addresses` is the server's own, another a
/// notary's; none, nobody (the key was cached).
fn fetched_by(fetches: &[KeyFetch], addresses: impl Iterator<Item = IpAddr>) -> Option<FetchedBy> {
    let own: Vec<IpAddr> = addresses.map(|a| a.to_canonical()).collect();
    if fetches.iter().any(|f| own.contains(&f.from.to_canonical())) {
        Some(FetchedBy::Server)
    } else if fetches.is_empty() {
        None
    } else {
        Some(FetchedBy::Notary)
    }
}

/// The Matrix error of a body: `(errcode, error)`.
fn matrix_error(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(text::cap)
            .unwrap_or_default()
    };
    (field("errcode"), field("error"))
}

/// The verdict of the answer to the signed profile query. Any answer the server gives once
/// it authenticated the request (200, 404 `M_NOT_FOUND`, 400 for a user it does not host,
/// 403 "profile lookup is disabled") means it verified mxping's signature. Before that, the
/// servers' words say why not: Synapse's "Failed to find any key to satisfy …" (it could not
/// fetch the key), "Invalid signature for server …" (it fetched a key that does not verify),
/// and 403 "Federation denied with …" (its `federation_domain_whitelist`).
pub(crate) fn judge(status: StatusCode, body: &[u8]) -> (Outcome, Option<ProbeError>) {
    let (errcode, error) = matrix_error(body);
    let lower = error.to_ascii_lowercase();
    let said = || {
        let what = if error.is_empty() {
            text::excerpt(body, 120)
        } else if errcode.is_empty() {
            error.clone()
        } else {
            format!("{errcode}: {error}")
        };
        ProbeError::new(ErrorKind::HttpStatus, format!("HTTP {status}: {what}"))
    };
    match status.as_u16() {
        401 => {
            let key_missing = [
                "find",
                "fetch",
                "no key",
                "unknown key",
                "retriev",
                "lookup",
            ]
            .iter()
            .any(|w| lower.contains(w));
            if lower.contains("signature") && !key_missing {
                (Outcome::SignatureRefused, Some(said()))
            } else if key_missing || lower.contains("key") {
                (Outcome::CannotReachUs, Some(said()))
            } else {
                // e.g. "Missing Authorization headers": a proxy dropped the header.
                (Outcome::Error, Some(said()))
            }
        }
        403 if [
            "denied",
            "whitelist",
            "allow list",
            "allowlist",
            "not allowed to federate",
        ]
        .iter()
        .any(|w| lower.contains(w)) =>
        {
            (Outcome::AllowList, Some(said()))
        }
        200..=299 | 400 | 403 | 404 => (Outcome::BothWays, None),
        _ => (Outcome::Error, Some(said())),
    }
}

/// The directory from the answer to `publicRooms`: 403 is Synapse's "not shared over
/// federation" (`allow_public_rooms_over_federation: false`); anything but a JSON answer,
/// unknown.
fn directory(status: StatusCode, body: &[u8]) -> Option<Directory> {
    if status == StatusCode::FORBIDDEN {
        return Some(Directory::NotShared);
    }
    if !status.is_success() {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let chunk = v.get("chunk")?.as_array()?;
    let text_of = |r: &Value, k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(text::cap)
    };
    let mut top: Vec<Room> = chunk
        .iter()
        .filter_map(|r| {
            Some(Room {
                name: text_of(r, "name"),
                alias: text_of(r, "canonical_alias"),
                members: r.get("num_joined_members")?.as_u64()?,
                room_id: text_of(r, "room_id")?,
            })
        })
        .collect();
    top.sort_by_key(|r| std::cmp::Reverse(r.members));
    top.truncate(TOP_ROOMS);
    let rooms = v
        .get("total_room_count_estimate")
        .and_then(Value::as_u64)
        .unwrap_or(chunk.len() as u64);
    Some(Directory::Shared { rooms, top })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(status: u16, body: &str) -> Outcome {
        judge(StatusCode::from_u16(status).unwrap(), body.as_bytes()).0
    }

    #[test]
    fn synapse_answers_are_judged() {
        // Synapse 1.163's words (synapse/crypto/keyring.py, synapse/api/errors.py).
        assert_eq!(
            said(
                404,
                r#"{"errcode":"M_NOT_FOUND","error":"Profile was not found"}"#
            ),
            Outcome::BothWays
        );
        assert_eq!(said(200, r#"{"displayname":"x"}"#), Outcome::BothWays);
        assert_eq!(
            said(
                403,
                r#"{"errcode":"M_FORBIDDEN","error":"Profile lookup over federation is disabled on this homeserver"}"#
            ),
            Outcome::BothWays
        );
        assert_eq!(
            said(
                400,
                r#"{"errcode":"M_UNKNOWN","error":"User is not hosted on this homeserver"}"#
            ),
            Outcome::BothWays
        );
        assert_eq!(
            said(
                401,
                r#"{"errcode":"M_UNAUTHORIZED","error":"Failed to find any key to satisfy: _FetchKeyRequest(server_name='status.test', minimum_valid_until_ts=1, key_ids=['ed25519:a_x'])"}"#
            ),
            Outcome::CannotReachUs
        );
        assert_eq!(
            said(
                401,
                r#"{"errcode":"M_UNAUTHORIZED","error":"Invalid signature for server status.test with key ed25519:a_x: Unable to verify signature for status.test"}"#
            ),
            Outcome::SignatureRefused
        );
        assert_eq!(
            said(
                403,
                r#"{"errcode":"M_FORBIDDEN","error":"Federation denied with status.test."}"#
            ),
            Outcome::AllowList
        );
        let (o, e) = judge(
            StatusCode::UNAUTHORIZED,
            br#"{"errcode":"M_UNAUTHORIZED","error":"Missing Authorization headers"}"#,
        );
        assert_eq!(o, Outcome::Error);
        assert_eq!(
            e.unwrap().message,
            "HTTP 401 Unauthorized: M_UNAUTHORIZED: Missing Authorization headers"
        );
        assert_eq!(said(502, "<html>Bad Gateway</html>"), Outcome::Error);
        assert_eq!(said(500, ""), Outcome::Error);
    }

    #[test]
    fn only_an_answer_that_refuses_turns_a_server_yellow() {
        let with = |outbound, kind: Option<ErrorKind>, elapsed: Option<f64>| Outbound {
            outbound,
            error: kind.map(|k| ProbeError::new(k, "x")),
            elapsed_ms: elapsed,
            key_fetched_by: None,
            directory: None,
            checked_at: OffsetDateTime::now_utc(),
        };
        assert!(!with(Outcome::BothWays, None, Some(3.0)).degrades());
        for o in [
            Outcome::CannotReachUs,
            Outcome::AllowList,
            Outcome::SignatureRefused,
        ] {
            assert!(with(o, Some(ErrorKind::HttpStatus), Some(3.0)).degrades());
        }
        // The server answered something that is not an answer, or took the request and
        // never answered: its federation does not work.
        assert!(with(Outcome::Error, Some(ErrorKind::HttpStatus), Some(3.0)).degrades());
        assert!(with(Outcome::Error, Some(ErrorKind::Timeout), Some(30_000.0)).degrades());
        // No server to ask (the rounds say so already), or the monitor's own trouble.
        assert!(!with(Outcome::Error, Some(ErrorKind::ConnectRefused), None).degrades());
        assert!(!with(Outcome::Error, Some(ErrorKind::Dns), None).degrades());
        assert!(!with(Outcome::Error, Some(ErrorKind::TlsCertificate), None).degrades());
    }

    #[test]
    fn directories_are_read_and_capped() {
        let body = br##"{"chunk":[
            {"room_id":"!a:x","name":"Small","num_joined_members":2},
            {"room_id":"!b:x","name":"Big","canonical_alias":"#big:x","num_joined_members":90},
            {"room_id":"!c:x","num_joined_members":"many"}
        ],"total_room_count_estimate":12}"##;
        let Some(Directory::Shared { rooms, top }) = directory(StatusCode::OK, body) else {
            panic!("not read");
        };
        assert_eq!(rooms, 12);
        assert_eq!(top.len(), 2, "a room without a member count is left out");
        assert_eq!(top[0].alias.as_deref(), Some("#big:x"));
        assert_eq!(top[1].name.as_deref(), Some("Small"));
        assert_eq!(top[1].alias, None);
        assert_eq!(
            directory(StatusCode::FORBIDDEN, b"{}"),
            Some(Directory::NotShared)
        );
        assert_eq!(directory(StatusCode::OK, b"[]"), None);
        assert_eq!(directory(StatusCode::BAD_GATEWAY, b""), None);
        assert_eq!(
            serde_json::to_value(Directory::NotShared).unwrap(),
            "not_shared"
        );
    }

    #[test]
    fn key_fetches_are_told_apart_by_address() {
        let fetch = |ip: &str| KeyFetch {
            at: Instant::now(),
            from: ip.parse().unwrap(),
            user_agent: "Synapse/1.163.2".into(),
        };
        let own = || ["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()].into_iter();
        assert_eq!(fetched_by(&[], own()), None);
        assert_eq!(
            fetched_by(&[fetch("198.51.100.7")], own()),
            Some(FetchedBy::Notary)
        );
        assert_eq!(
            fetched_by(&[fetch("198.51.100.7"), fetch("::ffff:192.0.2.1")], own()),
            Some(FetchedBy::Server)
        );
        let log = KeyFetches::default();
        let before = Instant::now();
        for _ in 0..FETCHES_KEPT + 3 {
            log.record("192.0.2.1".parse().unwrap(), &"x".repeat(500));
        }
        let seen = log.since(before);
        assert_eq!(seen.len(), FETCHES_KEPT, "the log is bounded");
        assert!(seen[0].user_agent.chars().count() <= 121);
        assert!(
            log.since(Instant::now() + Duration::from_secs(1))
                .is_empty()
        );
    }

    #[test]
    fn the_user_asked_about_is_encoded() {
        assert_eq!(
            text::percent_encode("@mxping-probe:[::1]:8448"),
            "%40mxping-probe%3A%5B%3A%3A1%5D%3A8448"
        );
    }
}
