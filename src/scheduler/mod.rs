//! The long-running monitor: one scheduler loop per server, the shared concurrency cap, the
//! per-server history, and the immutable [`ServerView`] snapshots the web layer reads.
//!
//! Each loop starts after a random delay spread over the interval (so a restart does not probe
//! every server at once), then runs a round every `interval` — or every `retry_interval` while
//! the server fails, to confirm an outage quickly. A round reuses the cached resolution until
//! its inputs expire (well-known cache lifetime, DNS TTLs) and re-runs discovery after a round
//! in which no address answered. After each round the loop publishes a new view on the
//! [`Board`]; handlers only ever clone an `Arc` of the latest one, so page views never wait for
//! probes. A view is a value: the loop updates its history in place, and the part pages read
//! ([`Shown`]: recent samples, chart and 90-day buckets) is shared with the view and copied on
//! write, so a view never changes once published.

pub(crate) mod agent;
pub(crate) mod board;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Services;
use crate::alert::Alerts;
use crate::config::roots::RootsError;
use crate::config::{Config, Facts, ServerConfig};
use crate::discovery::Resolution;
use crate::history::events::{Event, MAX_EVENTS};
use crate::history::store::{RoundRecord, Saved, Store, StoreError, StoreReader};
use crate::vantage::hub::Hub;

/// Why the monitor could not start, or a reload could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The trusted roots could not be loaded (a config problem: exit code 2).
    #[error(transparent)]
    Roots(#[from] RootsError),
    /// The history store could not be read (exit code 1; the file is left untouched).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hub's tables could not be set up in the store file (exit code 1).
    #[error(transparent)]
    Tables(#[from] crate::history::store::TablesError),
}
use crate::history::{Delta, Sample, ServerHistory, Shown, Thresholds};
use crate::maintenance::incidents::{Incident, Incidents};
use crate::maintenance::{Active, MaintenanceStore, Schedule, Source, Window};
use crate::metrics::Metrics;
use crate::probe::Software;
use crate::probe::apps::Clients;
use crate::probe::federation::{KeyFetches, Outbound};
use crate::probe::signup::{Newcomer, Signup};
use crate::report::{Round, ServerReport};
use crate::server_name::ServerName;
use crate::status::{Reason, Status};
pub(crate) use board::{Board, Cell};

/// What the web layer shows for one server: the contract's `Server` object plus history.
#[derive(Clone, Debug, Serialize)]
pub struct ServerView {
    /// The `Server` object (status with hysteresis, last round's details).
    #[serde(flatten)]
    pub report: ServerReport,
    /// Display title.
    pub title: String,
    /// Description per language.
    pub description: BTreeMap<String, String>,
    /// The web client a newcomer would open.
    pub client_url: Option<String>,
    /// Facts from the config that no probe can learn (jurisdiction, languages, rules, …).
    pub facts: Arc<Facts>,
    /// Uptime ratio per window, shortest first (`null` before any round in the window).
    #[serde(serialize_with = "ordered_map")]
    pub uptime: Vec<(&'static str, Option<f64>)>,
    /// Median headline latency over 24 h, milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile of the headline latency over 24 h, milliseconds.
    pub latency_p95_ms: Option<f64>,
    /// Median headline latency over 7 days, milliseconds.
    pub latency_p50_7d_ms: Option<f64>,
    /// 95th percentile of the headline latency over 7 days, milliseconds.
    pub latency_p95_7d_ms: Option<f64>,
    /// Consecutive rounds in which no address answered.
    pub failed_rounds: u32,
    /// What pages read of the server's history as of this view (immutable): serialized as
    /// `recent`, the last rounds oldest first, and read for the charts when a page is built.
    #[serde(rename = "recent", serialize_with = "recent_samples")]
    shown: Arc<Shown>,
    /// Uptime over 24 h per address, by address text in text order (a JSON object; a sorted
    /// list costs a tenth of a map's node for the usual one or two addresses).
    #[serde(serialize_with = "ordered_map")]
    pub address_uptime_24h: Vec<(String, Option<f64>)>,
    /// The last sign-up check (`null` before the first, or when sign-up checks are off).
    pub signup: Option<Arc<Signup>>,
    /// Which apps work there, measured with the sign-up check (`null` likewise).
    pub clients: Option<Arc<Clients>>,
    /// The last signed federation check (absent without `[federation]`, `null` before the
    /// first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federation: Option<Arc<Outbound>>,
    /// The maintenance window the server is in (`null` when none).
    pub maintenance: Option<Arc<Active>>,
    /// What its operator said: the open incident, or one resolved within a day (`null`).
    pub incident: Option<Arc<Incident>>,
    /// On a hub: what every vantage saw, this instance's own view first (then `status` and
    /// `reason` are the quorum's verdict). Absent elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vantages: Option<Vec<crate::vantage::hub::VantageView>>,
}

fn recent_samples<S: serde::Serializer>(
    shown: &Arc<Shown>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(shown.recent())
}

impl ServerView {
    /// The view of `server` with `history` at `now`: the status and numbers come from the
    /// history, the details from `last` (the round just recorded, if any; before any round of
    /// this run, from `restored_software` and the history alone).
    pub fn build(
        server: &ServerConfig,
        history: &ServerHistory,
        last: Option<Round>,
        restored_software: Option<&Software>,
        now: i64,
    ) -> ServerView {
        let last_sample = history.recent().last();
        let report = match last {
            Some(round) => ServerReport::with_status(
                server.name.as_str(),
                round,
                history.status(),
                history.state.reason.clone(),
            ),
            // Restored from the store: status and history, but no round of this run yet.
            None if history.status() != Status::Unknown => ServerReport {
                name: server.name.to_string(),
                status: history.status(),
                reason: history.state.reason.clone(),
                latency_ms: last_sample.and_then(|s| s.latency_ms).map(f64::from),
                checked_at: last_sample
                    .and_then(|s| OffsetDateTime::from_unix_timestamp(s.at).ok()),
                software: restored_software.cloned(),
                discovery: None,
                addresses: Vec::new(),
                error: None,
                findings: Vec::new(),
                client: None,
            },
            None => ServerReport {
                name: server.name.to_string(),
                status: Status::Unknown,
                reason: Some(Reason::NotChecked),
                latency_ms: None,
                checked_at: None,
                software: None,
                discovery: None,
                addresses: Vec::new(),
                error: None,
                findings: Vec::new(),
                client: None,
            },
        };
        ServerView {
            report,
            title: server.title.clone(),
            description: server.description.clone(),
            client_url: server.client_url.clone(),
            facts: server.facts.clone(),
            uptime: history.uptime(now),
            latency_p50_ms: history.latency_percentile(now, 0.5),
            latency_p95_ms: history.latency_percentile(now, 0.95),
            latency_p50_7d_ms: history.latency_percentile_7d(now, 0.5),
            latency_p95_7d_ms: history.latency_percentile_7d(now, 0.95),
            failed_rounds: history.state.failed_rounds,
            address_uptime_24h: {
                let mut by_address: Vec<_> = history
                    .addresses()
                    .map(|(a, h)| (a.to_string(), h.uptime_24h(now)))
                    .collect();
                by_address.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                by_address
            },
            shown: history.shown(),
            signup: None,
            clients: None,
            federation: None,
            maintenance: None,
            incident: None,
            vantages: None,
        }
    }

    /// A newcomer can join now: sign-up is open (or on a web page, or after verification), and
    /// at least one of the apps works there (not yet measured: not held against the server).
    /// The page's "servers I can join now", the API's `join=true` and the public list.
    pub fn joinable(&self) -> bool {
        self.signup.as_ref().is_some_and(|s| s.status.can_join())
            && self.clients.as_ref().is_none_or(|c| {
                crate::probe::apps::App::ALL
                    .iter()
                    .any(|a| c.apps.get(*a).works != crate::probe::apps::Works::No)
            })
    }

    /// `app` works there (or works partly), as last measured.
    pub fn works_with(&self, app: crate::probe::apps::App) -> bool {
        self.clients
            .as_ref()
            .is_some_and(|c| c.apps.get(app).works != crate::probe::apps::Works::No)
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.report.status
    }

    /// Whether the server was reached in its last round: `Some(true)` when an address
    /// answered (even if another failed), `Some(false)` when none did (or discovery failed),
    /// `None` when nothing is known: no round yet, or a round in which this monitor could
    /// reach none of the addresses through no fault of the server (it has no IPv6). Before
    /// this run's first round, the saved history's last round answers.
    pub fn reached(&self) -> Option<bool> {
        let r = &self.report;
        if r.discovery.is_none() {
            // No round in this run: restored from the store, or nothing yet.
            return r.checked_at.and(self.recent().last().map(|s| s.up));
        }
        if r.addresses.iter().any(|a| a.ok) {
            return Some(true);
        }
        let discovery_failed = r.discovery.as_ref().is_some_and(|d| d.error.is_some());
        let all_monitor_side = !r.addresses.is_empty()
            && r.addresses
                .iter()
                .all(|a| a.error.as_ref().is_some_and(|e| e.monitor_side));
        (discovery_failed || !all_monitor_side).then_some(false)
    }

    /// The last rounds, oldest first.
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = Sample> + ExactSizeIterator + '_ {
        self.shown.recent()
    }

    /// Mean latency per 5 minutes over the 24 h before `now` (Unix seconds, ms).
    pub fn chart(&self, now: i64) -> Vec<(i64, f64)> {
        self.shown.latency_series(now)
    }

    /// Uptime per day for the 90 days up to `now` (day start, ratio), oldest first.
    pub fn daily(&self, now: i64) -> Vec<(i64, Option<f64>)> {
        self.shown.daily_uptime(now, 90)
    }
}

/// Serializes pairs as a JSON object, keeping their order.
fn ordered_map<S: serde::Serializer, K: Serialize>(
    pairs: &[(K, Option<f64>)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

impl ServerView {
    /// The uptime ratio of `window` (`1h`, `24h`, `7d`, `30d`, `90d`).
    pub fn uptime(&self, window: &str) -> Option<f64> {
        self.uptime
            .iter()
            .find(|(w, _)| *w == window)
            .and_then(|(_, u)| *u)
    }
}

/// One monitored server: its config, history and the cell its views are published in.
pub(crate) struct Slot {
    /// The server's config entry.
    pub server: ServerConfig,
    /// The history; only this server's loop writes it, in place.
    history: Mutex<ServerHistory>,
    /// The last sign-up check, shown in every view from then on.
    checked: Mutex<Checked>,
    cell: Arc<Cell>,
    resolution: Mutex<Option<(Arc<Resolution>, Instant)>>,
    cancel: CancellationToken,
}

impl Slot {
    /// A slot; `previous` is the view of the same server before a config reload, kept until
    /// the next round with the new display fields applied.
    fn new(
        server: ServerConfig,
        history: ServerHistory,
        previous: Option<Arc<ServerView>>,
        restored_software: Option<&Software>,
        cancel: CancellationToken,
    ) -> Slot {
        let view = match previous {
            Some(prev) => {
                let mut view = (*prev).clone();
                view.title = server.title.clone();
                view.description = server.description.clone();
                view.client_url = server.client_url.clone();
                view.facts = server.facts.clone();
                view.shown = history.shown();
                view
            }
            None => {
                let now = OffsetDateTime::now_utc().unix_timestamp();
                ServerView::build(&server, &history, None, restored_software, now)
            }
        };
        Slot {
            server,
            history: Mutex::new(history),
            checked: Mutex::new(Checked {
                signup: view.signup.clone(),
                clients: view.clients.clone(),
                federation: view.federation.clone(),
                maintenance: view.maintenance.clone(),
                incident: view.incident.clone(),
            }),
            cell: Arc::new(Cell::new(view)),
            resolution: Mutex::new(None),
            cancel,
        }
    }

    /// The latest published view.
    pub(crate) fn view(&self) -> Arc<ServerView> {
        self.cell.view()
    }

    /// A cached resolution that has not expired at `now`.
    fn cached_resolution(&self, now: Instant) -> Option<Arc<Resolution>> {
        let cached = self.resolution.lock().expect("resolution lock");
        cached
            .as_ref()
            .filter(|(_, expires)| now < *expires)
            .map(|(r, _)| r.clone())
    }
}

/// What the loops need to run a round: discovery, then probing. [`Services`] is the
/// production implementation (DNS, the well-known, TLS probes); the scheduler's own tests use
/// scripted rounds, so cadence, retries, re-resolution and hysteresis can be checked on a
/// paused clock.
pub trait Rounds: Send + Sync + 'static {
    /// Resolves `name` (the spec's discovery steps), already parsed from the config.
    fn resolve(&self, name: &ServerName) -> impl Future<Output = Resolution> + Send;
    /// Probes every target of `resolution` once.
    fn probe(&self, resolution: Arc<Resolution>, name: &str) -> impl Future<Output = Round> + Send;
    /// Checks how newcomers sign up on `name` and which apps work there; `None` when sign-up
    /// checks are off.
    fn signup(&self, name: &ServerName) -> impl Future<Output = Option<Newcomer>> + Send {
        let _ = name;
        std::future::ready(None)
    }
    /// Sends the signed federation check to `name` (resolved again unless `resolution` is
    /// given); `fetches` is the listener's log of requests for mxping's key. `None` without
    /// `[federation]`.
    fn federation(
        &self,
        name: &ServerName,
        resolution: Option<Arc<Resolution>>,
        fetches: Arc<KeyFetches>,
    ) -> impl Future<Output = Option<Outbound>> + Send {
        let _ = (name, resolution, fetches);
        std::future::ready(None)
    }
}

impl Rounds for Services {
    fn resolve(&self, name: &ServerName) -> impl Future<Output = Resolution> + Send {
        self.discovery.resolve_name(name)
    }

    fn probe(&self, resolution: Arc<Resolution>, name: &str) -> impl Future<Output = Round> + Send {
        Services::probe(self, resolution, name)
    }

    async fn signup(&self, name: &ServerName) -> Option<Newcomer> {
        Some(self.signup.as_ref()?.check(name).await)
    }

    async fn federation(
        &self,
        name: &ServerName,
        resolution: Option<Arc<Resolution>>,
        fetches: Arc<KeyFetches>,
    ) -> Option<Outbound> {
        let checker = self.federation.as_ref()?;
        let resolution = match resolution {
            Some(r) => r,
            None => Arc::new(self.discovery.resolve_name(name).await),
        };
        Some(checker.check(&resolution, Some(&fetches)).await)
    }
}

/// Builds the rounds for a config (at start, and on a reload that changes settings).
pub(crate) type MakeRounds<R> = Box<dyn Fn(&Config) -> Result<R, StartError> + Send + Sync>;

/// The live configuration and what it built.
struct Live<R> {
    config: Arc<Config>,
    services: Arc<R>,
    semaphore: Arc<Semaphore>,
    slots: Vec<Arc<Slot>>,
    /// Position of each server in `slots`, by name.
    index: HashMap<String, usize>,
}

impl<R> Live<R> {
    /// The cells of every slot, in config order, for the board.
    fn cells(&self) -> Vec<(String, Arc<Cell>)> {
        self.slots
            .iter()
            .map(|s| (s.server.name.to_string(), s.cell.clone()))
            .collect()
    }

    fn push(&mut self, slot: Arc<Slot>) {
        self.index
            .insert(slot.server.name.to_string(), self.slots.len());
        self.slots.push(slot);
    }
}

/// Servers whose saved history is read from the store at once on start-up.
const RESTORE_BATCH: usize = 128;
/// Threads reading saved histories on start-up, each its share of the batches.
const RESTORE_READERS: usize = 2;

/// The monitor: the loops, and the board they publish on.
pub struct Monitor<R: Rounds = Services> {
    live: RwLock<Live<R>>,
    make_rounds: MakeRounds<R>,
    metrics: Arc<Metrics>,
    board: Arc<Board>,
    store: Option<Store>,
    alerts: Option<Arc<Alerts>>,
    /// On a hub, where agents' reports arrive: views, the feed and alerts follow the
    /// quorum's verdict.
    hub: Option<Arc<Hub>>,
    maintenance: Arc<Schedule>,
    incidents: Arc<Incidents>,
    /// The tables of windows, notes and room commands, in the store's file.
    kept: Option<Arc<MaintenanceStore>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Monitor<Services> {
    /// Starts a loop for every server of `config`, restoring each server's history from
    /// `store` when one is given, and telling `alerts` of every confirmed status change.
    pub fn start(
        config: Config,
        metrics: Arc<Metrics>,
        store: Option<Store>,
        alerts: Option<Arc<Alerts>>,
    ) -> Result<Arc<Monitor>, StartError> {
        Monitor::start_with(
            config,
            metrics,
            store,
            alerts,
            Box::new(|c| Ok(Services::new(c)?)),
        )
    }
}

/// What the store read by `reader` holds for `servers` (nothing without a store).
fn load_saved(
    reader: Option<&StoreReader>,
    servers: &[ServerConfig],
) -> Result<HashMap<String, Saved>, StoreError> {
    let Some(reader) = reader else {
        return Ok(HashMap::new());
    };
    let names: Vec<String> = servers.iter().map(|s| s.name.to_string()).collect();
    reader.load(&names, OffsetDateTime::now_utc().unix_timestamp())
}

impl<R: Rounds> Monitor<R> {
    /// Like [`Monitor::start`], with rounds made by `make_rounds`.
    pub fn start_with(
        config: Config,
        metrics: Arc<Metrics>,
        store: Option<Store>,
        alerts: Option<Arc<Alerts>>,
        make_rounds: MakeRounds<R>,
    ) -> Result<Arc<Monitor<R>>, StartError> {
        let services = Arc::new(make_rounds(&config)?);
        let hub = if config.vantages.is_empty() {
            None
        } else {
            let hub = Hub::from_config(&config, store.as_ref().map(Store::path))?;
            tracing::info!(
                "hub: taking reports from {} vantage(s): {}",
                hub.names().count(),
                hub.names().collect::<Vec<_>>().join(", ")
            );
            Some(Arc::new(hub))
        };
        let (maintenance, incidents, kept) = {
            let kept = match store.as_ref() {
                Some(s) => Some(Arc::new(MaintenanceStore::open(s.path())?)),
                None => None,
            };
            let now = OffsetDateTime::now_utc().unix_timestamp();
            (
                Arc::new(Schedule::new(planned(&config), kept.clone(), now)),
                Arc::new(Incidents::new(kept.clone(), now)),
                kept,
            )
        };
        let config = Arc::new(config);
        let board = match hub {
            Some(_) => Board::combined(config.clone()),
            None => Board::new(config.clone()),
        };
        let monitor = Arc::new(Monitor {
            make_rounds,
            live: RwLock::new(Live {
                semaphore: Arc::new(Semaphore::new(config.monitor.concurrency)),
                config: config.clone(),
                services,
                slots: Vec::new(),
                index: HashMap::new(),
            }),
            board: Arc::new(board),
            metrics,
            store,
            alerts,
            hub,
            maintenance,
            incidents,
            kept,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        if let Some(hub) = &monitor.hub {
            monitor
                .tracker
                .spawn(monitor.clone().track_verdicts(hub.clone()));
        }
        let mut live = monitor.live.write().expect("live lock");
        let thresholds = thresholds(&live.config);
        let servers = live.config.servers.clone();
        if let Some(store) = &monitor.store {
            let events = store.load_events(MAX_EVENTS)?;
            for event in events {
                monitor.board.push_event(event);
            }
        }
        // Saved histories are read a batch at a time: as stored rows they are several times
        // the size of the rebuilt histories, and reading ten thousand at once would leave
        // the process that much bigger for good (freed memory stays fragmented). Reading is
        // most of start-up with ten thousand servers, so two threads read alternate batches
        // while this one rebuilds the histories of each batch in turn.
        let (store, servers) = (monitor.store.as_ref(), servers.as_slice());
        let batches: Vec<&[ServerConfig]> = servers.chunks(RESTORE_BATCH).collect();
        std::thread::scope(|scope| -> Result<(), StartError> {
            let mut read = Vec::with_capacity(RESTORE_READERS);
            for k in 0..RESTORE_READERS {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                read.push(rx);
                let mine = batches.iter().skip(k).step_by(RESTORE_READERS);
                std::thread::Builder::new()
                    .name(format!("mxping-restore-{k}"))
                    .spawn_scoped(scope, move || {
                        // One connection for all of this thread's batches.
                        let reader = match store.map(Store::reader).transpose() {
                            Ok(reader) => reader,
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                        };
                        for batch in mine {
                            let saved = load_saved(reader.as_ref(), batch);
                            let failed = saved.is_err();
                            // A send fails when the rebuilding stopped at an error.
                            if tx.send(saved).is_err() || failed {
                                break;
                            }
                        }
                    })
                    .map_err(|e| {
                        crate::history::store::failed(
                            &store.map(|s| s.path().to_owned()).unwrap_or_default(),
                            "cannot start a thread that reads it",
                            e,
                        )
                    })?;
            }
            for (i, batch) in batches.iter().enumerate() {
                // A reader sends every batch of its share, or stops after sending an error;
                // one that panicked is reported when the scope ends.
                let Ok(saved) = read[i % RESTORE_READERS].recv() else {
                    break;
                };
                let mut saved = saved?;
                for server in *batch {
                    monitor.metrics.add_server(server.name.as_str());
                    let slot = monitor.restored_slot(server.clone(), thresholds, &mut saved);
                    monitor.spawn(&live, slot.clone());
                    live.push(slot);
                }
            }
            Ok(())
        })?;
        monitor.board.set_layout(live.config.clone(), live.cells());
        // On a hub, the restored views with every vantage's are shown from the first request.
        if let Some(hub) = &monitor.hub {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            monitor.board.apply_verdicts(hub, now, true);
        }
        drop(live);
        monitor.tracker.spawn(monitor.clone().track_operators());
        monitor.metrics.config_loaded(true);
        Ok(monitor)
    }

    fn new_slot(
        &self,
        server: ServerConfig,
        history: ServerHistory,
        previous: Option<Arc<ServerView>>,
    ) -> Arc<Slot> {
        Arc::new(Slot::new(
            server,
            history,
            previous,
            None,
            self.shutdown.child_token(),
        ))
    }

    /// A slot for a server new to this run, with its saved history if the store has one.
    fn restored_slot(
        &self,
        server: ServerConfig,
        thresholds: Thresholds,
        saved: &mut HashMap<String, Saved>,
    ) -> Arc<Slot> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let (history, software) = match saved.remove(server.name.as_str()) {
            Some(s) => (
                ServerHistory::restore(thresholds, s.history, now),
                s.software,
            ),
            None => (ServerHistory::new(thresholds), None),
        };
        let slot = Slot::new(
            server,
            history,
            None,
            software.as_ref(),
            self.shutdown.child_token(),
        );
        let slot = Arc::new(slot);
        let view = slot.view();
        if view.status() != Status::Unknown {
            self.metrics
                .restore_server(slot.server.name.as_str(), view.status(), &view.uptime);
        }
        slot
    }

    fn spawn(self: &Arc<Self>, live: &Live<R>, slot: Arc<Slot>) {
        let interval = live.config.monitor.interval;
        let jitter = Duration::from_secs_f64(rand::rng().random_range(0.0..interval.as_secs_f64()));
        let job = Job {
            monitor: self.clone(),
            slot,
            services: live.services.clone(),
            semaphore: live.semaphore.clone(),
            config: live.config.clone(),
        };
        if live.config.monitor.check_signup && job.slot.server.check_signup {
            self.tracker.spawn(job.clone().run_signup(jitter));
        }
        if live.config.federation.is_some() {
            self.tracker.spawn(job.clone().run_federation(jitter));
        }
        self.tracker.spawn(job.run(jitter));
    }

    /// A read connection to the history store, when there is one (the history export).
    pub fn store_reader(&self) -> Option<StoreReader> {
        let store = self.store.as_ref()?;
        match store.reader() {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!("history export: {e}");
                None
            }
        }
    }

    /// The board the loops publish on: what the web layer reads.
    pub fn board(&self) -> Arc<Board> {
        self.board.clone()
    }

    /// On a hub, where agents' reports go.
    pub fn hub(&self) -> Option<Arc<Hub>> {
        self.hub.clone()
    }

    /// How alert delivery is doing, when alerts are on.
    pub fn alert_health(&self) -> Option<Arc<crate::alert::AlertHealth>> {
        self.alerts.as_ref().map(|a| a.health())
    }

    /// Shows a new check or window in `slot`'s current view and every later one. Under the
    /// history lock, which a round holds while it publishes, so a round never publishes the
    /// check before.
    fn show_checked(&self, slot: &Slot, f: impl FnOnce(&Checked) -> Checked) {
        let history = slot.history.lock().expect("history lock");
        let mut slot_checked = slot.checked.lock().expect("checked lock");
        let checked = f(&slot_checked);
        *slot_checked = checked.clone();
        drop(slot_checked);
        let change = publish_checked(&self.board, &self.metrics, &slot.cell, &checked, &history);
        // Announced like a round's change (not the first status, not on a hub, which
        // announces its verdict's changes).
        if let Some(event) = change
            && event.from != Status::Unknown
            && event.to != Status::Unknown
            && self.hub.is_none()
        {
            self.record_event(event);
        }
    }

    /// The operators' task: at start, whenever a window is started or ended by hand, the
    /// plan changes or a note is written, and at each time a window opens or closes, shows
    /// each server's window (or its end) and incident at once, not at its next round.
    async fn track_operators(self: Arc<Self>) {
        loop {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let slots = self.live.read().expect("live lock").slots.clone();
            for slot in &slots {
                let name = slot.server.name.as_str();
                let active = self.maintenance.active(name, now);
                let incident = self.incidents.of(name, now);
                let (shown, noted) = {
                    let c = slot.checked.lock().expect("checked lock");
                    (c.maintenance.clone(), c.incident.clone())
                };
                let same_incident = match (&noted, &incident) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                };
                if shown.as_deref() != active.as_ref() || !same_incident {
                    self.metrics.set_maintenance(name, active.is_some());
                    self.show_checked(slot, |c| Checked {
                        incident,
                        ..c.with_maintenance(active)
                    });
                }
            }
            for (server, note) in self.incidents.take_fresh() {
                if let Some(alerts) = &self.alerts {
                    alerts.note(&server, &note);
                }
            }
            // A window opens or closes on the second; woken a little after, it is open.
            let wait = self
                .maintenance
                .next_change(now)
                .map_or(Duration::from_secs(3600), |t| {
                    Duration::from_secs((t - now).clamp(0, 3600) as u64) + Duration::from_millis(20)
                });
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = self.maintenance.changed() => {}
                () = self.incidents.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The maintenance windows: which server is in one, and starting or ending one by hand.
    pub fn maintenance(&self) -> Arc<Schedule> {
        self.maintenance.clone()
    }

    /// The tables of windows, notes and room commands (none without a store).
    pub fn operators_store(&self) -> Option<Arc<MaintenanceStore>> {
        self.kept.clone()
    }

    /// The incidents: what operators said about their servers.
    pub fn incidents(&self) -> Arc<Incidents> {
        self.incidents.clone()
    }

    fn record_event(&self, event: Event) {
        if event.to == Status::Green {
            // An incident opened "until recovered" ends with the outage.
            self.incidents.recovered(&event.server, event.at);
        }
        if let Some(store) = &self.store {
            store.write_event(event.clone());
        }
        if let Some(alerts) = &self.alerts {
            alerts.notify(&event);
        }
        self.board.push_event(event);
    }

    /// Applies a new, already validated config: servers added, removed or changed start, stop
    /// or restart without losing history. Settings that need a new listener are reported.
    pub fn reload(self: &Arc<Self>, new: Config) -> Result<Vec<String>, StartError> {
        let mut live = self.live.write().expect("live lock");
        let old = live.config.clone();
        let settings_changed = new.monitor != old.monitor
            || new.dns != old.dns
            || new.tls != old.tls
            || new.network != old.network
            || new.federation != old.federation;
        let services = if settings_changed {
            Arc::new((self.make_rounds)(&new)?)
        } else {
            live.services.clone()
        };
        let mut notes = Vec::new();
        if new.web.listen != old.web.listen {
            notes.push(format!(
                "[web] listen changed to {} but the web server keeps listening on {} until restarted",
                new.web.listen, old.web.listen
            ));
        }
        if new.storage != old.storage {
            notes.push("[storage] changes take effect after a restart".to_owned());
        }
        let limits = |w: &crate::config::WebConfig| {
            (
                w.header_timeout,
                w.idle_timeout,
                w.write_timeout,
                w.max_connections,
                w.max_connections_per_ip,
            )
        };
        if limits(&new.web) != limits(&old.web) {
            notes.push(
                "[web] connection limits and timeouts take effect after a restart".to_owned(),
            );
        }
        if new.vantages != old.vantages || new.hub != old.hub {
            notes.push("[hub] and [[vantage]] changes take effect after a restart".to_owned());
        }
        live.services = services;
        if new.monitor.concurrency != old.monitor.concurrency {
            live.semaphore = Arc::new(Semaphore::new(new.monitor.concurrency));
        }
        let thresholds = thresholds(&new);
        let new = Arc::new(new);
        live.config = new.clone();
        let old_slots = std::mem::take(&mut live.slots);
        let old_index = std::mem::take(&mut live.index);
        let (mut added, mut changed, mut removed) = (0, 0, 0);
        // Opened for the first new server, then kept for the others (a list import adds
        // hundreds at once).
        let mut reader = None;
        for server in &new.servers {
            match old_index.get(server.name.as_str()).map(|&i| &old_slots[i]) {
                Some(slot) if !settings_changed && slot.server == *server => {
                    live.push(slot.clone())
                }
                Some(slot) => {
                    slot.cancel.cancel();
                    let mut history = slot.history.lock().expect("history lock").clone();
                    history.set_thresholds(thresholds);
                    let mut previous = (*slot.view()).clone();
                    if !(new.monitor.check_signup && server.check_signup) {
                        // Checks are off now: the last verdict is not shown as current.
                        previous.signup = None;
                        previous.clients = None;
                        self.metrics.clear_signup(server.name.as_str());
                    }
                    if new.federation.is_none() {
                        previous.federation = None;
                        self.metrics.clear_federation(server.name.as_str());
                    }
                    let previous = Some(Arc::new(previous));
                    let fresh = self.new_slot(server.clone(), history, previous);
                    self.spawn(&live, fresh.clone());
                    live.push(fresh);
                    changed += 1;
                }
                None => {
                    if reader.is_none() {
                        reader = self.store.as_ref().map(Store::reader).transpose()?;
                    }
                    let mut saved = load_saved(reader.as_ref(), std::slice::from_ref(server))?;
                    self.metrics.add_server(server.name.as_str());
                    let fresh = self.restored_slot(server.clone(), thresholds, &mut saved);
                    self.spawn(&live, fresh.clone());
                    live.push(fresh);
                    added += 1;
                }
            }
        }
        for slot in &old_slots {
            if !live.index.contains_key(slot.server.name.as_str()) {
                slot.cancel.cancel();
                self.metrics.remove_server(slot.server.name.as_str());
                removed += 1;
            }
        }
        notes.push(format!(
            "{added} server(s) added, {changed} restarted with new settings, {removed} removed, {} unchanged",
            new.servers.len() - added - changed
        ));
        self.metrics.config_loaded(true);
        if let Some(alerts) = &self.alerts {
            alerts.reload(&new);
        }
        self.maintenance.set_planned(planned(&new));
        self.board.set_layout(live.config.clone(), live.cells());
        Ok(notes)
    }

    /// The hub's task: when its own rounds or vantages' reports changed something (and every
    /// second, as views grow stale), combines each server's views into the quorum's verdict
    /// and publishes it on the board (`Board::apply_verdicts`; reads never compute one), then
    /// records each change of a verdict as the event a single monitor records for its own
    /// status: the feed, the store and alerts.
    async fn track_verdicts(self: Arc<Self>, hub: Arc<Hub>) {
        let mut last: HashMap<String, Status> = HashMap::new();
        let mut seen_generation = None;
        let mut last_all = tokio::time::Instant::now();
        loop {
            let ticked = tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = self.board.changed() => {
                    // A burst of rounds is combined in one pass.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    false
                }
                // Vantages' views grow stale with time alone.
                () = tokio::time::sleep_until(last_all + Duration::from_secs(1)) => true,
            };
            let now = OffsetDateTime::now_utc().unix_timestamp();
            // Every server after a new layout and once a second (a report's handler combines
            // every server itself); else only the servers whose round changed.
            let all = self.board.take_layout_changed() || ticked;
            if all {
                last_all = tokio::time::Instant::now();
            }
            // Thousands of verdicts, and a report's handler may hold the pass: off the
            // runtime's threads.
            let (board, hub) = (self.board.clone(), hub.clone());
            let _ = tokio::task::spawn_blocking(move || board.apply_verdicts(&hub, now, all)).await;
            let generation = self.board.generation();
            if seen_generation == Some(generation) {
                continue;
            }
            seen_generation = Some(generation);
            let snap = self.board.snapshot();
            let mut current = HashMap::with_capacity(snap.servers.len());
            for v in &snap.servers {
                let status = v.status();
                let name = &v.report.name;
                // Until the hub's own first round, nothing is known; after it, the verdict is
                // compared with what it was, or at first with the hub's own status (what a
                // single monitor would have recorded): a server some places cannot reach
                // when the hub starts is announced like any other change.
                let own = v
                    .vantages
                    .as_ref()
                    .and_then(|x| x.first())
                    .map_or(status, |o| o.status);
                if own == Status::Unknown {
                    continue;
                }
                let before = last.get(name).copied().unwrap_or(own);
                if before != status && status != Status::Unknown {
                    self.record_event(Event {
                        server: name.clone(),
                        at: now,
                        from: before,
                        to: status,
                        reason: v.report.reason.clone(),
                    });
                }
                current.insert(name.clone(), status);
            }
            last = current;
        }
    }

    /// Records a failed reload (the old config keeps running).
    pub fn reload_failed(&self) {
        self.metrics.config_loaded(false);
    }

    /// Stops every loop; rounds in flight are cancelled. Waits at most `grace`.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// Where a recorded round goes: the board, the metrics, the store, and the server's status
/// change (the feed, the store and alerts on a monitor; nothing on a hub, which records its
/// verdict's changes instead).
pub struct Outlet<'a> {
    /// Where the view is shown.
    pub board: &'a Board,
    /// Where the round is counted.
    pub metrics: &'a Metrics,
    /// Where the round is kept, if anywhere.
    pub store: Option<&'a Store>,
    /// Called with the server's status change, when the round made one.
    pub on_event: &'a dyn Fn(Event),
}

/// The server a round is published for, and how.
pub struct Published<'a> {
    /// Its config.
    pub server: &'a ServerConfig,
    /// Its phase histograms are its own (`[metrics] per_server_phases`).
    pub per_server_phases: bool,
    /// Its cell on the board.
    pub cell: &'a Cell,
    /// Its last sign-up check, shown with the round.
    pub checked: Checked,
    /// When the round finished (Unix seconds).
    pub now: i64,
}

/// The one way a round reaches the page, the metrics, the feed and the store — taken by every
/// server's loop and by the tests' harness. The monitor's own trouble is counted; a round
/// that says nothing about the server (no IPv6 route, no socket to spare) is shown but not
/// recorded; any other is recorded in `history` (`record_round`), its status change handed
/// on, its delta stored, its numbers counted, and the new view published.
pub fn publish_round(
    to: &Published<'_>,
    history: &mut ServerHistory,
    round: Round,
    discovery_ran: bool,
    out: &Outlet<'_>,
) {
    let name = to.server.name.as_str();
    if let Some(trouble) = round.monitor_trouble() {
        out.metrics
            .troubles()
            .record(trouble, &format!("checking {name}"));
    }
    let mut change = None;
    let maintenance = to.checked.maintenance.is_some();
    if round.measurable() {
        let recorded = if maintenance {
            record_maintenance(history, &round, to.now)
        } else {
            record_round(name, history, &round, to.now)
        };
        change = recorded.event;
        if let Some(store) = out.store {
            store.write(RoundRecord {
                server: name.to_owned(),
                delta: recorded.delta,
                software: round.software(),
                maintenance,
            });
        }
        out.metrics.observe_round(
            name,
            &round,
            discovery_ran,
            recorded.status,
            &recorded.uptime,
            to.per_server_phases,
        );
    }
    let mut view = ServerView::build(to.server, history, Some(round), None, to.now);
    let overlaid = to.checked.show(&mut view);
    if overlaid {
        out.metrics.set_status(name, view.status());
    }
    if (to.checked.federation.is_some() || maintenance)
        && let Some(event) = &mut change
    {
        // With the signed check or in maintenance, the change announced is the one the page
        // shows: from what it showed, to what it shows now (yellow while the check fails;
        // nothing while the window lasts).
        event.from = to.cell.view().status();
        event.to = view.status();
        event.reason = view.report.reason.clone();
    }
    if let Some(event) = change.filter(|e| e.from != e.to) {
        (out.on_event)(event);
    }
    out.board.publish(to.cell, view);
}

/// A server's last checks on their own schedules (how to sign up and which apps work; the
/// signed federation check), shown with every round from then on.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    /// How to sign up.
    pub signup: Option<Arc<Signup>>,
    /// Which apps work.
    pub clients: Option<Arc<Clients>>,
    /// Federation both ways.
    pub federation: Option<Arc<Outbound>>,
    /// The maintenance window the server is in.
    pub maintenance: Option<Arc<Active>>,
    /// Its incident, as its operator wrote it.
    pub incident: Option<Arc<Incident>>,
}

impl Checked {
    /// The answers of one sign-up check, beside the last federation check.
    pub fn with_newcomer(&self, n: Newcomer) -> Checked {
        Checked {
            signup: Some(Arc::new(n.signup)),
            clients: Some(Arc::new(n.clients)),
            ..self.clone()
        }
    }

    /// The answer of one federation check, beside the last sign-up check.
    pub fn with_federation(&self, f: Outbound) -> Checked {
        Checked {
            federation: Some(Arc::new(f)),
            ..self.clone()
        }
    }

    /// The window the server is in, in place of the last one.
    pub fn with_maintenance(&self, maintenance: Option<Active>) -> Checked {
        Checked {
            maintenance: maintenance.map(Arc::new),
            ..self.clone()
        }
    }

    /// Shows the checks in `view`. A server the rounds find healthy that failed the signed
    /// check is yellow, with the reason (design.md "Federation both ways"); a server in a
    /// maintenance window is shown so, with the note (design.md "Maintenance and
    /// incidents"). Returns whether that changed the status.
    fn show(&self, view: &mut ServerView) -> bool {
        view.signup = self.signup.clone();
        view.clients = self.clients.clone();
        view.federation = self.federation.clone();
        view.maintenance = self.maintenance.clone();
        view.incident = self.incident.clone();
        let before = view.report.status;
        if let Some(f) = &self.federation
            && f.degrades()
            && view.report.status == Status::Green
        {
            view.report.status = Status::Yellow;
            view.report.reason = Some(Reason::Outbound {
                outcome: f.outbound,
                detail: f
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default(),
            });
        }
        if let Some(m) = &self.maintenance {
            view.report.status = Status::Maintenance;
            view.report.reason = Some(Reason::Maintenance {
                until: m.end.unix_timestamp(),
                note: m.note.clone(),
            });
        }
        view.report.status != before
    }
}

/// Shows a server's new sign-up or federation check with its last round: the one way a check
/// reaches the page (and, when it changes the status, the status series), for the server's
/// loop and the tests' harness. Returns the status change the check made, if any (a server
/// the signed check turned yellow, or green again), for the feed and alerts.
pub fn publish_checked(
    board: &Board,
    metrics: &Metrics,
    cell: &Cell,
    checked: &Checked,
    history: &ServerHistory,
) -> Option<Event> {
    let before = cell.view();
    let mut view = (*before).clone();
    // From the rounds' status (the history's), not one a previous check or window set.
    view.report.status = history.status();
    view.report.reason = match history.status() {
        Status::Unknown => Some(Reason::NotChecked),
        _ => history.state.reason.clone(),
    };
    checked.show(&mut view);
    let change = (view.status() != before.status()).then(|| Event {
        server: view.report.name.clone(),
        at: OffsetDateTime::now_utc().unix_timestamp(),
        from: before.status(),
        to: view.status(),
        reason: view.report.reason.clone(),
    });
    if change.is_some() {
        metrics.set_status(&view.report.name, view.status());
    }
    board.publish(cell, view);
    change
}

/// What recording one round did.
pub(crate) struct Recorded {
    /// What changed in the history, for the store.
    pub delta: Delta,
    /// The status change, unless there was none (or it was the first status after start).
    pub event: Option<Event>,
    /// The status after the round.
    pub status: Status,
    /// Uptime per window after the round.
    pub uptime: Vec<(&'static str, Option<f64>)>,
}

/// Records `round` of `server`, finished at `now` (Unix seconds), in `history`: the
/// scheduler's step after each round, pure (no clock, no I/O), so tests replay real rounds at
/// the times they choose.
pub(crate) fn record_round(
    server: &str,
    history: &mut ServerHistory,
    round: &Round,
    now: i64,
) -> Recorded {
    let before = history.status();
    let delta = history.record(round, now);
    let status = history.status();
    // The first round after start-up is not a change worth announcing.
    let event = (before != status && before != Status::Unknown).then(|| Event {
        server: server.to_owned(),
        at: now,
        from: before,
        to: status,
        reason: history.state.reason.clone(),
    });
    Recorded {
        delta,
        event,
        status,
        uptime: history.uptime(now),
    }
}

/// Records `round`, made during a maintenance window, in `history`: the status moves on,
/// nothing is counted, and no change is announced (the window's start and end are).
pub(crate) fn record_maintenance(history: &mut ServerHistory, round: &Round, now: i64) -> Recorded {
    let delta = history.record_maintenance(round, now);
    Recorded {
        delta,
        event: None,
        status: history.status(),
        uptime: history.uptime(now),
    }
}

/// The windows `config` plans.
fn planned(config: &Config) -> Vec<Window> {
    config
        .maintenance
        .iter()
        .map(|m| Window {
            servers: m.servers.clone(),
            when: m.when.clone(),
            note: m.note.clone(),
            by: "config".to_owned(),
            source: Source::Config,
            id: None,
        })
        .collect()
}

/// The hysteresis settings of `config`.
pub fn thresholds(config: &Config) -> Thresholds {
    Thresholds {
        green_below_ms: config.monitor.green_below.as_secs_f64() * 1000.0,
        down_after: config.monitor.down_after,
        up_after: config.monitor.up_after,
    }
}

/// One server's loops (rounds, sign-up checks).
struct Job<R: Rounds> {
    monitor: Arc<Monitor<R>>,
    slot: Arc<Slot>,
    services: Arc<R>,
    semaphore: Arc<Semaphore>,
    config: Arc<Config>,
}

impl<R: Rounds> Clone for Job<R> {
    fn clone(&self) -> Self {
        Job {
            monitor: self.monitor.clone(),
            slot: self.slot.clone(),
            services: self.services.clone(),
            semaphore: self.semaphore.clone(),
            config: self.config.clone(),
        }
    }
}

impl<R: Rounds> Job<R> {
    /// Sleeps until `next`, then waits for a place under the concurrency cap; `None` once the
    /// server is stopped.
    async fn wait_turn(&self, next: Instant) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let cancel = &self.slot.cancel;
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep_until(next) => {}
        }
        tokio::select! {
            () = cancel.cancelled() => None,
            p = self.semaphore.clone().acquire_owned() => Some(p.expect("the semaphore is never closed")),
        }
    }

    async fn run(self, first_delay: Duration) {
        let cancel = self.slot.cancel.clone();
        let mut next = Instant::now() + first_delay;
        loop {
            let Some(permit) = self.wait_turn(next).await else {
                return;
            };
            let started = Instant::now();
            self.monitor
                .metrics
                .observe_lateness(started.saturating_duration_since(next).as_secs_f64());
            self.monitor.metrics.in_flight().inc();
            // Boxed: a round's future is kilobytes (discovery, TLS, HTTP), and unboxed it would
            // size every server's task while it sleeps between rounds, 10,000 times over.
            let outcome = tokio::select! {
                () = cancel.cancelled() => None,
                r = Box::pin(self.round(started)) => Some(r),
            };
            self.monitor.metrics.in_flight().dec();
            drop(permit);
            let Some((round, discovery_ran)) = outcome else {
                return;
            };
            // A round this monitor could not make (no IPv6 to an IPv6-only server) is not a
            // failure of the server: it keeps the normal cadence.
            let up = round.any_ok() || !round.measurable();
            self.publish(round, discovery_ran);
            let period = if up {
                self.config.monitor.interval
            } else {
                self.config.monitor.retry_interval
            };
            // Keep the cadence (no drift); after a long stall, start again from now.
            next += period;
            let now = Instant::now();
            if next < now {
                next = now;
            }
        }
    }

    /// Runs one round, reusing the cached resolution while it is fresh.
    async fn round(&self, now: Instant) -> (Round, bool) {
        let name = &self.slot.server.name;
        let cached = self.slot.cached_resolution(now);
        let discovery_ran = cached.is_none();
        let resolution = match cached {
            Some(r) => r,
            None => Arc::new(self.services.resolve(name).await),
        };
        let round = self.services.probe(resolution, name.as_str()).await;
        let mut cache = self.slot.resolution.lock().expect("resolution lock");
        *cache = if round.any_ok() || !round.measurable() {
            if discovery_ran {
                let expires = now + round.resolution.valid_for;
                Some((round.resolution.clone(), expires))
            } else {
                cache.take()
            }
        } else {
            // Nothing answered (and it could have): resolve again next round, as homeservers
            // drop cached routes.
            None
        };
        (round, discovery_ran)
    }

    fn publish(&self, round: Round, discovery_ran: bool) {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        // Only this loop writes the history; readers hold `Shown` blocks it never changes.
        let mut history = self.slot.history.lock().expect("history lock");
        if self.slot.cancel.is_cancelled() && round.measurable() {
            // A reload restarted this server meanwhile: it cancels the loop, then copies the
            // history under this lock for the new loop. A round recorded here now would be
            // in the old copy only (and its change announced again by the new loop).
            return;
        }
        let monitor = &self.monitor;
        // On a hub, changes of the verdict are recorded instead (`track_verdicts`).
        let on_event = |event: Event| {
            if monitor.hub.is_none() {
                monitor.record_event(event);
            }
        };
        let checked = self.slot.checked.lock().expect("checked lock").clone();
        publish_round(
            &Published {
                server: &self.slot.server,
                per_server_phases: self
                    .slot
                    .server
                    .per_server_phases
                    .unwrap_or(self.config.metrics.per_server_phases),
                cell: &self.slot.cell,
                checked,
                now,
            },
            &mut history,
            round,
            discovery_ran,
            &Outlet {
                board: &monitor.board,
                metrics: &monitor.metrics,
                store: monitor.store.as_ref(),
                on_event: &on_event,
            },
        );
    }

    /// Checks sign-up facts at start (after the same delay as the first round) and then every
    /// `[signup] interval`, ±10 %, on its own schedule so a slow check never delays a round.
    async fn run_signup(self, first_delay: Duration) {
        let cancel = self.slot.cancel.clone();
        let mut next = Instant::now() + first_delay;
        loop {
            let Some(permit) = self.wait_turn(next).await else {
                return;
            };
            let checked = tokio::select! {
                () = cancel.cancelled() => return,
                r = Box::pin(self.services.signup(&self.slot.server.name)) => r,
            };
            drop(permit);
            let Some(newcomer) = checked else { return };
            self.publish_signup(newcomer);
            let jitter = rand::rng().random_range(0.9..1.1);
            next = Instant::now() + self.config.signup.interval.mul_f64(jitter);
        }
    }

    /// Sends the signed federation check at start (after the same delay as the first round)
    /// and then every `[federation] interval`, ±10 %, on its own schedule.
    async fn run_federation(self, first_delay: Duration) {
        let Some(interval) = self.config.federation.as_ref().map(|f| f.interval) else {
            return;
        };
        let cancel = self.slot.cancel.clone();
        let mut next = Instant::now() + first_delay;
        loop {
            let Some(permit) = self.wait_turn(next).await else {
                return;
            };
            let resolution = self.slot.cached_resolution(Instant::now());
            let fetches = self.monitor.board.key_fetches();
            let checked = tokio::select! {
                () = cancel.cancelled() => return,
                r = Box::pin(self.services.federation(&self.slot.server.name, resolution, fetches)) => r,
            };
            drop(permit);
            let Some(outbound) = checked else { return };
            self.publish_federation(outbound);
            let jitter = rand::rng().random_range(0.9..1.1);
            next = Instant::now() + interval.mul_f64(jitter);
        }
    }

    fn publish_federation(&self, outbound: Outbound) {
        self.monitor
            .metrics
            .set_federation(self.slot.server.name.as_str(), &outbound);
        self.publish_checked(|c| c.with_federation(outbound));
    }

    /// Shows a new check in the current view and every later one. Under the history lock,
    /// which a round holds while it publishes, so a round never publishes the check before.
    fn publish_checked(&self, f: impl FnOnce(&Checked) -> Checked) {
        self.monitor.show_checked(&self.slot, f);
    }

    fn publish_signup(&self, newcomer: Newcomer) {
        let name = self.slot.server.name.as_str();
        self.monitor
            .metrics
            .set_signup(name, newcomer.signup.status);
        self.monitor.metrics.set_clients(name, &newcomer.clients);
        self.publish_checked(|c| c.with_newcomer(newcomer));
    }
}
