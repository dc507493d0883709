//! HTTP clients for the requests that are not probes (well-known files, the client API):
//! reqwest with hickory resolution through the private-address guard, verifying TLS, no
//! proxies, no automatic redirects (callers follow them by hand where the spec allows).

use std::net::SocketAddr;

use crate::classify;
use crate::dns::Dns;
use crate::error::{ErrorKind, ProbeError};
use crate::net_guard::NetGuard;

/// A client resolving through `dns` and refusing addresses `guard` blocks. `idle` is how many
/// idle connections per host to keep (0: a fresh connection for every request).
pub fn guarded_client(
    dns: Dns,
    guard: NetGuard,
    tls: rustls::ClientConfig,
    idle: usize,
) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .dns_resolver(GuardedResolver { dns, guard })
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .http1_only()
        .pool_max_idle_per_host(idle)
        .user_agent(crate::USER_AGENT)
        .build()
        .expect("reqwest client with a preconfigured rustls config builds")
}

/// reqwest's resolver: hickory lookups, then the private-address guard, so redirects to other
/// hosts are resolved and guarded in the same place.
pub(crate) struct GuardedResolver {
    dns: Dns,
    guard: NetGuard,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let dns = self.dns.clone();
        let guard = self.guard.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let lookup = dns.host(&host).await;
            if lookup.addresses.is_empty() {
                let error = if lookup.errors.is_empty() {
                    ProbeError::new(
                        ErrorKind::NoAddress,
                        format!("{host} has no A or AAAA record"),
                    )
                } else {
                    ProbeError::new(
                        ErrorKind::Dns,
                        format!("looking up {host} failed: {}", lookup.errors.join("; ")),
                    )
                };
                return Err(Box::new(classify::Resolution(error)) as _);
            }
            let mut blocked = None;
            let allowed: Vec<SocketAddr> = lookup
                .addresses
                .iter()
                .filter(|ip| match guard.check(**ip) {
                    Ok(()) => true,
                    Err(e) => {
                        blocked.get_or_insert(e);
                        false
                    }
                })
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect();
            if allowed.is_empty() {
                let e = blocked.expect("some address was blocked");
                return Err(Box::new(classify::Resolution(e)) as _);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}
