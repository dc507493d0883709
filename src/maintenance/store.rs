//! Windows started by hand, kept in the history store's file (their own table and
//! connection): one row per server, written before the call that started it is answered.

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
";

/// The table of windows started by hand.
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
    use super::super::{Plan, Schedule, Source};
    use super::*;

    #[test]
    fn windows_started_by_hand_survive_a_restart_and_their_early_end_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite");
        let known = vec!["a.test".to_owned(), "b.test".to_owned()];
        let now = 1_800_000_000;
        {
            let s = Schedule::new(
                Vec::new(),
                Some(MaintenanceStore::open(&path).unwrap()),
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
            Some(MaintenanceStore::open(&path).unwrap()),
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
}
