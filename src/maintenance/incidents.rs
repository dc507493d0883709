//! Incident notes (design.md "Maintenance and incidents"): what a server's operator tells its
//! users while something is wrong ("upgrading Synapse, back at 14:00"). A note belongs to a
//! server; the notes since the last resolution are its incident, shown on the status page
//! row, as a timeline on the detail page, in the Atom feed and as a reply in the alert's
//! thread. An incident is resolved with a last note, or, when it was opened so, by itself when
//! the server is green again. Notes are kept in the store's file before the call is answered.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use time::OffsetDateTime;

use super::{MAX_NOTE, MaintenanceStore, Refusal};

/// How long a resolved incident stays on the detail page and in the API.
const SHOWN_AFTER_RESOLVED: i64 = 86_400;

/// One note.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Note {
    /// When, RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who wrote it.
    pub by: String,
    /// The text, plain (shown escaped).
    pub text: String,
    /// It resolved the incident.
    pub resolves: bool,
}

/// A server's incident: its notes in order, since the last resolution.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Incident {
    /// When its first note was written.
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    /// When it was resolved (`null` while open).
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    /// Resolved by itself once the server is green again.
    pub until_recovered: bool,
    /// The notes, oldest first.
    pub notes: Vec<Note>,
}

impl Incident {
    /// Still open.
    pub fn is_open(&self) -> bool {
        self.resolved_at.is_none()
    }

    /// The newest note.
    pub fn latest(&self) -> Option<&Note> {
        self.notes.last()
    }
}

/// What an operator said: to add to a server's incident.
#[derive(Clone, Copy, Debug)]
pub struct Said<'a> {
    /// The server, by name.
    pub server: &'a str,
    /// The text (at most [`MAX_NOTE`] characters; may be empty only to resolve).
    pub text: &'a str,
    /// Who.
    pub by: &'a str,
    /// It resolves the incident.
    pub resolves: bool,
    /// Opening an incident: resolve it by itself once the server is green.
    pub until_recovered: bool,
}

/// Every server's current (or lately resolved) incident.
pub struct Incidents {
    current: RwLock<HashMap<String, Arc<Incident>>>,
    /// Notes written since the monitor last took them, for the alert channels.
    fresh: std::sync::Mutex<Vec<(String, Note)>>,
    store: Option<Arc<MaintenanceStore>>,
    changed: tokio::sync::Notify,
}

fn at(t: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A row as kept: server, Unix seconds, by, text, resolves, until recovered.
pub(super) type Row = (String, i64, String, String, bool, bool);

impl Incidents {
    /// The incidents the store keeps, as of `now`.
    pub fn new(store: Option<Arc<MaintenanceStore>>, now: i64) -> Incidents {
        let mut current: HashMap<String, Arc<Incident>> = HashMap::new();
        if let Some(s) = &store {
            match s.notes_since(now - 30 * 86_400) {
                Ok(rows) => {
                    for row in rows {
                        let server = row.0.clone();
                        let next = apply(current.get(&server).map(|i| &**i), &row);
                        current.insert(server, Arc::new(next));
                    }
                }
                Err(e) => tracing::error!("incidents: cannot read the notes: {e}"),
            }
        }
        current.retain(|_, i| shown(i, now));
        Incidents {
            current: RwLock::new(current),
            fresh: std::sync::Mutex::default(),
            store,
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Waits until a note is added.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The incident shown for `server` at `now`: open, or resolved less than a day ago.
    pub fn of(&self, server: &str, now: i64) -> Option<Arc<Incident>> {
        self.current
            .read()
            .expect("incidents lock")
            .get(server)
            .filter(|i| shown(i, now))
            .cloned()
    }

    /// Adds what the operator said at `now` to the incident of a server of `known`; returns
    /// the incident as it is now.
    pub fn add(
        &self,
        said: &Said<'_>,
        known: &[String],
        now: i64,
    ) -> Result<Arc<Incident>, Refusal> {
        let incident = self.keep(said, known, now)?;
        if let Some(n) = incident.latest() {
            self.fresh
                .lock()
                .expect("incidents lock")
                .push((said.server.to_owned(), n.clone()));
        }
        self.changed.notify_one();
        Ok(incident)
    }

    /// The notes written since the last call, oldest first: what the alert channels send.
    pub fn take_fresh(&self) -> Vec<(String, Note)> {
        std::mem::take(&mut *self.fresh.lock().expect("incidents lock"))
    }

    /// Checks and keeps what was said; the incident as it is now.
    fn keep(&self, said: &Said<'_>, known: &[String], now: i64) -> Result<Arc<Incident>, Refusal> {
        let text = said.text.trim();
        let chars = text.chars().count();
        if chars > MAX_NOTE {
            return Err(Refusal::NoteTooLong(chars));
        }
        if text.is_empty() && !said.resolves {
            return Err(Refusal::EmptyNote);
        }
        if !known.iter().any(|k| k == said.server) {
            return Err(Refusal::NoServer(said.server.to_owned()));
        }
        let mut current = self.current.write().expect("incidents lock");
        let open = current.get(said.server).filter(|i| i.is_open());
        if said.resolves && open.is_none() {
            return Err(Refusal::NoIncident(said.server.to_owned()));
        }
        let row: Row = (
            said.server.to_owned(),
            now,
            said.by.to_owned(),
            text.to_owned(),
            said.resolves,
            said.until_recovered,
        );
        if let Some(store) = &self.store {
            store
                .add_note(&row)
                .map_err(|e| Refusal::Store(e.to_string()))?;
        }
        let next = Arc::new(apply(open.map(|i| &**i), &row));
        current.insert(said.server.to_owned(), next.clone());
        Ok(next)
    }

    /// `server` is green again at `now`: an incident opened "until recovered" is resolved,
    /// with a note that says so (not sent to the alert channels: the alert's own resolution
    /// says it). Returns it, when one was.
    pub fn recovered(&self, server: &str, now: i64) -> Option<Arc<Incident>> {
        self.of(server, now)
            .filter(|i| i.is_open() && i.until_recovered)?;
        let said = Said {
            server,
            text: "",
            by: "mxping",
            resolves: true,
            until_recovered: true,
        };
        let known = [server.to_owned()];
        let done = self.keep(&said, &known, now).ok();
        self.changed.notify_one();
        done
    }
}

fn shown(i: &Incident, now: i64) -> bool {
    i.resolved_at
        .is_none_or(|r| now - r.unix_timestamp() < SHOWN_AFTER_RESOLVED)
}

/// The incident after `row`: the open one `open` continued, or a new one.
fn apply(open: Option<&Incident>, row: &Row) -> Incident {
    let (_, t, by, text, resolves, until_recovered) = row;
    let note = Note {
        at: at(*t),
        by: by.clone(),
        text: text.clone(),
        resolves: *resolves,
    };
    let mut incident = match open.filter(|i| i.is_open()) {
        Some(i) => i.clone(),
        None => Incident {
            opened_at: at(*t),
            resolved_at: None,
            until_recovered: *until_recovered,
            notes: Vec::new(),
        },
    };
    incident.notes.push(note);
    if *resolves {
        incident.resolved_at = Some(at(*t));
    }
    incident
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said<'a>(server: &'a str, text: &'a str) -> Said<'a> {
        Said {
            server,
            text,
            by: "alice",
            resolves: false,
            until_recovered: false,
        }
    }

    #[test]
    fn notes_make_an_incident_until_one_resolves_it_and_it_shows_a_day_more() {
        let known = vec!["a.test".to_owned()];
        let i = Incidents::new(None, 0);
        let now = 1_800_000_000;
        i.add(&said("a.test", "looking into it"), &known, now)
            .unwrap();
        let inc = i
            .add(&said("a.test", "disk full"), &known, now + 60)
            .unwrap();
        assert_eq!(inc.notes.len(), 2);
        assert!(inc.is_open());
        let done = i
            .add(
                &Said {
                    resolves: true,
                    ..said("a.test", "")
                },
                &known,
                now + 120,
            )
            .unwrap();
        assert_eq!(done.resolved_at.unwrap().unix_timestamp(), now + 120);
        assert!(i.of("a.test", now + 86_000).is_some());
        assert!(i.of("a.test", now + 120 + 86_400).is_none());
        // The next note opens a new incident.
        let next = i.add(&said("a.test", "again"), &known, now + 200).unwrap();
        assert_eq!(next.notes.len(), 1);
        assert_eq!(next.opened_at.unix_timestamp(), now + 200);
    }

    #[test]
    fn bad_notes_are_refused() {
        let known = vec!["a.test".to_owned()];
        let i = Incidents::new(None, 0);
        let big = "x".repeat(100 * 1024);
        assert_eq!(
            i.add(&said("a.test", &big), &known, 1),
            Err(Refusal::NoteTooLong(100 * 1024))
        );
        assert_eq!(
            i.add(&said("a.test", "  "), &known, 1),
            Err(Refusal::EmptyNote)
        );
        assert_eq!(
            i.add(&said("b.test", "hi"), &known, 1),
            Err(Refusal::NoServer("b.test".into()))
        );
        let resolve = Said {
            resolves: true,
            ..said("a.test", "done")
        };
        assert_eq!(
            i.add(&resolve, &known, 1),
            Err(Refusal::NoIncident("a.test".into()))
        );
        assert!(i.of("a.test", 1).is_none(), "nothing was kept");
    }

    #[test]
    fn an_incident_until_recovered_resolves_when_the_server_is_green() {
        let known = vec!["a.test".to_owned()];
        let i = Incidents::new(None, 0);
        i.add(&said("a.test", "manual"), &known, 10).unwrap();
        assert!(i.recovered("a.test", 20).is_none(), "not opened so");
        let j = Incidents::new(None, 0);
        j.add(
            &Said {
                until_recovered: true,
                ..said("a.test", "restarting")
            },
            &known,
            10,
        )
        .unwrap();
        let done = j.recovered("a.test", 20).unwrap();
        assert_eq!(done.resolved_at.unwrap().unix_timestamp(), 20);
        assert_eq!(done.notes.last().unwrap().by, "mxping");
    }
}
