//! Discovery and probing wired together from a config: one round of one server, as the
//! scheduler and `mxping check` both run it.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::config::Config;
use crate::discovery::{self, Discovery};
use crate::error;
use crate::net::dns::Dns;
use crate::net::{self, guard::NetGuard};
use crate::probe::{self, ProbeSettings, Prober};
use crate::report::Round;

/// Discovery and probing, built from a config. Everything that reaches the network is created
/// here from settings, so tests aim the production code at loopback servers through config.
pub struct Services {
    /// Resolves server names.
    pub discovery: Discovery,
    /// Probes targets.
    pub prober: Prober,
    /// Checks the client API, when enabled.
    pub client: Option<probe::client_api::ClientChecker>,
    /// Checks sign-up facts, when enabled.
    pub signup: Option<probe::signup::SignupChecker>,
    /// The guarded, verifying client for every request that is not a probe (public lists).
    pub fetcher: net::fetch::Fetcher,
    /// Signs and sends the federation check, with `[federation]`.
    pub federation: Option<probe::federation::FederationChecker>,
}

impl Services {
    /// Builds the services for `config`.
    pub fn new(config: &Config) -> Result<Services, crate::config::roots::RootsError> {
        let roots = crate::config::roots::load_roots(
            config.tls.roots,
            config.tls.extra_ca_file.as_deref(),
        )?;
        let dns = Dns::new(&config.dns.nameservers, config.dns.timeout);
        let guard = NetGuard::new(config.network.allow.clone());
        // One guarded, verifying client for every request that is not a probe.
        let fetcher = net::fetch::Fetcher::new(
            dns.clone(),
            guard.clone(),
            net::tls::verifying_config(roots.clone()),
        );
        let discovery = Discovery::new(dns, guard.clone(), fetcher.clone(), config.monitor.timeout);
        let client = config.monitor.check_client.then(|| {
            probe::client_api::ClientChecker::new(fetcher.clone(), config.monitor.timeout)
        });
        let signup = config
            .monitor
            .check_signup
            .then(|| probe::signup::SignupChecker::new(fetcher.clone(), config.monitor.timeout));
        let prober = Prober::new(
            guard,
            net::tls::ProbeTls::new(roots),
            ProbeSettings {
                timeout: config.monitor.timeout,
                pings: config.monitor.pings,
                check_keys: config.monitor.check_keys,
            },
        );
        let federation = config.federation.as_ref().and_then(|f| {
            // The config's check read this file; it may have gone since.
            match crate::signing::Key::read(&f.key_file) {
                Ok(key) => Some(probe::federation::FederationChecker::new(
                    prober.clone(),
                    key,
                    f.server_name.clone(),
                )),
                Err(e) => {
                    tracing::error!("[federation] key_file: {e}; no federation checks");
                    None
                }
            }
        });
        Ok(Services {
            discovery,
            prober,
            client,
            signup,
            fetcher,
            federation,
        })
    }

    /// Resolves `name` and probes every address once.
    pub async fn round(&self, name: &str) -> Round {
        let resolution = self.discovery.resolve(name).await;
        self.probe(Arc::new(resolution), name).await
    }

    /// Probes every target of an existing resolution once, and the client API beside it.
    pub async fn probe(&self, resolution: Arc<discovery::Resolution>, name: &str) -> Round {
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

/// [`Fetcher::trusted`](net::fetch::Fetcher::trusted) with `config`'s trust store and DNS
/// settings: the client for alert endpoints, public lists marked trusted and an agent's hub.
pub(crate) fn trusted_fetcher(
    config: &Config,
) -> Result<net::fetch::Fetcher, crate::config::roots::RootsError> {
    let roots =
        crate::config::roots::load_roots(config.tls.roots, config.tls.extra_ca_file.as_deref())?;
    let dns = Dns::new(&config.dns.nameservers, config.dns.timeout);
    Ok(net::fetch::Fetcher::trusted(dns, roots))
}
