//! mxping: a Matrix homeserver latency and availability monitor.
//!
//! Data flows one way: config → scheduler → discovery → probe → history → page / API / metrics.

pub mod check;
pub mod classify;
pub mod client_api;
pub mod config;
pub mod discovery;
pub mod dns;
pub mod error;
pub mod fetch;
pub mod history;
pub mod i18n;
pub mod keys;
pub mod metrics;
pub mod monitor;
pub mod net_guard;
pub mod probe;
pub mod report;
pub mod serve;
pub mod server_name;
pub mod store;
pub mod text;
pub mod timestamp;
pub mod tls;
pub mod web;

use std::time::Duration;

use time::OffsetDateTime;

use crate::config::Config;
use crate::discovery::Discovery;
use crate::dns::Dns;
use crate::net_guard::NetGuard;
use crate::probe::{ProbeSettings, Prober};
use crate::report::Round;

/// Sent as `User-Agent` on every request.
pub const USER_AGENT: &str = concat!("mxping/", env!("CARGO_PKG_VERSION"));

/// A duration in milliseconds, rounded to the microsecond.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Discovery and probing, built from a config. Everything that reaches the network is created
/// here from settings, so tests aim the production code at loopback servers through config.
pub struct Services {
    /// Resolves server names.
    pub discovery: Discovery,
    /// Probes targets.
    pub prober: Prober,
    /// Checks the client API, when enabled.
    pub client: Option<client_api::ClientChecker>,
}

impl Services {
    /// Builds the services for `config`.
    pub fn new(config: &Config) -> Result<Services, String> {
        let roots = tls::load_roots(config.tls.roots, config.tls.extra_ca_file.as_deref())?;
        let dns = Dns::new(&config.dns.nameservers, config.dns.timeout);
        let guard = NetGuard::new(config.network.allow.clone());
        // One guarded, verifying client for every request that is not a probe.
        let fetcher = fetch::Fetcher::new(
            dns.clone(),
            guard.clone(),
            tls::verifying_config(roots.clone()),
        );
        let discovery = Discovery::new(dns, guard.clone(), fetcher.clone(), config.monitor.timeout);
        let client = config
            .monitor
            .check_client
            .then(|| client_api::ClientChecker::new(fetcher, config.monitor.timeout));
        let prober = Prober::new(
            guard,
            tls::ProbeTls::new(roots),
            ProbeSettings {
                timeout: config.monitor.timeout,
                pings: config.monitor.pings,
                check_keys: config.monitor.check_keys,
            },
        );
        Ok(Services {
            discovery,
            prober,
            client,
        })
    }

    /// Resolves `name` and probes every address once.
    pub async fn round(&self, name: &str) -> Round {
        let resolution = self.discovery.resolve(name).await;
        self.probe(resolution, name).await
    }

    /// Probes every target of an existing resolution once, and the client API beside it.
    pub async fn probe(&self, resolution: discovery::Resolution, name: &str) -> Round {
        let federation = probe::probe_all(&self.prober, &resolution.targets, name);
        let client = async {
            match (&self.client, &resolution.error) {
                // An invalid name has no client API either; a name whose federation address
                // is blocked is not contacted in any other way.
                (_, Some(e))
                    if matches!(
                        e.kind,
                        error::ErrorKind::InvalidName | error::ErrorKind::BlockedAddress
                    ) =>
                {
                    None
                }
                (Some(c), _) => Some(c.check(name).await),
                (None, _) => None,
            }
        };
        let (addresses, client) = tokio::join!(federation, client);
        Round {
            resolution,
            addresses,
            client,
            finished_at: OffsetDateTime::now_utc(),
        }
    }
}
