//! DNS lookups for discovery: SRV records, and A + AAAA for a host with its CNAME chain, each
//! classified as found / not found (NXDOMAIN or no records: the spec's cue to fall back) /
//! failed (SERVFAIL, timeout, refused: reported as a `dns` error, never silently skipped).
//!
//! Names are always queried fully qualified (trailing dot) so the host's search domains never
//! turn `matrix.org` into `matrix.org.corp.example`.
//!
//! Answers are cached for their TTL, so a long-running monitor re-resolves exactly when records
//! expire: found records until the earliest TTL of the answer (at most a day), "no such
//! records" for the zone's negative TTL (RFC 2308: the SOA's TTL or minimum, whichever is less;
//! at most an hour, as RFC 2308 advises), failures never. The cache keeps only what discovery
//! uses from each answer (targets, addresses, CNAME names, expiry): a whole response message,
//! as a resolver caches it, is ten to fifty times larger, and at 10,000 servers (about four
//! answers each) that difference was 45 MB.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use serde::Serialize;
use tokio::time::Instant;

use crate::error::Trouble;

/// At most this many addresses per host are kept; a larger answer is capped and reported.
pub(crate) const MAX_ADDRESSES_PER_HOST: usize = 16;
/// At most this many SRV records are probed: the first in the order a homeserver would try
/// them (priority, then RFC 2782 weight), never the first in answer order.
pub(crate) const MAX_SRV_RECORDS: usize = 16;
/// At most this many records of one SRV answer are kept for ordering (lowest priority values
/// first), bounding the work a huge answer can cause.
const MAX_SRV_KEPT: usize = 1024;
/// Found records are kept at most this long, whatever their TTL (as resolvers cap them).
const MAX_POSITIVE_TTL: Duration = Duration::from_secs(86_400);
/// "No such records" is kept at most this long (RFC 2308 §5: one to three hours work well).
const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(3_600);
/// At most this many answers are cached (about 150 bytes each): room for every answer of tens
/// of thousands of monitored servers (A, AAAA and two SRV names each). When full, expired
/// answers are dropped first; an answer that still finds no room is not cached.
const MAX_CACHED: usize = 262_144;

/// A configured DNS resolver.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    /// Set when no resolver could be configured; every lookup then fails with this reason.
    unusable: Option<String>,
    cache: Arc<Cache>,
}

/// The outcome of one DNS query.
#[derive(Clone, Debug)]
pub enum Answer<T> {
    /// Records were found.
    Found(T),
    /// NXDOMAIN or an empty answer: the name has no such records.
    NotFound,
    /// The lookup itself failed (SERVFAIL, timeout, refused, ...).
    Failed(String),
    /// The monitor could not ask: it had no socket or memory to spare (its own trouble, not
    /// the name's).
    Unable(Trouble, String),
}

/// A lookup that failed without an answer from the DNS server (a timeout, no connection, an
/// io error): the monitor's own trouble when it cannot open a socket now, else `why`.
pub(crate) fn failed_without_answer<T>(why: String) -> Answer<T> {
    match Trouble::now() {
        Some(trouble) => Answer::Unable(trouble, why),
        None => Answer::Failed(why),
    }
}

/// One SRV record, target without its trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative weight within a priority.
    pub weight: u16,
    /// Port to connect to.
    pub port: u16,
    /// Target host; `"."` means "service not available here".
    pub target: String,
}

/// SRV records with the time they stay valid.
#[derive(Clone, Debug)]
pub struct SrvAnswer {
    /// The records, by ascending priority (at most 1024; discovery orders them by weight and
    /// keeps [`MAX_SRV_RECORDS`]).
    pub records: Vec<SrvRecord>,
    /// How many records the answer held before capping.
    pub total: usize,
    /// When the answer expires (record TTL).
    pub valid_until: Instant,
}

/// The result of looking up A and AAAA for one host.
#[derive(Clone, Debug, Serialize)]
pub struct HostLookup {
    /// The name looked up.
    pub host: String,
    /// CNAME chain followed, in order (empty when the name has A/AAAA records itself).
    pub cnames: Vec<String>,
    /// Addresses found, IPv6 first then IPv4, capped at [`MAX_ADDRESSES_PER_HOST`].
    pub addresses: Vec<IpAddr>,
    /// How many addresses the answers held before capping.
    pub total_addresses: usize,
    /// Lookups that failed (not "no records"), e.g. `AAAA: the DNS server answered SERVFAIL`.
    pub errors: Vec<String>,
    /// When the earliest answer expires.
    #[serde(skip)]
    pub valid_until: Option<Instant>,
    /// A lookup failed because the monitor could not ask (no socket, no memory).
    #[serde(rename = "monitor_trouble", skip_serializing_if = "Option::is_none")]
    pub trouble: Option<Trouble>,
}

impl HostLookup {
    /// The error for a lookup that found no address, naming the failures.
    pub(crate) fn failure(&self, what: String) -> crate::error::ProbeError {
        use crate::error::{ErrorKind, ProbeError};
        let why = format!("{what}: {}", self.errors.join("; "));
        match self.trouble {
            Some(trouble) => ProbeError::monitor_trouble(ErrorKind::Dns, trouble, why),
            None => ProbeError::new(ErrorKind::Dns, why),
        }
    }
}

impl Dns {
    /// A resolver using `nameservers` (`ip:port`), or the system configuration when empty.
    /// `timeout` bounds each query attempt.
    pub fn new(nameservers: &[SocketAddr], timeout: Duration) -> Dns {
        let provider = TokioRuntimeProvider::default();
        let (mut builder, unusable) = if nameservers.is_empty() {
            match TokioResolver::builder(provider.clone()) {
                Ok(b) => (b, None),
                Err(e) => (
                    TokioResolver::builder_with_config(ResolverConfig::default(), provider),
                    Some(format!(
                        "the system resolver configuration could not be read ({e}); \
                         set [dns] nameservers"
                    )),
                ),
            }
        } else {
            let servers = nameservers
                .iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
                })
                .collect();
            let config = ResolverConfig::from_name_servers(servers);
            (TokioResolver::builder_with_config(config, provider), None)
        };
        // Options from resolv.conf are kept except what discovery depends on: bounded
        // queries, CNAME records in answers, and names taken as fully qualified.
        let opts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 2;
        opts.preserve_intermediates = true;
        opts.ndots = 0;
        // Answers are cached here (see the module's notes), not as whole messages in hickory.
        opts.cache_size = 0;
        if !nameservers.is_empty() {
            // Explicit name servers mean "ask these", not /etc/hosts.
            opts.use_hosts_file = ResolveHosts::Never;
        }
        let resolver = builder
            .build()
            .expect("a resolver with plain UDP/TCP name servers always builds");
        Dns {
            resolver,
            unusable,
            cache: Arc::new(Cache::new(MAX_CACHED)),
        }
    }

    /// Looks up SRV records for `name` (e.g. `_matrix-fed._tcp.example.com`).
    pub async fn srv(&self, name: &str) -> Answer<SrvAnswer> {
        if let Some(why) = &self.unusable {
            return Answer::Failed(why.clone());
        }
        let key = Key::new(name, RecordType::SRV);
        if let Some(Cached::Srv(answer)) = self.cache.get(&key) {
            return answer;
        }
        let (answer, until) = match self.resolver.lookup(fqdn(name), RecordType::SRV).await {
            Ok(lookup) => {
                let mut records: Vec<SrvRecord> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::SRV(srv) => Some(SrvRecord {
                            priority: srv.priority,
                            weight: srv.weight,
                            port: srv.port,
                            target: display_name(&srv.target.to_ascii()),
                        }),
                        // Non-SRV answers (a stray A record) are ignored (edge case E8).
                        _ => None,
                    })
                    .collect();
                let until = positive_expiry(&lookup);
                if records.is_empty() {
                    (Answer::NotFound, Some(until))
                } else {
                    let total = records.len();
                    // Sorted before any cap, so a record with a low priority value can't vanish
                    // because the server listed it late.
                    records.sort_by_key(|r| r.priority);
                    records.truncate(MAX_SRV_KEPT);
                    records.shrink_to_fit();
                    let answer = SrvAnswer {
                        records,
                        total,
                        valid_until: until,
                    };
                    (Answer::Found(answer), Some(until))
                }
            }
            Err(e) => (classify(&e), negative_expiry(&e)),
        };
        // Failures have no expiry: they are never kept.
        if let Some(until) = until {
            self.cache.put(key, until, Cached::Srv(answer.clone()));
        }
        answer
    }

    /// Looks up AAAA and A for `host` concurrently, following CNAMEs.
    ///
    /// (See also [`HostLookup::failed`] for a lookup that could not be made.)
    pub async fn host(&self, host: &str) -> HostLookup {
        if let Some(why) = &self.unusable {
            return HostLookup::failed(host, why.clone());
        }
        let mut out = HostLookup::failed(host, String::new());
        out.errors.clear();
        let (v6, v4) = tokio::join!(
            self.family(host, RecordType::AAAA),
            self.family(host, RecordType::A)
        );
        for (family, result) in [("AAAA", v6), ("A", v4)] {
            match result {
                Answer::Found(found) => {
                    out.valid_until = Some(match out.valid_until {
                        Some(t) => t.min(found.valid_until),
                        None => found.valid_until,
                    });
                    for ip in found.addresses.iter() {
                        out.total_addresses += 1;
                        if out.addresses.len() < MAX_ADDRESSES_PER_HOST {
                            out.addresses.push(*ip);
                        }
                    }
                    out.total_addresses += found.more;
                    for target in found.cnames.iter() {
                        if !out.cnames.iter().any(|c| **c == **target) {
                            out.cnames.push(target.to_string());
                        }
                    }
                }
                Answer::NotFound => {}
                Answer::Failed(why) => out.errors.push(format!("{family}: {why}")),
                Answer::Unable(trouble, why) => {
                    out.trouble = Some(trouble);
                    out.errors.push(format!("{family}: {why}"));
                }
            }
        }
        out
    }

    /// The addresses of one family (AAAA or A) for `host`, from the cache while it holds them.
    async fn family(&self, host: &str, rtype: RecordType) -> Answer<Family> {
        let key = Key::new(host, rtype);
        if let Some(Cached::Family(answer)) = self.cache.get(&key) {
            return answer;
        }
        let (answer, until) = match self.resolver.lookup(fqdn(host), rtype).await {
            Ok(lookup) => {
                let until = positive_expiry(&lookup);
                let mut addresses = Vec::new();
                let mut more = 0;
                let mut cnames: Vec<Box<str>> = Vec::new();
                for record in lookup.answers() {
                    let ip = match &record.data {
                        RData::AAAA(a) => IpAddr::V6(a.0),
                        RData::A(a) => IpAddr::V4(a.0),
                        RData::CNAME(c) => {
                            let target = display_name(&c.0.to_ascii());
                            if !cnames.iter().any(|t| **t == *target) {
                                cnames.push(target.into());
                            }
                            continue;
                        }
                        _ => continue,
                    };
                    if addresses.contains(&ip) {
                        continue;
                    }
                    if addresses.len() < MAX_ADDRESSES_PER_HOST {
                        addresses.push(ip);
                    } else {
                        more += 1;
                    }
                }
                let found = Family {
                    addresses: addresses.into(),
                    more,
                    cnames: cnames.into(),
                    valid_until: until,
                };
                (Answer::Found(found), Some(until))
            }
            Err(e) => (classify(&e), negative_expiry(&e)),
        };
        // Failures have no expiry: they are never kept.
        if let Some(until) = until {
            self.cache.put(key, until, Cached::Family(answer.clone()));
        }
        answer
    }
}

/// The addresses of one family for a host, as cached: boxed slices, no spare room.
#[derive(Clone, Debug)]
struct Family {
    /// At most [`MAX_ADDRESSES_PER_HOST`], without duplicates, in answer order.
    addresses: Box<[IpAddr]>,
    /// Addresses beyond those kept.
    more: usize,
    /// The CNAME chain followed to them.
    cnames: Box<[Box<str>]>,
    valid_until: Instant,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    /// Lower case, without the trailing dot: DNS names compare case-insensitively.
    name: Box<str>,
    rtype: RecordType,
}

impl Key {
    fn new(name: &str, rtype: RecordType) -> Key {
        Key {
            name: name.trim_end_matches('.').to_ascii_lowercase().into(),
            rtype,
        }
    }
}

#[derive(Clone, Debug)]
enum Cached {
    Srv(Answer<SrvAnswer>),
    Family(Answer<Family>),
}

/// Answers by query until they expire, at most `cap` of them.
struct Cache {
    cap: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<Key, (Instant, Cached)>,
    /// The size at which expired answers are next swept out.
    sweep_at: usize,
    /// Set when a sweep left the cache full: the earliest expiry in it, before which another
    /// sweep would free nothing.
    full_until: Option<Instant>,
}

impl Cache {
    fn new(cap: usize) -> Cache {
        Cache {
            cap,
            inner: Mutex::default(),
        }
    }

    fn get(&self, key: &Key) -> Option<Cached> {
        let inner = self.inner.lock().expect("dns cache lock");
        let (until, answer) = inner.entries.get(key)?;
        (Instant::now() < *until).then(|| answer.clone())
    }

    fn put(&self, key: Key, until: Instant, answer: Cached) {
        let now = Instant::now();
        if until <= now {
            return;
        }
        let mut inner = self.inner.lock().expect("dns cache lock");
        if inner.entries.len() >= inner.sweep_at && !inner.entries.contains_key(&key) {
            if inner.full_until.is_some_and(|t| now < t) {
                return;
            }
            // Sweeping when the map has doubled since the last sweep keeps the work per
            // insert constant and the map within twice what is live.
            let mut earliest: Option<Instant> = None;
            inner.entries.retain(|_, (until, _)| {
                let live = now < *until;
                if live {
                    earliest = Some(earliest.map_or(*until, |e| e.min(*until)));
                }
                live
            });
            let live = inner.entries.len();
            inner.sweep_at = (live * 2).clamp(1024.min(self.cap), self.cap);
            inner.full_until = None;
            if live >= self.cap {
                inner.full_until = earliest;
                return;
            }
        }
        inner.entries.insert(key, (until, answer));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().entries.len()
    }
}

/// When a found answer expires: its earliest record TTL, at most [`MAX_POSITIVE_TTL`].
fn positive_expiry(lookup: &hickory_resolver::lookup::Lookup) -> Instant {
    let now = Instant::now();
    Instant::from_std(lookup.valid_until()).min(now + MAX_POSITIVE_TTL)
}

/// When a "no such records" answer expires (RFC 2308), or `None` for an error that is not
/// one, or a negative answer without an SOA (nothing says how long it holds).
fn negative_expiry(e: &NetError) -> Option<Instant> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(no)) => no
            .negative_ttl
            .map(|ttl| Instant::now() + Duration::from_secs(u64::from(ttl)).min(MAX_NEGATIVE_TTL)),
        _ => None,
    }
}

impl HostLookup {
    /// A lookup of `host` that failed as a whole for `why`.
    pub fn failed(host: &str, why: String) -> HostLookup {
        HostLookup {
            host: host.to_owned(),
            cnames: Vec::new(),
            addresses: Vec::new(),
            total_addresses: 0,
            errors: vec![why],
            valid_until: None,
            trouble: None,
        }
    }

    /// A lookup of `host` that got no answer in time: the monitor's trouble when it cannot
    /// open a socket now.
    pub fn timed_out(host: &str, why: String) -> HostLookup {
        let mut lookup = HostLookup::failed(host, why);
        lookup.trouble = Trouble::now();
        lookup
    }
}

/// `name` with exactly one trailing dot.
fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// A DNS name for display and connection: without the trailing dot (edge case E9).
/// The root name stays `"."`.
fn display_name(name: &str) -> String {
    if name == "." {
        return ".".into();
    }
    name.trim_end_matches('.').to_owned()
}

/// Splits hickory errors into "the name has no such records" (fall back, as the spec says)
/// and real failures (reported).
fn classify<T>(e: &NetError) -> Answer<T> {
    if let Some(trouble) = crate::net::classify::trouble_in(e) {
        return Answer::Unable(trouble, format!("lookup failed: {e}"));
    }
    match e {
        NetError::Dns(DnsError::NoRecordsFound(_)) => Answer::NotFound,
        NetError::Dns(DnsError::ResponseCode(code)) => Answer::Failed(match code {
            ResponseCode::ServFail => "the DNS server answered SERVFAIL".into(),
            ResponseCode::Refused => "the DNS server refused the query (REFUSED)".into(),
            other => format!("the DNS server answered {other}"),
        }),
        NetError::Timeout => {
            failed_without_answer("no answer from the DNS server (timed out)".into())
        }
        NetError::NoConnections => failed_without_answer("no DNS server could be reached".into()),
        other => failed_without_answer(format!("lookup failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_queried_fully_qualified_and_shown_without_the_dot() {
        assert_eq!(fqdn("matrix.org"), "matrix.org.");
        assert_eq!(fqdn("matrix.org."), "matrix.org.");
        assert_eq!(display_name("fed.example.net."), "fed.example.net");
        assert_eq!(display_name("."), ".");
    }

    fn found(ip: &str) -> Cached {
        Cached::Family(Answer::Found(Family {
            addresses: vec![ip.parse().unwrap()].into(),
            more: 0,
            cnames: Box::default(),
            valid_until: Instant::now(),
        }))
    }

    fn address(cached: Option<Cached>) -> Option<String> {
        match cached? {
            Cached::Family(Answer::Found(f)) => Some(f.addresses[0].to_string()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answers_are_kept_until_they_expire_under_a_case_blind_name() {
        let cache = Cache::new(16);
        let now = Instant::now();
        cache.put(
            Key::new("Host.Example.", RecordType::A),
            now + Duration::from_secs(60),
            found("192.0.2.1"),
        );
        assert_eq!(
            address(cache.get(&Key::new("host.example", RecordType::A))).as_deref(),
            Some("192.0.2.1")
        );
        assert!(
            cache
                .get(&Key::new("host.example", RecordType::AAAA))
                .is_none()
        );
        // Already expired (TTL 0): not kept at all.
        cache.put(
            Key::new("zero.example", RecordType::A),
            now,
            found("192.0.2.2"),
        );
        assert!(
            cache
                .get(&Key::new("zero.example", RecordType::A))
                .is_none()
        );
        assert_eq!(cache.len(), 1);
        // A newer answer replaces the old one.
        cache.put(
            Key::new("host.example", RecordType::A),
            now + Duration::from_secs(60),
            found("192.0.2.3"),
        );
        assert_eq!(
            address(cache.get(&Key::new("host.example", RecordType::A))).as_deref(),
            Some("192.0.2.3")
        );
    }

    #[test]
    fn expired_answers_are_swept_out_and_the_cache_never_outgrows_its_cap() {
        let cache = Cache::new(4_096);
        // Far enough ahead that 2,000 inserts on a loaded machine finish before it (30 ms
        // did not, once, in a full parallel run).
        let soon = Instant::now() + Duration::from_millis(500);
        for i in 0..2_000 {
            cache.put(
                Key::new(&format!("s{i}.example"), RecordType::A),
                soon,
                found("192.0.2.1"),
            );
        }
        assert_eq!(cache.len(), 2_000);
        std::thread::sleep(
            soon.saturating_duration_since(Instant::now()) + Duration::from_millis(10),
        );
        // Once the map reaches its sweep mark (twice the last live count), the expired
        // answers go.
        let later = Instant::now() + Duration::from_secs(60);
        for i in 0..100 {
            cache.put(
                Key::new(&format!("live{i}.example"), RecordType::A),
                later,
                found("192.0.2.9"),
            );
        }
        assert_eq!(cache.len(), 100);

        for i in 0..5_000 {
            cache.put(
                Key::new(&format!("l{i}.example"), RecordType::SRV),
                later,
                found("192.0.2.1"),
            );
        }
        assert_eq!(cache.len(), 4_096);
        // Full of live answers: a new one is not cached, the old ones stay.
        cache.put(
            Key::new("late.example", RecordType::A),
            later,
            found("192.0.2.1"),
        );
        assert!(
            cache
                .get(&Key::new("late.example", RecordType::A))
                .is_none()
        );
        assert!(
            cache
                .get(&Key::new("live0.example", RecordType::A))
                .is_some()
        );
    }
}
