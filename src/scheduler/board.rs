//! The board: what the scheduler publishes and the web layer reads (design.md "snapshot").
//!
//! Only values: each server has a cell holding its latest [`ServerView`], an immutable value
//! (what it shows of the history is a [`crate::history::Shown`] copied out once per round),
//! swapped atomically (`arc-swap`); the layout (config and cells) and the feed's events are
//! swapped the same way. Readers load `Arc`s without taking a lock and never wait for a probe,
//! a report or another reader.
//!
//! On a hub a cell holds two views: the hub's own (what its loop publishes) and the one shown,
//! with every vantage's view and the quorum's verdict. The hub's task ([`Board::apply_verdicts`])
//! combines them when a round or a report changed something, and once a second for views that
//! grow stale; a read never computes a verdict. The board knows nothing else: the metrics, alert
//! health and the hub's inbox are handles of their own (`web::Handles`). The web layer reads
//! this type — not the scheduler — so a test can publish views of its own (`set_layout` with
//! new cells) and drive the router in-process.

use crate::probe::federation::KeyFetches;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::config::Config;
use crate::history::events::{Event, MAX_EVENTS};
use crate::status::Status;
use crate::vantage::hub::{Hub, VantageView};

use super::ServerView;

/// One server's latest view.
pub struct Cell {
    /// What this monitor's own loop published last.
    own: ArcSwap<ServerView>,
    /// What readers see: the own view, or on a hub the view with the quorum's verdict.
    shown: ArcSwap<ServerView>,
    /// On a hub, the own view `shown` was made from.
    basis: arc_swap::ArcSwapOption<ServerView>,
}

impl Cell {
    /// A cell showing `view`.
    pub fn new(view: ServerView) -> Cell {
        let view = Arc::new(view);
        Cell {
            own: ArcSwap::new(view.clone()),
            shown: ArcSwap::new(view),
            basis: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// This monitor's own latest view.
    pub fn view(&self) -> Arc<ServerView> {
        self.own.load_full()
    }

    /// The view readers see.
    pub fn shown(&self) -> Arc<ServerView> {
        self.shown.load_full()
    }
}

/// The hub's own view is impaired by the rule every vantage is held to: it checked two or more
/// servers and reached none (its network, not the servers, is broken).
fn own_impaired(views: &[Arc<ServerView>]) -> bool {
    crate::vantage::impaired(views.iter().filter_map(|v| v.reached()))
}

/// The quorum's verdict on `view` (this hub's own), with every vantage's view, on a hub;
/// `impaired`: the hub's own probes reach none of its servers.
fn verdict(
    hub: &Hub,
    config: &Config,
    view: &ServerView,
    impaired: bool,
    now: i64,
) -> crate::vantage::hub::Verdict {
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
    hub.verdict(
        &r.name,
        &own,
        r.reason.clone(),
        (delegation, &addresses),
        now,
    )
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
    layout: ArcSwap<Layout>,
    /// Status changes, oldest first (at most `MAX_EVENTS`).
    events: ArcSwap<Vec<Event>>,
    generation: AtomicU64,
    /// Wakes the hub's task: a view, a report or the layout changed.
    changed: Notify,
    /// The layout changed since the hub's task last combined every server (a report's
    /// handler combines every server itself).
    layout_changed: std::sync::atomic::AtomicBool,
    /// A hub's board: the views shown are combined by the hub's task, not published.
    combined: bool,
    /// One combining pass at a time (the hub's task, or a report's handler), so a pass made
    /// from older reports never stores its views after a newer one.
    combining: std::sync::Mutex<()>,
    /// Requests for mxping's federation key that the web listener answered, for the
    /// federation checks to tell who fetched it.
    key_fetches: Arc<KeyFetches>,
}

impl Board {
    /// A board for `config` with no servers shown yet.
    pub fn new(config: Arc<Config>) -> Board {
        Board::with_combining(config, false)
    }

    /// A hub's board for `config`: what it shows is what [`Board::apply_verdicts`] combined.
    pub fn combined(config: Arc<Config>) -> Board {
        Board::with_combining(config, true)
    }

    fn with_combining(config: Arc<Config>, combined: bool) -> Board {
        Board {
            layout: ArcSwap::from_pointee(Layout {
                config,
                cells: Vec::new(),
                index: HashMap::new(),
            }),
            events: ArcSwap::from_pointee(Vec::new()),
            generation: AtomicU64::new(0),
            changed: Notify::new(),
            layout_changed: std::sync::atomic::AtomicBool::new(true),
            combined,
            combining: std::sync::Mutex::new(()),
            key_fetches: Arc::default(),
        }
    }

    /// The log of requests for mxping's federation key (the web listener writes it).
    pub fn key_fetches(&self) -> Arc<KeyFetches> {
        self.key_fetches.clone()
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
        self.layout.store(Arc::new(layout));
        self.layout_changed.store(true, Ordering::Release);
        self.bump();
    }

    /// Publishes `view` as this monitor's own in `cell`: shown at once, or on a hub once its
    /// task has combined it with the vantages' views.
    pub fn publish(&self, cell: &Cell, view: ServerView) {
        let view = Arc::new(view);
        cell.own.store(view.clone());
        if !self.combined {
            cell.shown.store(view);
        }
        self.bump();
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
        self.changed.notify_one();
    }

    /// Every server's latest view (on a hub, with the quorum's verdict).
    pub fn snapshot(&self) -> Snapshot {
        let layout = self.layout.load();
        Snapshot {
            config: layout.config.clone(),
            servers: layout.cells.iter().map(|c| c.shown()).collect(),
        }
    }

    /// The latest view of `name`, if it is monitored (on a hub, with the quorum's verdict).
    pub fn server(&self, name: &str) -> Option<(Arc<Config>, Arc<ServerView>)> {
        let layout = self.layout.load();
        let i = *layout.index.get(name)?;
        Some((layout.config.clone(), layout.cells[i].shown()))
    }

    /// Waits until a view, a report or the layout changes (a change since the last wait is
    /// not lost).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Whether every verdict must be combined again (the layout changed since the last time
    /// this said so).
    pub fn take_layout_changed(&self) -> bool {
        self.layout_changed.swap(false, Ordering::AcqRel)
    }

    /// On a hub's board, combines each server's own view with the vantages' reports to `hub`
    /// into the view shown, at `now` (Unix seconds): every server with `all`, else only those
    /// whose own view changed (a round); a cell whose shown view would not change keeps it.
    /// Run by the hub's task, and by a report's handler before it answers: a read never
    /// computes a verdict.
    pub fn apply_verdicts(&self, hub: &Hub, now: i64, all: bool) {
        if !self.combined {
            return;
        }
        let _one_at_a_time = self.combining.lock().expect("combining lock");
        let layout = self.layout.load();
        let own: Vec<Arc<ServerView>> = layout.cells.iter().map(|c| c.view()).collect();
        let impaired = own_impaired(&own);
        let mut changed = false;
        for (cell, view) in layout.cells.iter().zip(own) {
            let same_round = cell
                .basis
                .load()
                .as_ref()
                .is_some_and(|b| Arc::ptr_eq(b, &view));
            if same_round && !all {
                continue;
            }
            let shown = cell.shown();
            let verdict = verdict(hub, &layout.config, &view, impaired, now);
            // The same own view (the same round) with the same verdict shows the same.
            let same = same_round
                && (view.status() == Status::Maintenance
                    || (shown.report.status == verdict.status
                        && shown.report.reason == verdict.reason))
                && shown.vantages.as_ref() == Some(&verdict.views);
            if !same {
                let mut combined = (*view).clone();
                // A window the operator set is shown as it is, whatever the vantages see.
                if view.status() != Status::Maintenance {
                    combined.report.status = verdict.status;
                    combined.report.reason = verdict.reason;
                }
                combined.vantages = Some(verdict.views);
                cell.basis.store(Some(view));
                cell.shown.store(Arc::new(combined));
                changed = true;
            }
        }
        if changed {
            // A new generation, and the hub's task wakes to record changed verdicts (its
            // own pass then finds every server combined already).
            self.bump();
        }
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.layout.load().config.clone()
    }

    /// Adds a status change (the oldest is dropped beyond `MAX_EVENTS`).
    pub fn push_event(&self, event: Event) {
        self.events.rcu(|events| {
            let skip = (events.len() + 1).saturating_sub(MAX_EVENTS);
            let mut next: Vec<Event> = events.iter().skip(skip).cloned().collect();
            next.push(event.clone());
            next
        });
        self.bump();
    }

    /// Status changes, newest first.
    pub fn events(&self) -> Vec<Event> {
        self.events.load().iter().rev().cloned().collect()
    }

    /// A number that changes whenever a view, the events or the config change: equal numbers
    /// mean a page built from [`Board::snapshot`] would come out the same (apart from the clock).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
