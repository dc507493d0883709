//! What a hub keeps of its vantages across a restart, in the history store's SQLite file (its
//! own tables and connection, as the alert outbox does): per vantage, the send time of the
//! last report accepted (the replay guard: a report captured before a restart is refused after
//! it too), when it arrived, its interval and whether it was impaired; per vantage and server,
//! its latest view and its day of rounds by hour. Written before the report is acknowledged;
//! read when the hub starts, so its page shows every place's view and day at once.
//! Without a store file (`data_dir = ""`) nothing is kept.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, params};

use crate::history::store::TablesError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vantage_state (
    vantage TEXT PRIMARY KEY, last_sent_at_ms INTEGER NOT NULL, received_at INTEGER NOT NULL,
    interval_s INTEGER NOT NULL, impaired INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vantage_servers (
    vantage TEXT NOT NULL, server TEXT NOT NULL, seen TEXT NOT NULL, hours BLOB NOT NULL,
    PRIMARY KEY (vantage, server)) WITHOUT ROWID;
";

/// One vantage as kept: its marks and, per server, the latest view (JSON) and the day of
/// rounds (see `hub::Hours::encode`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Kept {
    /// The send time of the last report accepted, Unix milliseconds.
    pub last_sent_at_ms: i64,
    /// When it arrived, Unix seconds.
    pub received_at: i64,
    /// The vantage's interval, seconds.
    pub interval_s: u64,
    /// It reached none of its servers.
    pub impaired: bool,
    /// Per server: the latest view as JSON, and the encoded hours.
    pub servers: Vec<(String, String, Vec<u8>)>,
}

/// The hub's tables.
pub struct HubStore {
    conn: Option<Mutex<Connection>>,
}

impl HubStore {
    /// The tables in the store file `path`; `None` keeps nothing.
    pub fn open(path: Option<&Path>) -> Result<HubStore, TablesError> {
        const OWNER: &str = "the hub";
        let Some(path) = path else {
            return Ok(HubStore { conn: None });
        };
        let conn = Connection::open(path).map_err(TablesError::open(path, OWNER))?;
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)
        };
        setup().map_err(TablesError::setup(OWNER))?;
        Ok(HubStore {
            conn: Some(Mutex::new(conn)),
        })
    }

    /// Every vantage kept, by name.
    pub fn load(&self) -> rusqlite::Result<HashMap<String, Kept>> {
        let Some(conn) = &self.conn else {
            return Ok(HashMap::new());
        };
        let conn = conn.lock().expect("hub store lock");
        let mut out: HashMap<String, Kept> = HashMap::new();
        let mut q = conn.prepare(
            "SELECT vantage, last_sent_at_ms, received_at, interval_s, impaired FROM vantage_state",
        )?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Kept {
                    last_sent_at_ms: r.get(1)?,
                    received_at: r.get(2)?,
                    interval_s: r.get::<_, i64>(3)?.max(1) as u64,
                    impaired: r.get(4)?,
                    servers: Vec::new(),
                },
            ))
        })?;
        for row in rows {
            let (name, kept) = row?;
            out.insert(name, kept);
        }
        let mut q = conn.prepare("SELECT vantage, server, seen, hours FROM vantage_servers")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        for row in rows {
            let (vantage, server, seen, hours) = row?;
            if let Some(kept) = out.get_mut(&vantage) {
                kept.servers.push((server, seen, hours));
            }
        }
        Ok(out)
    }

    /// Replaces what is kept of `vantage` with `kept`, in one transaction.
    pub fn save(&self, vantage: &str, kept: &Kept) -> rusqlite::Result<()> {
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        let mut conn = conn.lock().expect("hub store lock");
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO vantage_state
             (vantage, last_sent_at_ms, received_at, interval_s, impaired) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                vantage,
                kept.last_sent_at_ms,
                kept.received_at,
                kept.interval_s as i64,
                kept.impaired
            ],
        )?;
        tx.execute("DELETE FROM vantage_servers WHERE vantage = ?1", [vantage])?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO vantage_servers (vantage, server, seen, hours) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (server, seen, hours) in &kept.servers {
                insert.execute(params![vantage, server, seen, hours])?;
            }
        }
        tx.commit()
    }

    /// Forgets vantages no longer trusted (removed from the config).
    pub fn retain(&self, trusted: &[&str]) -> rusqlite::Result<()> {
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        let conn = conn.lock().expect("hub store lock");
        let kept: Vec<String> = {
            let mut q = conn.prepare("SELECT vantage FROM vantage_state")?;
            q.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for name in kept.iter().filter(|n| !trusted.contains(&n.as_str())) {
            conn.execute("DELETE FROM vantage_state WHERE vantage = ?1", [name])?;
            conn.execute("DELETE FROM vantage_servers WHERE vantage = ?1", [name])?;
        }
        Ok(())
    }
}
