//! The board: what the scheduler publishes and the web layer reads (design.md "snapshot").
//!
//! Each server has a cell holding its latest [`ServerView`], an immutable value (what it shows
//! of the history is a [`crate::history::Shown`] copied out once per round). A round
//! swaps one cell's `Arc`; a reload swaps the layout (config and cells). Readers clone `Arc`s
//! and never wait for a probe, and the web layer depends on this type alone — not on the
//! scheduler — so a test can publish views of its own (`set_layout` with new cells) and
//! drive the router in-process.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::alert::{AlertHealth, ChannelState};
use crate::config::Config;
use crate::history::events::{Event, MAX_EVENTS};
use crate::metrics::Metrics;
use crate::vantage::hub::{Hub, VantageView};

use super::ServerView;

/// One server's latest view.
pub struct Cell {
    view: RwLock<Arc<ServerView>>,
}

impl Cell {
    /// A cell showing `view`.
    pub fn new(view: ServerView) -> Cell {
        Cell {
            view: RwLock::new(Arc::new(view)),
        }
    }

    /// The latest view.
    pub fn view(&self) -> Arc<ServerView> {
        self.view.read().expect("view lock").clone()
    }
}

/// The hub's own view is impaired by the rule every vantage is held to: it checked two or more
/// servers and reached none (its network, not the servers, is broken).
fn own_impaired(views: &[Arc<ServerView>]) -> bool {
    crate::vantage::impaired(views.iter().filter_map(|v| v.reached()))
}

/// The config in force and the cells of its servers, in config order.
struct Layout {
    config: Arc<Config>,
    cells: Vec<Arc<Cell>>,
    index: HashMap<String, usize>,
}

/// A consistent view of every server, for one page or API response.
pub struct Snapshot {
    /// The config in force.
    pub config: Arc<Config>,
    /// Every server's view, in config order.
    pub servers: Vec<Arc<ServerView>>,
}

/// The published state. Cheap to share (`Arc<Board>`).
pub struct Board {
    layout: RwLock<Arc<Layout>>,
    events: Mutex<VecDeque<Event>>,
    generation: AtomicU64,
    metrics: Arc<Metrics>,
    alert_health: std::sync::OnceLock<Arc<AlertHealth>>,
    hub: std::sync::OnceLock<Arc<Hub>>,
}

impl Board {
    /// A board for `config` with no servers shown yet.
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>) -> Board {
        Board {
            layout: RwLock::new(Arc::new(Layout {
                config,
                cells: Vec::new(),
                index: HashMap::new(),
            })),
            events: Mutex::new(VecDeque::new()),
            generation: AtomicU64::new(0),
            metrics,
            alert_health: std::sync::OnceLock::new(),
            hub: std::sync::OnceLock::new(),
        }
    }

    /// Shows `config` with these cells (in config order), replacing the layout.
    pub fn set_layout(&self, config: Arc<Config>, cells: Vec<(String, Arc<Cell>)>) {
        let index = cells
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), i))
            .collect();
        let layout = Layout {
            config,
            cells: cells.into_iter().map(|(_, c)| c).collect(),
            index,
        };
        *self.layout.write().expect("layout lock") = Arc::new(layout);
        self.bump();
    }

    /// Publishes `view` in `cell`.
    pub fn publish(&self, cell: &Cell, view: ServerView) {
        *cell.view.write().expect("view lock") = Arc::new(view);
        self.bump();
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Every server's latest view (on a hub, with the quorum's verdict).
    pub fn snapshot(&self) -> Snapshot {
        let layout = self.layout.read().expect("layout lock").clone();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let views: Vec<Arc<ServerView>> = layout.cells.iter().map(|c| c.view()).collect();
        let impaired = self.hub.get().is_some() && own_impaired(&views);
        Snapshot {
            config: layout.config.clone(),
            servers: views
                .into_iter()
                .map(|v| self.with_vantages(&layout.config, v, impaired, now))
                .collect(),
        }
    }

    /// The latest view of `name`, if it is monitored (on a hub, with the quorum's verdict).
    pub fn server(&self, name: &str) -> Option<(Arc<Config>, Arc<ServerView>)> {
        let layout = self.layout.read().expect("layout lock").clone();
        let i = *layout.index.get(name)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let impaired = self.hub.get().is_some()
            && own_impaired(&layout.cells.iter().map(|c| c.view()).collect::<Vec<_>>());
        let view = self.with_vantages(&layout.config, layout.cells[i].view(), impaired, now);
        Some((layout.config.clone(), view))
    }

    /// `view` with every vantage's view and the quorum's status and reason, on a hub;
    /// `impaired`: the hub's own probes reach none of its servers.
    fn with_vantages(
        &self,
        config: &Config,
        view: Arc<ServerView>,
        impaired: bool,
        now: i64,
    ) -> Arc<ServerView> {
        let Some(hub) = self.hub.get() else {
            return view;
        };
        let r = &view.report;
        let own = VantageView {
            vantage: config.web.vantage_name().to_owned(),
            status: r.status,
            latency_ms: r.latency_ms,
            checked_at: r.checked_at.map(crate::timestamp::format),
            stale: false,
            impaired,
            reached: view.reached() == Some(true),
            uptime_24h: view.uptime("24h"),
            latency_24h_ms: None,
            different_delegation: None,
            different_addresses: None,
        };
        let delegation = r.discovery.as_ref().map(|d| d.delegated_name.as_str());
        let addresses = crate::vantage::addresses(r);
        let verdict = hub.verdict(
            &r.name,
            &own,
            r.reason.clone(),
            (delegation, &addresses),
            now,
        );
        let mut v = (*view).clone();
        v.report.status = verdict.status;
        v.report.reason = verdict.reason;
        v.vantages = Some(verdict.views);
        Arc::new(v)
    }

    /// Makes this board a hub's: views carry every vantage's and the quorum's verdict.
    pub fn serve_hub(&self, hub: Arc<Hub>) {
        let _ = self.hub.set(hub);
    }

    /// The hub, on a hub.
    pub fn hub(&self) -> Option<&Arc<Hub>> {
        self.hub.get()
    }

    /// Something views show changed outside a round (a vantage's report).
    pub fn touch(&self) {
        self.bump();
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.layout.read().expect("layout lock").config.clone()
    }

    /// Adds a status change (the oldest is dropped beyond `MAX_EVENTS`).
    pub fn push_event(&self, event: Event) {
        let mut events = self.events.lock().expect("events lock");
        if events.len() == MAX_EVENTS {
            events.pop_front();
        }
        events.push_back(event);
        drop(events);
        self.bump();
    }

    /// Status changes, newest first.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .expect("events lock")
            .iter()
            .rev()
            .cloned()
            .collect()
    }

    /// A number that changes whenever a view, the events or the config change: equal numbers
    /// mean a page built from [`Board::snapshot`] would come out the same (apart from the clock).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Shows how alert delivery is doing (`/healthz`, the page's footer); set once.
    pub fn show_alert_health(&self, health: Arc<AlertHealth>) {
        let _ = self.alert_health.set(health);
    }

    /// Every alert channel and its state, by label (empty without alerts).
    pub fn alert_channels(&self) -> Vec<(String, ChannelState)> {
        self.alert_health
            .get()
            .map(|h| h.channels())
            .unwrap_or_default()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
