//! DNS lookups for discovery: SRV records, and A + AAAA for a host with its CNAME chain, each
//! classified as found / not found (NXDOMAIN or no records: the spec's cue to fall back) /
//! failed (SERVFAIL, timeout, refused: reported as a `dns` error, never silently skipped).
//!
//! Names are always queried fully qualified (trailing dot) so the host's search domains never
//! turn `matrix.org` into `matrix.org.corp.example`. Lookups are cached by record TTL inside
//! hickory, so a long-running monitor re-resolves exactly when records expire.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use serde::Serialize;
use tokio::time::Instant;

/// At most this many addresses per host are kept; a larger answer is capped and reported.
pub const MAX_ADDRESSES_PER_HOST: usize = 16;
/// At most this many SRV records are probed: the first in the order a homeserver would try
/// them (priority, then RFC 2782 weight), never the first in answer order.
pub const MAX_SRV_RECORDS: usize = 16;
/// At most this many records of one SRV answer are kept for ordering (lowest priority values
/// first), bounding the work a huge answer can cause.
const MAX_SRV_KEPT: usize = 1024;

/// A configured DNS resolver.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    /// Set when no resolver could be configured; every lookup then fails with this reason.
    unusable: Option<String>,
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
        // Room for every record of thousands of monitored servers (A, AAAA, two SRV names
        // each), so lookups are answered from cache until their TTLs expire.
        opts.cache_size = 65_536;
        if !nameservers.is_empty() {
            // Explicit name servers mean "ask these", not /etc/hosts.
            opts.use_hosts_file = ResolveHosts::Never;
        }
        let resolver = builder
            .build()
            .expect("a resolver with plain UDP/TCP name servers always builds");
        Dns { resolver, unusable }
    }

    /// Looks up SRV records for `name` (e.g. `_matrix-fed._tcp.example.com`).
    pub async fn srv(&self, name: &str) -> Answer<SrvAnswer> {
        if let Some(why) = &self.unusable {
            return Answer::Failed(why.clone());
        }
        match self.resolver.lookup(fqdn(name), RecordType::SRV).await {
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
                if records.is_empty() {
                    return Answer::NotFound;
                }
                let total = records.len();
                // Sorted before any cap, so a record with a low priority value can't vanish
                // because the server listed it late.
                records.sort_by_key(|r| r.priority);
                records.truncate(MAX_SRV_KEPT);
                Answer::Found(SrvAnswer {
                    records,
                    total,
                    valid_until: Instant::from_std(lookup.valid_until()),
                })
            }
            Err(e) => classify(&e),
        }
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
        let name = fqdn(host);
        let (v6, v4) = tokio::join!(
            self.resolver.lookup(name.clone(), RecordType::AAAA),
            self.resolver.lookup(name, RecordType::A),
        );
        for (family, result) in [("AAAA", v6), ("A", v4)] {
            match result {
                Ok(lookup) => {
                    out.valid_until = Some(match out.valid_until {
                        Some(t) => t.min(Instant::from_std(lookup.valid_until())),
                        None => Instant::from_std(lookup.valid_until()),
                    });
                    for record in lookup.answers() {
                        match &record.data {
                            RData::AAAA(a) => push_addr(&mut out, IpAddr::V6(a.0)),
                            RData::A(a) => push_addr(&mut out, IpAddr::V4(a.0)),
                            RData::CNAME(c) => {
                                let target = display_name(&c.0.to_ascii());
                                if !out.cnames.contains(&target) {
                                    out.cnames.push(target);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                Err(e) => {
                    if let Answer::Failed(why) = classify::<()>(&e) {
                        out.errors.push(format!("{family}: {why}"));
                    }
                }
            }
        }
        out
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
        }
    }
}

fn push_addr(out: &mut HostLookup, ip: IpAddr) {
    if out.addresses.contains(&ip) {
        return;
    }
    out.total_addresses += 1;
    if out.addresses.len() < MAX_ADDRESSES_PER_HOST {
        out.addresses.push(ip);
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
    match e {
        NetError::Dns(DnsError::NoRecordsFound(_)) => Answer::NotFound,
        NetError::Dns(DnsError::ResponseCode(code)) => Answer::Failed(match code {
            ResponseCode::ServFail => "the DNS server answered SERVFAIL".into(),
            ResponseCode::Refused => "the DNS server refused the query (REFUSED)".into(),
            other => format!("the DNS server answered {other}"),
        }),
        NetError::Timeout => Answer::Failed("no answer from the DNS server (timed out)".into()),
        NetError::NoConnections => Answer::Failed("no DNS server could be reached".into()),
        other => Answer::Failed(format!("lookup failed: {other}")),
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
}
