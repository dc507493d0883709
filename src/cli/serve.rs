//! `mxping serve`: validate the config, bind, start the monitor and the web app, reload on
//! SIGHUP, and shut down on SIGINT/SIGTERM with a bounded drain.
//!
//! Order matters: nothing is bound and no probe is sent until the config is valid, and the
//! listener is bound before the first probe, so a port in use fails fast with a config error.
//!
//! `[[source]]` lists are read before the monitor starts and again every `refresh`; a list that
//! changed is applied like a reload (servers that left it stop, their history stays in the
//! store), and one that cannot be read or is rejected leaves the last good copy running.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError, ServerConfig, SourceConfig};
use crate::history::store::{Retention, Store, StoreError};
use crate::metrics::Metrics;
use crate::scheduler::{Monitor, StartError};

/// How long in-flight work may take to finish after SIGINT/SIGTERM.
pub const GRACE: Duration = Duration::from_secs(5);

/// Where the config comes from; re-read on SIGHUP.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// `--config FILE`.
    File(PathBuf),
    /// `./servers.toml` if present, else the built-in list.
    Default,
}

impl ConfigSource {
    /// Loads and validates the config.
    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(path) => Config::load(path),
            ConfigSource::Default => Config::load_default(),
        }
    }
}

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config is invalid (exit code 2).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The listen address cannot be bound (exit code 2: fix `[web] listen`).
    #[error(
        "cannot listen on {addr}: {source}; change [web] listen (or --listen) or stop the process using it"
    )]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The history store cannot be used (exit code 1; the file is left untouched).
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Alerts cannot start: their outbox, their roots or their thread (exit code 1).
    #[error(transparent)]
    Alerts(#[from] crate::alert::AlertsError),
    /// The admin API's token cannot be read (exit code 2: fix `[web] admin_token_file`).
    #[error("{0}")]
    Admin(String),
    /// The monitor could not start: its roots or its store.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The operating system refused something every start needs (signal handlers, the
    /// bound socket's address).
    #[error("{what}: {source}")]
    System {
        /// What could not be set up.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

impl ServeError {
    /// The exit code: 2 for what the user fixes in the config or command line (as for
    /// `validate`), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::Config(_)
            | ServeError::Admin(_)
            | ServeError::Listen { .. }
            | ServeError::Start(StartError::Roots(_)) => 2,
            ServeError::Store(_)
            | ServeError::Alerts(_)
            | ServeError::Start(StartError::Store(_) | StartError::Tables(_))
            | ServeError::System { .. } => 1,
        }
    }
}

/// Runs the monitor until SIGINT or SIGTERM. `listen` and `data_dir` override the config's
/// `[web] listen` and `[storage] data_dir`.
pub async fn run(
    source: ConfigSource,
    listen: Option<SocketAddr>,
    data_dir: Option<std::path::PathBuf>,
) -> Result<(), ServeError> {
    let load = || {
        source.load().map(|mut config| {
            if let Some(dir) = &data_dir {
                config.storage.data_dir = Some(dir.clone());
            }
            config
        })
    };
    let mut file_config = load()?;
    let addr = listen.unwrap_or(file_config.web.listen);
    let listener =
        crate::web::listener::bind(addr).map_err(|source| ServeError::Listen { addr, source })?;
    let local = listener.local_addr().map_err(|source| ServeError::System {
        what: "cannot read the listening socket's address",
        source,
    })?;
    // Signal handlers before anything runs, so an early SIGHUP/SIGTERM is never lost.
    let handler = |kind| {
        signal(kind).map_err(|source| ServeError::System {
            what: "cannot install a signal handler",
            source,
        })
    };
    let mut hup = handler(SignalKind::hangup())?;
    let mut int = handler(SignalKind::interrupt())?;
    let mut term = handler(SignalKind::terminate())?;

    let metrics = Arc::new(Metrics::new());
    let open_files = match crate::web::listener::raise_open_file_limit() {
        Ok((soft, hard)) => {
            info!("open-file limit: {soft} (hard limit {hard})");
            Some(soft)
        }
        Err(e) => {
            warn!("cannot read or raise the open-file limit: {e}");
            None
        }
    };
    let limits = crate::web::listener::Limits::new(&file_config.web, open_files);
    if let Some(soft) = open_files
        && limits.max_connections as u64 > soft / 2
    {
        warn!(
            "[web] max_connections = {} is more than half the open-file limit ({soft}): a \
             flood of connections can leave the probes without sockets",
            limits.max_connections
        );
    }
    let web_metrics = crate::web::listener::WebMetrics::register(metrics.registry());
    let mut lists = Lists::new(&file_config);
    lists.read_due(&file_config, &metrics).await;
    let config = crate::sources::merge(&file_config, &lists.good);
    let store = match &config.storage.data_dir {
        Some(dir) => {
            let retention = Retention {
                raw: config.storage.raw_retention,
                rollups: config.storage.rollup_retention,
            };
            let store = Store::open(dir, config.storage.flush_interval, retention)?;
            info!("history is kept in {}", store.path().display());
            Some(store)
        }
        None => {
            info!("[storage] data_dir is empty: history is kept in memory only");
            None
        }
    };
    let source_name = config.source.clone();
    let servers = config.servers.len();
    let alerts =
        crate::alert::Alerts::start(&config, store.as_ref().map(Store::path), metrics.clone())
            .map_err(ServeError::Alerts)?;
    let agent_config = config.hub.is_some().then(|| Arc::new(config.clone()));
    let admin_token_file = config.web.admin_token_file.clone();
    // The servers of the monthly report, when a channel asked for it (a store is needed).
    let report_servers = config.alerts.iter().any(|a| a.monthly_report).then(|| {
        config
            .servers
            .iter()
            .map(|s| s.name.to_string())
            .collect::<Vec<_>>()
    });
    let commands_config = config
        .alerts
        .iter()
        .any(|a| a.command_power.is_some())
        .then(|| config.clone());
    let monitor = Monitor::start(config, metrics.clone(), store, Some(alerts.clone()))?;
    let stop_agent = CancellationToken::new();
    if let Some(agent_config) = agent_config {
        tokio::spawn(crate::scheduler::agent::run(
            agent_config,
            monitor.board(),
            stop_agent.clone(),
        ));
    }
    info!("monitoring {servers} servers from {source_name}");
    info!(
        "web: at most {} connections{}, a request head within {:?}, idle connections closed \
         after {:?}",
        limits.max_connections,
        match limits.max_connections_per_ip {
            0 => String::new(),
            n => format!(" ({n} per address)"),
        },
        limits.header_timeout,
        limits.idle_timeout
    );
    info!("listening on http://{local}");

    let admin = match &admin_token_file {
        Some(file) => Some(crate::web::Admin::from_file(file).map_err(ServeError::Admin)?),
        None => None,
    };
    if admin.is_some() {
        info!("admin API on: POST /api/v1/admin/… with the token of [web] admin_token_file");
    }
    let stop_commands = CancellationToken::new();
    if let (Some(servers), Some(kept), Some(reader)) = (
        report_servers,
        monitor.operators_store(),
        monitor.store_reader(),
    ) {
        tokio::spawn(crate::monthly::run(
            alerts.clone(),
            reader,
            monitor.maintenance(),
            kept,
            servers,
            stop_commands.clone(),
        ));
    }
    if let Some(c) = &commands_config {
        let desk = monitor
            .operators_store()
            .map(|store| crate::commands::Desk {
                board: monitor.board(),
                maintenance: monitor.maintenance(),
                incidents: monitor.incidents(),
                store,
            });
        crate::commands::spawn(c, desk, &stop_commands);
    }
    let stop_web = CancellationToken::new();
    let web = {
        let stop = stop_web.clone();
        let app = crate::web::app(crate::web::Handles {
            board: monitor.board(),
            metrics: metrics.clone(),
            alerts: monitor.alert_health(),
            hub: monitor.hub(),
            store: monitor
                .store_reader()
                .map(|r| Arc::new(std::sync::Mutex::new(r))),
            admin,
            maintenance: Some(monitor.maintenance()),
            incidents: Some(monitor.incidents()),
        });
        let troubles = metrics.troubles().clone();
        tokio::spawn(crate::web::listener::serve(
            listener,
            app,
            limits,
            web_metrics,
            troubles,
            stop,
        ))
    };

    loop {
        tokio::select! {
            _ = hup.recv() => {
                info!("SIGHUP: reloading the configuration");
                match load() {
                    Ok(config) => {
                        if config.sources != file_config.sources {
                            lists = Lists::new(&config);
                            lists.read_due(&config, &metrics).await;
                        } else if config.dns != file_config.dns
                            || config.tls != file_config.tls
                            || config.network != file_config.network
                        {
                            // The same lists, fetched the new way from their next refresh on.
                            lists.fetcher = list_fetcher(&config);
                            lists.trusted = crate::services::trusted_fetcher(&config).ok();
                        }
                        file_config = config;
                        reload(&monitor, Ok(crate::sources::merge(&file_config, &lists.good)));
                    }
                    Err(e) => reload(&monitor, Err(e)),
                }
            }
            () = lists.next_due() => {
                if lists.read_due(&file_config, &metrics).await {
                    info!("a server list changed: applying it");
                    reload(&monitor, Ok(crate::sources::merge(&file_config, &lists.good)));
                }
            }
            _ = int.recv() => { info!("SIGINT: shutting down"); break; }
            _ = term.recv() => { info!("SIGTERM: shutting down"); break; }
        }
    }
    stop_web.cancel();
    stop_agent.cancel();
    stop_commands.cancel();
    let (web_done, probes_done, ()) = tokio::join!(
        tokio::time::timeout(GRACE, web),
        monitor.shutdown(GRACE),
        alerts.shutdown(GRACE)
    );
    if web_done.is_err() {
        warn!("open HTTP connections did not close within {GRACE:?}; exiting anyway");
    }
    if !probes_done {
        warn!("probe loops did not stop within {GRACE:?}; exiting anyway");
    }
    info!("stopped");
    Ok(())
}

/// The guarded client lists are fetched with, from `config`'s DNS, TLS and network settings.
fn list_fetcher(config: &Config) -> Option<crate::net::fetch::Fetcher> {
    match crate::Services::new(config) {
        Ok(s) => Some(s.fetcher),
        Err(e) => {
            error!("server lists cannot be fetched: {e}");
            None
        }
    }
}

/// The `[[source]]` lists: the last good copy of each and when each is read next.
struct Lists {
    sources: Vec<SourceConfig>,
    /// The guarded client lists are fetched with, built once per config (`None`: its TLS
    /// roots could not be loaded, which the monitor reports too).
    fetcher: Option<crate::net::fetch::Fetcher>,
    /// The client for a trusted list (an agent's hub, written by the operator): every
    /// address allowed, certificates verified the same way.
    trusted: Option<crate::net::fetch::Fetcher>,
    good: Vec<Option<Vec<ServerConfig>>>,
    due: Vec<tokio::time::Instant>,
}

impl Lists {
    fn new(config: &Config) -> Lists {
        let now = tokio::time::Instant::now();
        Lists {
            sources: config.sources.clone(),
            fetcher: list_fetcher(config),
            trusted: crate::services::trusted_fetcher(config).ok(),
            good: config.sources.iter().map(|_| None).collect(),
            due: config.sources.iter().map(|_| now).collect(),
        }
    }

    /// Sleeps until a list is due (forever without lists).
    async fn next_due(&self) {
        match self.due.iter().min() {
            Some(at) => tokio::time::sleep_until(*at).await,
            None => std::future::pending().await,
        }
    }

    /// Reads every list that is due; true when a good copy changed.
    async fn read_due(&mut self, config: &Config, metrics: &Metrics) -> bool {
        let now = tokio::time::Instant::now();
        let mut changed = false;
        for (i, source) in self.sources.iter().enumerate() {
            if self.due[i] > now {
                continue;
            }
            let chosen = if source.trusted {
                &self.trusted
            } else {
                &self.fetcher
            };
            let Some(fetcher) = chosen else {
                continue;
            };
            self.due[i] = now + source.refresh;
            let label = source.location.to_string();
            match crate::sources::load(source, fetcher, config.monitor.timeout).await {
                Ok(servers) => {
                    metrics.set_source(&label, true, servers.len());
                    if self.good[i].as_ref() != Some(&servers) {
                        info!("server list {label}: {} servers", servers.len());
                        self.good[i] = Some(servers);
                        changed = true;
                    }
                }
                Err(why) => {
                    let kept = self.good[i].as_ref().map_or(0, Vec::len);
                    metrics.set_source(&label, false, kept);
                    warn!(
                        "server list {label} rejected, the last good copy ({kept} servers) keeps running: {why}"
                    );
                }
            }
        }
        changed
    }
}

fn reload(monitor: &Arc<Monitor>, loaded: Result<Config, ConfigError>) {
    match loaded {
        Ok(config) => match monitor.reload(config) {
            Ok(notes) => {
                for note in notes {
                    info!("reload: {note}");
                }
            }
            Err(e) => {
                monitor.reload_failed();
                error!("reload failed, the previous configuration keeps running: {e}");
            }
        },
        Err(e) => {
            monitor.reload_failed();
            error!("reload failed, the previous configuration keeps running:\n{e}");
        }
    }
}
