//! Maintenance windows (design.md "Maintenance and incidents"): planned in the config
//! (`[[maintenance]]`, once or weekly in a named timezone) or started while the monitor runs
//! (`POST /api/v1/admin/maintenance`, `mxping maintenance`). During a window a server is
//! probed as usual but shown as `maintenance` with its note, its rounds are kept but not
//! counted in uptime, and its alerts are replaced by one "maintenance started" message that
//! the end of the window resolves (or turns into a down alert, if the server is still down).
//!
//! [`Schedule`] answers which window covers a server at a time, and when the next window
//! starts or ends; the scheduler's maintenance task wakes at those times and when a window is
//! started or ended by hand. Windows started by hand are one row per server in the history
//! store's file (their own table and connection, as the alert outbox has), written before the
//! call is answered, so they survive a restart or `kill -9`.

pub(crate) mod incidents;
pub(crate) mod store;

use std::sync::{Arc, RwLock};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::config::MAX_NOTE;
pub(crate) use crate::config::When;
use crate::config::glob_matches;
pub(crate) use store::MaintenanceStore;

/// The longest window started by hand: a week.
pub(crate) const MAX_DURATION: i64 = 7 * 86_400;

/// One maintenance window.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// The servers it covers: names or globs (`*` stands for any run of characters).
    pub servers: Vec<String>,
    /// When.
    pub when: When,
    /// What the operator said about it (may be empty).
    pub note: String,
    /// Who started it: `config` for a planned window, else the admin or room user.
    pub by: String,
    /// Where it came from.
    pub source: Source,
    /// Its row in the store (windows started by hand).
    pub id: Option<i64>,
}

/// Where a window came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `[[maintenance]]` in the config.
    Config,
    /// The admin API or `mxping maintenance`.
    Admin,
    /// A command in the alert room.
    Room,
}

impl Source {
    /// The word kept in the store and shown in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Admin => "admin",
            Source::Room => "room",
        }
    }

    /// The source named `word`.
    pub fn parse(word: &str) -> Option<Source> {
        [Source::Config, Source::Admin, Source::Room]
            .into_iter()
            .find(|s| s.as_str() == word)
    }
}

impl Window {
    /// True when the window covers `server`.
    pub fn covers(&self, server: &str) -> bool {
        self.servers.iter().any(|g| glob_matches(g, server))
    }
}

/// The window a server is in, as shown: the API's `maintenance` object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Active {
    /// When it began.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    /// The operator's note (may be empty).
    pub note: String,
    /// Who started it (`config` for a planned window).
    pub by: String,
    /// Where it came from.
    pub source: Source,
}

fn at(t: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A window to start by hand.
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    /// A server name or glob.
    pub pattern: &'a str,
    /// Seconds, from a minute to [`MAX_DURATION`].
    pub duration: i64,
    /// The note (at most [`MAX_NOTE`] characters).
    pub note: &'a str,
    /// Who starts it.
    pub by: &'a str,
    /// From where.
    pub source: Source,
}

/// Every window, planned and started by hand, and who waits for a change.
pub struct Schedule {
    planned: RwLock<Arc<Vec<Window>>>,
    started: RwLock<Vec<Window>>,
    store: Option<Arc<MaintenanceStore>>,
    changed: Notify,
}

/// Why a window could not be started or ended.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refusal {
    /// The pattern names no monitored server.
    #[error("{0:?} matches no monitored server")]
    NoServer(String),
    /// The note is too long.
    #[error("the note is {0} characters long; at most {MAX_NOTE} are kept")]
    NoteTooLong(usize),
    /// The duration is zero or longer than a week.
    #[error("a window lasts from one minute to seven days")]
    Duration,
    /// Nothing to end.
    #[error("{0} is not in a maintenance window started by hand")]
    NotInWindow(String),
    /// Planned in the config: ended by editing it.
    #[error("{0} is in a window planned in the config; change [[maintenance]] to end it")]
    Planned(String),
    /// A note with nothing in it.
    #[error("the note is empty")]
    EmptyNote,
    /// Nothing to resolve.
    #[error("{0} has no open incident to resolve")]
    NoIncident(String),
    /// The store could not keep it.
    #[error("the window could not be saved: {0}")]
    Store(String),
}

impl Schedule {
    /// The planned windows, those started by hand that the store keeps, and the store.
    pub fn new(planned: Vec<Window>, store: Option<Arc<MaintenanceStore>>, now: i64) -> Schedule {
        let started = match &store {
            Some(s) => s.open_windows(now).unwrap_or_else(|e| {
                tracing::error!("maintenance: cannot read the windows started by hand: {e}");
                Vec::new()
            }),
            None => Vec::new(),
        };
        Schedule {
            planned: RwLock::new(Arc::new(planned)),
            started: RwLock::new(started),
            store,
            changed: Notify::new(),
        }
    }

    /// Replaces the planned windows (config reload).
    pub fn set_planned(&self, planned: Vec<Window>) {
        *self.planned.write().expect("planned lock") = Arc::new(planned);
        self.changed.notify_one();
    }

    /// Waits until a window is started or ended by hand, or the plan changes.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The window `server` is in at `now`: of several, the one that ends last.
    pub fn active(&self, server: &str, now: i64) -> Option<Active> {
        let planned = self.planned.read().expect("planned lock").clone();
        let started = self.started.read().expect("started lock");
        planned
            .iter()
            .chain(started.iter())
            .filter(|w| w.covers(server))
            .filter_map(|w| w.when.open_at(now).map(|(s, e)| (s, e, w)))
            .max_by_key(|(_, e, _)| *e)
            .map(|(s, e, w)| Active {
                start: at(s),
                end: at(e),
                note: w.note.clone(),
                by: w.by.clone(),
                source: w.source,
            })
    }

    /// The next time after `now` at which any window opens or closes.
    pub fn next_change(&self, now: i64) -> Option<i64> {
        let planned = self.planned.read().expect("planned lock").clone();
        let started = self.started.read().expect("started lock");
        planned
            .iter()
            .chain(started.iter())
            .filter_map(|w| w.when.next_change(now))
            .min()
    }

    /// Seconds of maintenance of `server` in each step (start, end) of `steps`, which follow
    /// each other: the windows planned now and those started by hand (kept in the store),
    /// overlapping windows counted once. For the history export.
    pub fn seconds(&self, server: &str, steps: &[(i64, i64)]) -> Vec<i64> {
        let (Some(first), Some(last)) = (steps.first(), steps.last()) else {
            return Vec::new();
        };
        let (from, to) = (first.0, last.1);
        let planned = self.planned.read().expect("planned lock").clone();
        let mut spans: Vec<(i64, i64)> = planned
            .iter()
            .filter(|w| w.covers(server))
            .flat_map(|w| w.when.occurrences(from, to))
            .collect();
        match &self.store {
            Some(store) => match store.spans(server, from, to) {
                Ok(kept) => spans.extend(kept),
                Err(e) => tracing::error!("maintenance: cannot read the windows of {server}: {e}"),
            },
            None => spans.extend(
                self.started
                    .read()
                    .expect("started lock")
                    .iter()
                    .filter(|w| w.covers(server))
                    .flat_map(|w| w.when.occurrences(from, to)),
            ),
        }
        spans.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        steps
            .iter()
            .map(|&(a, b)| {
                merged
                    .iter()
                    .map(|&(s, e)| (e.min(b) - s.max(a)).max(0))
                    .sum()
            })
            .collect()
    }

    /// Starts the window `plan` at `now` on every server of `known` its pattern covers;
    /// returns their names.
    pub fn start(
        &self,
        plan: &Plan<'_>,
        known: &[String],
        now: i64,
    ) -> Result<Vec<String>, Refusal> {
        let Plan {
            pattern,
            duration,
            note,
            by,
            source,
        } = *plan;
        let chars = note.chars().count();
        if chars > MAX_NOTE {
            return Err(Refusal::NoteTooLong(chars));
        }
        if !(60..=MAX_DURATION).contains(&duration) {
            return Err(Refusal::Duration);
        }
        let servers: Vec<String> = known
            .iter()
            .filter(|s| glob_matches(pattern, s))
            .cloned()
            .collect();
        if servers.is_empty() {
            return Err(Refusal::NoServer(pattern.to_owned()));
        }
        let mut windows: Vec<Window> = servers
            .iter()
            .map(|s| Window {
                servers: vec![s.clone()],
                when: When::Once {
                    start: now,
                    end: now + duration,
                },
                note: note.to_owned(),
                by: by.to_owned(),
                source,
                id: None,
            })
            .collect();
        if let Some(store) = &self.store {
            store
                .insert(&mut windows)
                .map_err(|e| Refusal::Store(e.to_string()))?;
        }
        let mut started = self.started.write().expect("started lock");
        started.retain(|w| w.when.next_change(now).is_some());
        started.extend(windows);
        drop(started);
        self.changed.notify_one();
        Ok(servers)
    }

    /// Ends at `now` the windows started by hand that `server` is in.
    pub fn end(&self, server: &str, now: i64) -> Result<(), Refusal> {
        let mut started = self.started.write().expect("started lock");
        let open: Vec<usize> = started
            .iter()
            .enumerate()
            .filter(|(_, w)| w.covers(server) && w.when.open_at(now).is_some())
            .map(|(i, _)| i)
            .collect();
        if open.is_empty() {
            drop(started);
            return Err(match self.active(server, now) {
                Some(_) => Refusal::Planned(server.to_owned()),
                None => Refusal::NotInWindow(server.to_owned()),
            });
        }
        let ids: Vec<i64> = open.iter().filter_map(|&i| started[i].id).collect();
        if let Some(store) = &self.store {
            store
                .end(&ids, now)
                .map_err(|e| Refusal::Store(e.to_string()))?;
        }
        for i in open {
            if let When::Once { end, .. } = &mut started[i].when {
                *end = now;
            }
        }
        drop(started);
        self.changed.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    fn plan<'a>(pattern: &'a str, duration: i64, note: &'a str) -> Plan<'a> {
        Plan {
            pattern,
            duration,
            note,
            by: "op",
            source: Source::Admin,
        }
    }

    #[test]
    fn the_window_ending_last_is_shown_and_hand_started_windows_end_early() {
        let now = ts("2026-12-07T12:00:00Z");
        let planned = Window {
            servers: vec!["*.a.test".into()],
            when: When::Once {
                start: now - 60,
                end: now + 600,
            },
            note: "planned".into(),
            by: "config".into(),
            source: Source::Config,
            id: None,
        };
        let s = Schedule::new(vec![planned], None, now);
        let known = vec!["x.a.test".to_owned(), "b.test".to_owned()];
        assert_eq!(s.active("x.a.test", now).unwrap().note, "planned");
        assert_eq!(s.active("b.test", now), None);
        assert_eq!(s.next_change(now), Some(now + 600));
        assert_eq!(
            s.start(
                &Plan {
                    by: "@op:a.test",
                    ..plan("*.test", 3600, "upgrade")
                },
                &known,
                now
            ),
            Ok(known.clone())
        );
        let a = s.active("x.a.test", now).unwrap();
        assert_eq!((a.note.as_str(), a.source), ("upgrade", Source::Admin));
        assert_eq!(s.next_change(now), Some(now + 600));
        // Ended by hand: the planned window shows again, and it cannot be ended by hand.
        s.end("x.a.test", now + 10).unwrap();
        assert_eq!(s.active("x.a.test", now + 10).unwrap().note, "planned");
        assert_eq!(
            s.end("x.a.test", now + 20),
            Err(Refusal::Planned("x.a.test".into()))
        );
        assert_eq!(s.active("b.test", now + 10).unwrap().note, "upgrade");
        assert_eq!(
            s.start(&plan("nothing.test", 3600, ""), &known, now),
            Err(Refusal::NoServer("nothing.test".into()))
        );
        assert_eq!(
            s.start(&plan("b.test", 30, ""), &known, now),
            Err(Refusal::Duration)
        );
        assert_eq!(
            s.start(&plan("b.test", 600, &"x".repeat(501)), &known, now),
            Err(Refusal::NoteTooLong(501))
        );
        s.end("b.test", now + 30).unwrap();
        assert_eq!(s.active("b.test", now + 30), None);
        assert_eq!(
            s.end("b.test", now + 40),
            Err(Refusal::NotInWindow("b.test".into()))
        );
    }
}
