//! Windows started by hand and incident notes, kept in the history store's file (their own
//! tables and connection): written before the call that made them is answered.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::{Source, When, Window};
use crate::history::store::TablesError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS maintenance (
    id INTEGER PRIMARY KEY, server TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    note TEXT NOT NULL, by TEXT NOT NULL, source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS maintenance_by_end ON maintenance (end);
CREATE TABLE IF NOT EXISTS incident_notes (
    id INTEGER PRIMARY KEY, server TEXT NOT NULL, at INTEGER NOT NULL, by TEXT NOT NULL,
    text TEXT NOT NULL, resolves INTEGER NOT NULL, until_recovered INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS incident_notes_by_at ON incident_notes (at);
CREATE TABLE IF NOT EXISTS reports_sent (channel TEXT PRIMARY KEY, month TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS room_sync (channel TEXT PRIMARY KEY, since TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS room_commands (
    event_id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
";

/// The tables of windows started by hand and of incident notes.
pub struct MaintenanceStore {
    conn: Mutex<Connection>,
}

impl MaintenanceStore {
    /// The table in the store file `path`.
    pub fn open(path: &Path) -> Result<MaintenanceStore, TablesError> {
        const OWNER: &str = "maintenance windows";
        let conn = Connection::open(path).map_err(TablesError::open(path, OWNER))?;
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // A window is answered as started only once it is on disk.
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.execute_batch(SCHEMA)
        };
        setup().map_err(TablesError::open(path, OWNER))?;
        Ok(MaintenanceStore {
            conn: Mutex::new(conn),
        })
    }

    /// Saves `windows` (one server each) and sets their ids, in one transaction.
    pub(super) fn insert(&self, windows: &mut [Window]) -> rusqlite::Result<()> {
        let mut conn = self.conn.lock().expect("maintenance store lock");
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO maintenance (server, start, end, note, by, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for w in windows.iter_mut() {
                let When::Once { start, end } = w.when else {
                    continue;
                };
                insert.execute(params![
                    w.servers.first().map(String::as_str).unwrap_or_default(),
                    start,
                    end,
                    w.note,
                    w.by,
                    w.source.as_str()
                ])?;
                w.id = Some(tx.last_insert_rowid());
            }
        }
        tx.commit()
    }

    /// Ends the windows `ids` at `now`.
    pub(super) fn end(&self, ids: &[i64], now: i64) -> rusqlite::Result<()> {
        let mut conn = self.conn.lock().expect("maintenance store lock");
        let tx = conn.transaction()?;
        for id in ids {
            tx.execute(
                "UPDATE maintenance SET end = ?2 WHERE id = ?1 AND end > ?2",
                params![id, now],
            )?;
        }
        tx.commit()
    }

    /// The windows that have not ended by `now`.
    pub(super) fn open_windows(&self, now: i64) -> rusqlite::Result<Vec<Window>> {
        let conn = self.conn.lock().expect("maintenance store lock");
        let mut stmt = conn.prepare(
            "SELECT id, server, start, end, note, by, source FROM maintenance WHERE end > ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([now], |r| {
            Ok(Window {
                id: Some(r.get(0)?),
                servers: vec![r.get(1)?],
                when: When::Once {
                    start: r.get(2)?,
                    end: r.get(3)?,
                },
                note: r.get(4)?,
                by: r.get(5)?,
                source: Source::parse(&r.get::<_, String>(6)?).unwrap_or(Source::Admin),
            })
        })?;
        rows.collect()
    }

    /// The last month (`2026-11`) whose report `channel` was given.
    pub fn report_sent(&self, channel: &str) -> rusqlite::Result<Option<String>> {
        use rusqlite::OptionalExtension as _;
        let conn = self.conn.lock().expect("maintenance store lock");
        conn.query_row(
            "SELECT month FROM reports_sent WHERE channel = ?1",
            [channel],
            |r| r.get(0),
        )
        .optional()
    }

    /// Keeps that `channel` was given the report of `month`.
    pub fn set_report_sent(&self, channel: &str, month: &str) -> rusqlite::Result<()> {
        let conn = self.conn.lock().expect("maintenance store lock");
        conn.execute(
            "INSERT OR REPLACE INTO reports_sent (channel, month) VALUES (?1, ?2)",
            [channel, month],
        )?;
        Ok(())
    }

    /// Where the room reader of `channel` left off (`/sync`'s `since`).
    pub fn since(&self, channel: &str) -> rusqlite::Result<Option<String>> {
        use rusqlite::OptionalExtension as _;
        let conn = self.conn.lock().expect("maintenance store lock");
        conn.query_row(
            "SELECT since FROM room_sync WHERE channel = ?1",
            [channel],
            |r| r.get(0),
        )
        .optional()
    }

    /// Keeps where the room reader of `channel` left off.
    pub fn set_since(&self, channel: &str, since: &str) -> rusqlite::Result<()> {
        let conn = self.conn.lock().expect("maintenance store lock");
        conn.execute(
            "INSERT OR REPLACE INTO room_sync (channel, since) VALUES (?1, ?2)",
            [channel, since],
        )?;
        Ok(())
    }

    /// Marks the command `event_id` as taken at `now`; false when it was already (a
    /// redelivered event is obeyed once). Commands older than a week are forgotten.
    pub fn take_command(&self, event_id: &str, now: i64) -> rusqlite::Result<bool> {
        let conn = self.conn.lock().expect("maintenance store lock");
        conn.execute(
            "DELETE FROM room_commands WHERE at < ?1",
            [now - 7 * 86_400],
        )?;
        let n = conn.execute(
            "INSERT OR IGNORE INTO room_commands (event_id, at) VALUES (?1, ?2)",
            params![event_id, now],
        )?;
        Ok(n == 1)
    }

    /// Saves a note.
    pub(super) fn add_note(&self, row: &super::incidents::Row) -> rusqlite::Result<()> {
        let conn = self.conn.lock().expect("maintenance store lock");
        conn.execute(
            "INSERT INTO incident_notes (server, at, by, text, resolves, until_recovered) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![row.0, row.1, row.2, row.3, row.4, row.5],
        )?;
        Ok(())
    }

    /// The notes written since `since`, oldest first.
    pub(super) fn notes_since(&self, since: i64) -> rusqlite::Result<Vec<super::incidents::Row>> {
        let conn = self.conn.lock().expect("maintenance store lock");
        let mut stmt = conn.prepare(
            "SELECT server, at, by, text, resolves, until_recovered FROM incident_notes WHERE at >= ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([since], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        rows.collect()
    }

    /// The windows started by hand on `server` that overlap `from..to` (ended ones too).
    pub(super) fn spans(
        &self,
        server: &str,
        from: i64,
        to: i64,
    ) -> rusqlite::Result<Vec<(i64, i64)>> {
        let conn = self.conn.lock().expect("maintenance store lock");
        let mut stmt = conn.prepare_cached(
            "SELECT start, end FROM maintenance WHERE server = ?1 AND end > ?2 AND start < ?3",
        )?;
        let spans = stmt.query_map(params![server, from, to], |r| Ok((r.get(0)?, r.get(1)?)))?;
        spans.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::incidents::{Incidents, Said};
    use super::super::{Plan, Schedule, Source};
    use super::*;
    use std::sync::Arc;

    #[test]
    fn windows_started_by_hand_survive_a_restart_and_their_early_end_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite");
        let known = vec!["a.test".to_owned(), "b.test".to_owned()];
        let now = 1_800_000_000;
        {
            let s = Schedule::new(
                Vec::new(),
                Some(Arc::new(MaintenanceStore::open(&path).unwrap())),
                now,
            );
            let plan = Plan {
                pattern: "*.test",
                duration: 3600,
                note: "upgrade",
                by: "op",
                source: Source::Admin,
            };
            s.start(&plan, &known, now).unwrap();
            s.end("a.test", now + 100).unwrap();
            // Dropped without any shutdown: what was answered is on disk.
        }
        let s = Schedule::new(
            Vec::new(),
            Some(Arc::new(MaintenanceStore::open(&path).unwrap())),
            now + 200,
        );
        assert_eq!(s.active("a.test", now + 200), None);
        let b = s.active("b.test", now + 200).unwrap();
        assert_eq!((b.note.as_str(), b.by.as_str()), ("upgrade", "op"));
        assert_eq!(b.end.unix_timestamp(), now + 3600);
        assert_eq!(
            s.seconds("a.test", &[(now - 50, now + 50), (now + 50, now + 150)]),
            vec![50, 50]
        );
    }

    #[test]
    fn notes_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite");
        let known = vec!["a.test".to_owned()];
        let now = 1_800_000_000;
        let said = Said {
            server: "a.test",
            text: "upgrading <b>Synapse</b>",
            by: "@op:a.test",
            resolves: false,
            until_recovered: true,
        };
        {
            let store = Arc::new(MaintenanceStore::open(&path).unwrap());
            Incidents::new(Some(store), now)
                .add(&said, &known, now)
                .unwrap();
        }
        let store = Arc::new(MaintenanceStore::open(&path).unwrap());
        let i = Incidents::new(Some(store), now + 10)
            .of("a.test", now + 10)
            .unwrap();
        assert!(i.is_open() && i.until_recovered);
        assert_eq!(i.notes[0].text, "upgrading <b>Synapse</b>");
        assert_eq!(i.notes[0].by, "@op:a.test");
    }
}
