//! mxping: a Matrix homeserver latency and availability monitor.
//!
//! Data flows one way: config → scheduler → discovery → probe → history → page / API / metrics.
//! Each stage is a folder: `config/` (servers.toml → validated config), `scheduler/` (per-server
//! loops, hysteresis, published snapshots), `discovery/` (the spec's resolution steps, DNS),
//! `net/` (the guarded connector, the small HTTPS client, TLS, error classification), `probe/`
//! (federation rounds, signing keys, the client API), `history/` (rings, rollups, events, the
//! store), `web/` (pages, API, badges, feed) and `cli/` (`check`, `serve`).

// The stages, in the order data flows through them.
pub mod cli;
pub mod config;
pub mod discovery;
pub mod history;
pub mod metrics;
pub mod net;
pub mod probe;
pub mod scheduler;
pub mod web;

// What the stages share: the contract's objects, error kinds, names, words and time.
pub mod error;
pub mod i18n;
pub mod report;
pub mod server_name;
pub(crate) mod text;
pub(crate) mod timestamp;

use std::time::Duration;

use time::OffsetDateTime;

use crate::config::Config;
use crate::discovery::Discovery;
use crate::discovery::dns::Dns;
use crate::net::guard::NetGuard;
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
    pub client: Option<probe::client_api::ClientChecker>,
}

impl Services {
    /// Builds the services for `config`.
    pub fn new(config: &Config) -> Result<Services, net::tls::RootsError> {
        let roots = net::tls::load_roots(config.tls.roots, config.tls.extra_ca_file.as_deref())?;
        let dns = Dns::new(&config.dns.nameservers, config.dns.timeout);
        let guard = NetGuard::new(config.network.allow.clone());
        // One guarded, verifying client for every request that is not a probe.
        let fetcher = net::fetch::Fetcher::new(
            dns.clone(),
            guard.clone(),
            net::tls::verifying_config(roots.clone()),
        );
        let discovery = Discovery::new(dns, guard.clone(), fetcher.clone(), config.monitor.timeout);
        let client = config
            .monitor
            .check_client
            .then(|| probe::client_api::ClientChecker::new(fetcher, config.monitor.timeout));
        let prober = Prober::new(
            guard,
            net::tls::ProbeTls::new(roots),
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
