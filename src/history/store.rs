//! History that survives restarts: an embedded SQLite database (rusqlite, bundled library) in
//! `[storage] data_dir`.
//!
//! Why SQLite: a single file, crash-safe transactions with a write-ahead log, and the most
//! widely deployed and tested embedded database there is; the bundled build needs no system
//! library. Rounds reach the store through a queue and a writer thread commits them in one
//! transaction every `flush_interval`, off the probe path. With WAL and `synchronous=NORMAL`
//! a killed process (even `kill -9`) never corrupts the file and loses at most the rounds of
//! the last flush interval; a power cut may lose the last few commits, never consistency.
//!
//! What is stored per server: every raw round and per-address round for `raw_retention`, the
//! 5-minute (24 h), hourly (7 d) and daily (`rollup_retention`) rollups, the latency sketches
//! (hourly for 24 h, daily for 7 d), and the status state. A period still open (this 5
//! minutes, hour, day) is kept with the server's other open periods in one row, `open_rows`,
//! replaced each round; its own row is written once, when it ends. (Writing the five current
//! rows each round touched five B-tree pages per round, the largest part of the store's
//! cost at 10,000 servers.) The state row is written when it changes. On start the in-memory
//! history is rebuilt from it. Version 1 (histograms) and version 2 (no `open_rows`) stores
//! are migrated on open.
//!
//! A file that is not an mxping store, or fails SQLite's integrity check, is an error with a
//! clear message; it is never overwritten or "repaired".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tracing::{error, warn};

use crate::error::ErrorKind;
use crate::history::events::{Event, MAX_EVENTS};
use crate::history::sketch::Sketch;
use crate::history::{BucketRow, Delta, OpenRows, Restored, Sample, SketchRow, StatusState};
use crate::probe::Software;
use crate::status::Status;

/// The store's file name inside `data_dir`.
pub(crate) const FILE_NAME: &str = "mxping.sqlite3";
const APP: &str = "mxping";
const SCHEMA_VERSION: i64 = 4;
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE servers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE rounds (
    id INTEGER PRIMARY KEY, server INTEGER NOT NULL, at INTEGER NOT NULL,
    up INTEGER NOT NULL, all_ok INTEGER NOT NULL, latency_ms REAL, error TEXT,
    maintenance INTEGER NOT NULL DEFAULT 0);
CREATE INDEX rounds_by_server ON rounds (server, at);
CREATE TABLE address_rounds (
    id INTEGER PRIMARY KEY, server INTEGER NOT NULL, address TEXT NOT NULL, at INTEGER NOT NULL,
    ok INTEGER NOT NULL, latency_ms REAL, error TEXT);
CREATE INDEX address_rounds_by_server ON address_rounds (server, at);
CREATE TABLE buckets (
    server INTEGER NOT NULL, width INTEGER NOT NULL, start INTEGER NOT NULL,
    rounds INTEGER NOT NULL, up INTEGER NOT NULL, latency_sum REAL NOT NULL, latency_n INTEGER NOT NULL,
    PRIMARY KEY (server, width, start)) WITHOUT ROWID;
CREATE TABLE sketches (
    server INTEGER NOT NULL, width INTEGER NOT NULL, start INTEGER NOT NULL, bins BLOB NOT NULL,
    PRIMARY KEY (server, width, start)) WITHOUT ROWID;
CREATE TABLE open_rows (server INTEGER PRIMARY KEY, rows BLOB NOT NULL);
CREATE TABLE events (
    id INTEGER PRIMARY KEY, server TEXT NOT NULL, at INTEGER NOT NULL,
    from_status TEXT NOT NULL, to_status TEXT NOT NULL, reason TEXT);
CREATE TABLE state (
    server INTEGER PRIMARY KEY, status TEXT, reason TEXT, failed_rounds INTEGER NOT NULL,
    good_rounds INTEGER NOT NULL, down INTEGER NOT NULL,
    software_name TEXT, software_version TEXT);
";

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but is not an mxping store or is damaged.
    #[error(
        "{path}: {why}. mxping never overwrites an existing file: move it away (or restore a \
         backup) to start with an empty history, or point [storage] data_dir elsewhere"
    )]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The directory or file cannot be created, opened or written.
    #[error("{}: {}{source}", path.display(), doing.map(|d| format!("{d}: ")).unwrap_or_default())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done, when the source does not say it.
        doing: Option<&'static str>,
        /// The system's or SQLite's error.
        #[source]
        source: Cause,
    },
}

/// What the system or SQLite said.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// A file system error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// SQLite's error.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Why another feature's tables (the alert outbox, the hub's vantages) cannot be used in the
/// store file.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    /// The file cannot be opened.
    #[error("cannot open {} for {owner}: {source}", path.display())]
    Open {
        /// The store file.
        path: PathBuf,
        /// Whose tables ("the alert outbox").
        owner: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The tables cannot be created or brought up to date.
    #[error("cannot set up the tables of {owner}: {source}")]
    Setup {
        /// Whose tables.
        owner: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

impl TablesError {
    /// The file at `path` cannot be opened for `owner`.
    pub fn open(path: &Path, owner: &'static str) -> impl FnOnce(rusqlite::Error) -> TablesError {
        let path = path.to_owned();
        move |source| TablesError::Open {
            path,
            owner,
            source,
        }
    }

    /// `owner`'s tables cannot be set up.
    pub fn setup(owner: &'static str) -> impl FnOnce(rusqlite::Error) -> TablesError {
        move |source| TablesError::Setup { owner, source }
    }
}

/// Retention settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retention {
    /// Raw rounds are kept this long.
    pub raw: Duration,
    /// Daily rollups are kept this long.
    pub rollups: Duration,
}

/// One round to write.
#[derive(Clone, Debug)]
pub struct RoundRecord {
    /// The server name.
    pub server: String,
    /// What the round changed.
    pub delta: Delta,
    /// The software it reported.
    pub software: Option<Software>,
    /// Made during a maintenance window: kept, but not counted (its delta has no rollups).
    pub maintenance: bool,
}

enum Msg {
    Round(Box<RoundRecord>),
    Event(Event),
    Flush(Sender<()>),
}

/// The handle the monitor uses: sends rounds to the writer thread.
pub struct Store {
    path: PathBuf,
    tx: Option<Sender<Msg>>,
    writer: Option<JoinHandle<()>>,
}

/// What was restored for one server, plus its last reported software.
#[derive(Clone, Debug, Default)]
pub struct Saved {
    /// The history parts.
    pub history: Restored,
    /// The software of the last round that reported one.
    pub software: Option<Software>,
}

fn io(path: &Path, e: impl Into<Cause>) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        doing: None,
        source: e.into(),
    }
}

/// An error while `doing` something with `path`.
pub(crate) fn failed(path: &Path, doing: &'static str, e: impl Into<Cause>) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        doing: Some(doing),
        source: e.into(),
    }
}

fn unusable(path: &Path, why: impl Into<String>) -> StoreError {
    StoreError::Unusable {
        path: path.to_owned(),
        why: why.into(),
    }
}

/// Opens (creating it if missing) the store in `data_dir`, checking that an existing file is
/// an intact mxping store.
fn open_connection(data_dir: &Path) -> Result<(PathBuf, Connection), StoreError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| failed(data_dir, "cannot create the data directory", e))?;
    let path = data_dir.join(FILE_NAME);
    let existing = match std::fs::metadata(&path) {
        Ok(m) if m.len() > 0 => true,
        Ok(_) => {
            return Err(unusable(
                &path,
                "the file is empty (0 bytes), not an mxping store",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(failed(&path, "cannot read", e)),
    };
    if existing {
        use std::io::Read;
        let mut head = [0u8; 16];
        let mut f = std::fs::File::open(&path).map_err(|e| failed(&path, "cannot open", e))?;
        if f.read_exact(&mut head).is_err() || &head != SQLITE_MAGIC {
            return Err(unusable(&path, "the file is not an SQLite database"));
        }
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| failed(&path, "cannot open", e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| io(&path, e))?;
    if existing {
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| unusable(&path, format!("SQLite cannot read it ({e})")))?;
        if check != "ok" {
            return Err(unusable(
                &path,
                format!("SQLite's integrity check failed ({check})"),
            ));
        }
        let app: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'app'", [], |r| r.get(0))
            .optional()
            .map_err(|_| unusable(&path, "the database is not an mxping store (no meta table)"))?;
        if app.as_deref() != Some(APP) {
            return Err(unusable(&path, "the database is not an mxping store"));
        }
        let version: i64 = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get::<_, String>(0),
            )
            .map_err(|e| unusable(&path, format!("the schema version is missing ({e})")))?
            .parse()
            .map_err(|_| unusable(&path, "the schema version is not a number"))?;
        if version == 1 {
            migrate_v1(&conn).map_err(|e| io(&path, e))?;
        }
        if version == 1 || version == 2 {
            migrate_v2(&conn).map_err(|e| io(&path, e))?;
        }
        if (1..=3).contains(&version) {
            migrate_v3(&conn).map_err(|e| io(&path, e))?;
        } else if version != SCHEMA_VERSION {
            return Err(unusable(
                &path,
                format!(
                    "its schema version is {version}; this mxping reads version {SCHEMA_VERSION}"
                ),
            ));
        }
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| io(&path, e))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| io(&path, e))?;
    if !existing {
        let tx = conn.unchecked_transaction().map_err(|e| io(&path, e))?;
        tx.execute_batch(SCHEMA).map_err(|e| io(&path, e))?;
        tx.execute("INSERT INTO meta (key, value) VALUES ('app', ?1)", [APP])
            .map_err(|e| io(&path, e))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(|e| io(&path, e))?;
        tx.commit().map_err(|e| io(&path, e))?;
    }
    Ok((path, conn))
}

/// Version 1 kept hourly latency histograms with ±9 % bins; version 2 keeps hourly and daily
/// sketches within 1 %. The old bins cannot be sharpened, so the sketches are rebuilt from the
/// raw rounds still kept (`raw_retention`, 3 days by default), in one transaction.
fn migrate_v1(conn: &Connection) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(
        "CREATE TABLE sketches (
             server INTEGER NOT NULL, width INTEGER NOT NULL, start INTEGER NOT NULL,
             bins BLOB NOT NULL, PRIMARY KEY (server, width, start)) WITHOUT ROWID;
         DROP TABLE histograms;",
    )?;
    let mut sketches: std::collections::BTreeMap<(i64, i64, i64), Sketch> = Default::default();
    {
        let mut rounds =
            tx.prepare("SELECT server, at, latency_ms FROM rounds WHERE latency_ms IS NOT NULL")?;
        let mut rows = rounds.query([])?;
        while let Some(r) = rows.next()? {
            let (server, at, ms): (i64, i64, f64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            for width in [3600, 86_400] {
                let start = at - at.rem_euclid(width);
                sketches.entry((server, width, start)).or_default().add(ms);
            }
        }
    }
    let mut insert =
        tx.prepare("INSERT INTO sketches (server, width, start, bins) VALUES (?1, ?2, ?3, ?4)")?;
    for ((server, width, start), sketch) in &sketches {
        insert.execute(params![server, width, start, sketch.to_bytes()])?;
    }
    drop(insert);
    tx.execute(
        "UPDATE meta SET value = '2' WHERE key = 'schema_version'",
        [],
    )?;
    tx.commit()
}

/// Version 4 marks the rounds made during a maintenance window (kept, not counted); every
/// round before it was counted.
fn migrate_v3(conn: &Connection) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(
        "ALTER TABLE rounds ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0;
         UPDATE meta SET value = '4' WHERE key = 'schema_version';",
    )?;
    tx.commit()
}

/// Version 3 keeps the rollups of each server's open periods in one row ([`OpenRows`]); the
/// rows a version 2 store holds for them stay valid and are read as before.
fn migrate_v2(conn: &Connection) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(
        "CREATE TABLE open_rows (server INTEGER PRIMARY KEY, rows BLOB NOT NULL);
         UPDATE meta SET value = '3' WHERE key = 'schema_version';",
    )?;
    tx.commit()
}

/// The format of an `open_rows` blob.
const OPEN_ROWS_FORMAT: u8 = 1;

/// [`OpenRows`] as one blob: a format byte; a count and the buckets (width, start, rounds,
/// up, latency sum, latency count, little-endian); a count and the sketches (width, start,
/// the length of [`Sketch::to_bytes`] and those bytes).
fn encode_open(open: &OpenRows) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + 36 * open.buckets.len() + 64 * open.sketches.len());
    out.push(OPEN_ROWS_FORMAT);
    out.push(open.buckets.len().min(255) as u8);
    for b in open.buckets.iter().take(255) {
        out.extend_from_slice(&b.width.to_le_bytes());
        out.extend_from_slice(&b.start.to_le_bytes());
        out.extend_from_slice(&b.rounds.to_le_bytes());
        out.extend_from_slice(&b.up.to_le_bytes());
        out.extend_from_slice(&b.latency_sum.to_le_bytes());
        out.extend_from_slice(&b.latency_n.to_le_bytes());
    }
    out.push(open.sketches.len().min(255) as u8);
    for s in open.sketches.iter().take(255) {
        let bytes = s.sketch.to_bytes();
        out.extend_from_slice(&s.width.to_le_bytes());
        out.extend_from_slice(&s.start.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Reads [`encode_open`]'s form; `None` for anything else (a damaged row is left out, as a
/// damaged sketch is: those rollups start over).
fn decode_open(blob: &[u8]) -> Option<OpenRows> {
    struct Cursor<'a>(&'a [u8]);
    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(head)
        }
        fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
            self.take(N)?.try_into().ok()
        }
    }
    let mut c = Cursor(blob);
    if c.array::<1>()? != [OPEN_ROWS_FORMAT] {
        return None;
    }
    let mut open = OpenRows::default();
    for _ in 0..c.array::<1>()?[0] {
        open.buckets.push(BucketRow {
            width: i64::from_le_bytes(c.array()?),
            start: i64::from_le_bytes(c.array()?),
            rounds: u32::from_le_bytes(c.array()?),
            up: u32::from_le_bytes(c.array()?),
            latency_sum: f64::from_le_bytes(c.array()?),
            latency_n: u32::from_le_bytes(c.array()?),
        });
    }
    for _ in 0..c.array::<1>()?[0] {
        let width = i64::from_le_bytes(c.array()?);
        let start = i64::from_le_bytes(c.array()?);
        let len = u32::from_le_bytes(c.array()?) as usize;
        let sketch = Sketch::from_bytes(c.take(len)?)?;
        open.sketches.push(SketchRow {
            width,
            start,
            sketch,
        });
    }
    c.0.is_empty().then_some(open)
}

impl Store {
    /// Opens the store in `data_dir` and starts its writer thread.
    pub fn open(
        data_dir: &Path,
        flush_interval: Duration,
        retention: Retention,
    ) -> Result<Store, StoreError> {
        let (path, conn) = open_connection(data_dir)?;
        let (tx, rx) = mpsc::channel();
        let writer_path = path.clone();
        let writer = std::thread::Builder::new()
            .name("mxping-store".into())
            .spawn(move || Writer::new(conn, writer_path, retention).run(rx, flush_interval))
            .map_err(|e| io(&path, e))?;
        Ok(Store {
            path,
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a round for the next flush (never blocks the probe loop).
    pub fn write(&self, record: RoundRecord) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Round(Box::new(record)));
        }
    }

    /// Queues a status change for the next flush.
    pub fn write_event(&self, event: Event) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Event(event));
        }
    }

    /// The last `limit` status changes, oldest first.
    pub fn load_events(&self, limit: usize) -> Result<Vec<Event>, StoreError> {
        let reader = self.reader()?;
        let mut stmt = reader
            .conn
            .prepare("SELECT server, at, from_status, to_status, reason FROM events ORDER BY id DESC LIMIT ?1")
            .map_err(|e| io(&self.path, e))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                let from: String = r.get(2)?;
                let to: String = r.get(3)?;
                Ok(Event {
                    server: r.get(0)?,
                    at: r.get(1)?,
                    from: Status::parse(&from).unwrap_or(Status::Unknown),
                    to: Status::parse(&to).unwrap_or(Status::Unknown),
                    reason: r
                        .get::<_, Option<String>>(4)?
                        .and_then(|j| serde_json::from_str(&j).ok()),
                })
            })
            .map_err(|e| io(&self.path, e))?;
        let mut events: Vec<Event> = rows
            .collect::<Result<_, _>>()
            .map_err(|e| io(&self.path, e))?;
        events.reverse();
        Ok(events)
    }

    /// Writes everything queued so far and waits for it.
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if let Some(tx) = &self.tx
            && tx.send(Msg::Flush(done)).is_ok()
        {
            self.wake_writer();
            let _ = wait.recv_timeout(Duration::from_secs(30));
        }
    }

    fn wake_writer(&self) {
        if let Some(w) = &self.writer {
            w.thread().unpark();
        }
    }

    /// A read connection of its own (WAL lets it read beside the writer), for one thread.
    pub fn reader(&self) -> Result<StoreReader, StoreError> {
        // One thread uses it: no mutex around every call.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| io(&self.path, e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| io(&self.path, e))?;
        Ok(StoreReader {
            conn,
            path: self.path.clone(),
        })
    }

    /// Reads what is saved for `names`, on a read connection of its own.
    pub fn load(&self, names: &[String], now: i64) -> Result<HashMap<String, Saved>, StoreError> {
        self.reader()?.load(names, now)
    }

    /// Flushes and stops the writer.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.tx.take());
        self.wake_writer();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// A read connection to the store ([`Store::reader`]): one per thread, kept for as many
/// loads as it serves, so its statements are prepared once and its page cache stays warm.
pub struct StoreReader {
    conn: Connection,
    path: PathBuf,
}

impl StoreReader {
    /// Reads what is saved for `names`.
    pub fn load(&self, names: &[String], now: i64) -> Result<HashMap<String, Saved>, StoreError> {
        let mut out = HashMap::new();
        for name in names {
            let Some(id) = self.server_id(name)? else {
                continue;
            };
            let saved = load_server(&self.conn, id, now).map_err(|e| io(&self.path, e))?;
            out.insert(name.clone(), saved);
        }
        Ok(out)
    }
}

/// One period of a server's history as stored, for the history export: its rollup and, while
/// the store keeps it, its latency sketch.
#[derive(Clone, Debug, PartialEq)]
pub struct Period {
    /// The rollup.
    pub bucket: BucketRow,
    /// Its latencies (hourly sketches are kept for a day, daily ones for 7 days).
    pub sketch: Option<Sketch>,
}

impl StoreReader {
    /// The periods `width` seconds wide (3600 or 86,400) of `name` that overlap
    /// `[from, to)`, oldest first, the open one (this hour, this day) included as of the last
    /// flush. `None` when the store has never seen the server.
    pub fn periods(
        &self,
        name: &str,
        width: i64,
        from: i64,
        to: i64,
    ) -> Result<Option<Vec<Period>>, StoreError> {
        let io = |e| io(&self.path, e);
        let Some(id) = self.server_id(name)? else {
            return Ok(None);
        };
        let mut periods: std::collections::BTreeMap<i64, Period> = self
            .conn
            .prepare_cached(
                "SELECT start, rounds, up, latency_sum, latency_n FROM buckets \
                 WHERE server = ?1 AND width = ?2 AND start + width > ?3 AND start < ?4",
            )
            .and_then(|mut st| {
                st.query_map(params![id, width, from, to], |r| {
                    Ok(BucketRow {
                        width,
                        start: r.get(0)?,
                        rounds: r.get(1)?,
                        up: r.get(2)?,
                        latency_sum: r.get(3)?,
                        latency_n: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(io)?
            .into_iter()
            .map(|b| {
                (
                    b.start,
                    Period {
                        bucket: b,
                        sketch: None,
                    },
                )
            })
            .collect();
        let sketches: Vec<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT start, bins FROM sketches \
                 WHERE server = ?1 AND width = ?2 AND start + width > ?3 AND start < ?4",
            )
            .and_then(|mut st| {
                st.query_map(params![id, width, from, to], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(io)?;
        let mut sketches: Vec<SketchRow> = sketches
            .into_iter()
            .filter_map(|(start, blob)| {
                Some(SketchRow {
                    width,
                    start,
                    sketch: Sketch::from_bytes(&blob)?,
                })
            })
            .collect();
        // The open periods' rows are newer than the tables' rows of the same period.
        let open: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT rows FROM open_rows WHERE server = ?1")
            .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
            .map_err(io)?;
        if let Some(open) = open.as_deref().and_then(decode_open) {
            let overlaps = |start: i64| start + width > from && start < to;
            for b in open.buckets {
                if b.width == width && overlaps(b.start) {
                    periods.insert(
                        b.start,
                        Period {
                            bucket: b,
                            sketch: None,
                        },
                    );
                }
            }
            sketches.extend(
                open.sketches
                    .into_iter()
                    .filter(|s| s.width == width && overlaps(s.start)),
            );
        }
        for s in sketches {
            if let Some(p) = periods.get_mut(&s.start) {
                p.sketch = Some(s.sketch);
            }
        }
        Ok(Some(periods.into_values().collect()))
    }

    /// When `name` was confirmed down (its status changed to red) in `[from, to)`, oldest
    /// first.
    pub fn outages(&self, name: &str, from: i64, to: i64) -> Result<Vec<i64>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT at FROM events WHERE server = ?1 AND to_status = ?2 AND at >= ?3 AND at < ?4 \
                 ORDER BY at",
            )
            .and_then(|mut st| {
                st.query_map(params![name, Status::Red.as_str(), from, to], |r| r.get(0))?
                    .collect()
            })
            .map_err(|e| io(&self.path, e))
    }

    fn server_id(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached("SELECT id FROM servers WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
            .map_err(|e| io(&self.path, e))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn kind_str(k: Option<ErrorKind>) -> Option<&'static str> {
    k.map(ErrorKind::as_str)
}

fn parse_kind(s: Option<String>) -> Option<ErrorKind> {
    let s = s?;
    ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
}

fn sample_from_row(
    at: i64,
    up: bool,
    all_ok: bool,
    latency: Option<f64>,
    error: Option<String>,
) -> Sample {
    Sample {
        at,
        up,
        all_ok,
        latency_ms: latency.map(|l| l as f32),
        error: parse_kind(error),
    }
}

fn load_server(conn: &Connection, id: i64, now: i64) -> rusqlite::Result<Saved> {
    let mut saved = Saved::default();
    let mut stmt = conn.prepare_cached(
        "SELECT width, start, rounds, up, latency_sum, latency_n FROM buckets WHERE server = ?1 ORDER BY width, start",
    )?;
    saved.history.buckets = stmt
        .query_map([id], |r| {
            Ok(BucketRow {
                width: r.get(0)?,
                start: r.get(1)?,
                rounds: r.get(2)?,
                up: r.get(3)?,
                latency_sum: r.get(4)?,
                latency_n: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT width, start, bins FROM sketches WHERE server = ?1 AND start + width > ?2 ORDER BY start",
    )?;
    // A blob that is not a sketch (a damaged row) is left out: those percentiles start over.
    saved.history.sketches = stmt
        .query_map(params![id, now - 7 * 86_400], |r| {
            let (width, start, blob): (i64, i64, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?);
            Ok(Sketch::from_bytes(&blob).map(|sketch| SketchRow {
                width,
                start,
                sketch,
            }))
        })?
        .filter_map(Result::transpose)
        .collect::<Result<_, _>>()?;
    let open: Option<Vec<u8>> = conn
        .prepare_cached("SELECT rows FROM open_rows WHERE server = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if let Some(open) = open.as_deref().and_then(decode_open) {
        // The open periods' rows are newer than any row of the same period in the tables (a
        // version 2 store wrote those every round).
        let buckets = &mut saved.history.buckets;
        buckets.retain(|b| {
            !open
                .buckets
                .iter()
                .any(|o| o.width == b.width && o.start == b.start)
        });
        buckets.extend(open.buckets);
        buckets.sort_by_key(|b| (b.width, b.start));
        // Sketches load later rows over earlier ones for the same span.
        saved.history.sketches.extend(
            open.sketches
                .into_iter()
                .filter(|s| s.start + s.width > now - 7 * 86_400),
        );
    }
    let mut stmt = conn.prepare_cached(
        "SELECT at, up, all_ok, latency_ms, error FROM rounds WHERE server = ?1 AND maintenance = 0 ORDER BY id DESC LIMIT ?2",
    )?;
    let mut recent: Vec<Sample> = stmt
        .query_map(params![id, crate::history::RECENT as i64], |r| {
            Ok(sample_from_row(
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    recent.reverse();
    saved.history.recent = recent;
    let mut stmt = conn.prepare_cached(
        "SELECT address, at, ok, latency_ms, error FROM address_rounds WHERE server = ?1 AND at > ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![id, now - 86_400], |r| {
        let address: String = r.get(0)?;
        Ok((
            address,
            sample_from_row(r.get(1)?, r.get(2)?, r.get(2)?, r.get(3)?, r.get(4)?),
        ))
    })?;
    let mut by_address: Vec<(SocketAddr, Vec<Sample>)> = Vec::new();
    for row in rows {
        let (address, sample) = row?;
        let Ok(address) = address.parse::<SocketAddr>() else {
            continue;
        };
        match by_address.iter_mut().find(|(a, _)| *a == address) {
            Some((_, v)) => v.push(sample),
            None => by_address.push((address, vec![sample])),
        }
    }
    saved.history.addresses = by_address;
    let state = conn
        .prepare_cached(
            "SELECT status, reason, failed_rounds, good_rounds, down, software_name, software_version FROM state WHERE server = ?1",
        )?
        .query_row(
            [id],
            |r| {
                let status: Option<String> = r.get(0)?;
                Ok((
                    StatusState {
                        status: status.as_deref().and_then(Status::parse),
                        reason: r
                            .get::<_, Option<String>>(1)?
                            .and_then(|j| serde_json::from_str(&j).ok()),
                        failed_rounds: r.get(2)?,
                        good_rounds: r.get(3)?,
                        down: r.get(4)?,
                    },
                    match (r.get::<_, Option<String>>(5)?, r.get::<_, Option<String>>(6)?) {
                        (Some(name), Some(version)) => Some(Software { name, version }),
                        _ => None,
                    },
                ))
            },
        )
        .optional()?;
    if let Some((state, software)) = state {
        saved.history.state = state;
        saved.software = software;
    }
    Ok(saved)
}

/// The writer thread.
struct Writer {
    conn: Connection,
    path: PathBuf,
    retention: Retention,
    ids: HashMap<String, i64>,
    /// Per server id, a hash of the state row this writer last committed: a healthy server's
    /// state is the same round after round, and rewriting it was one statement in eight.
    states: HashMap<i64, u64>,
    last_prune: Option<Instant>,
    failed: bool,
}

impl Writer {
    fn new(conn: Connection, path: PathBuf, retention: Retention) -> Writer {
        Writer {
            conn,
            path,
            retention,
            ids: HashMap::new(),
            states: HashMap::new(),
            last_prune: None,
            failed: false,
        }
    }

    /// Sleeps until the next flush, then takes everything queued and commits it. Rounds
    /// are only queued, never a reason to wake: at 10,000 servers a wake-up per round (a
    /// thread switch each, 170 a second) cost more than the commits. [`Store::flush`] and
    /// closing wake the thread (`unpark`).
    fn run(mut self, rx: Receiver<Msg>, flush_interval: Duration) {
        let mut batch: Vec<RoundRecord> = Vec::new();
        let mut events: Vec<Event> = Vec::new();
        let mut next_flush = Instant::now() + flush_interval;
        loop {
            std::thread::park_timeout(next_flush.saturating_duration_since(Instant::now()));
            let mut waiting = Vec::new();
            let closed = loop {
                match rx.try_recv() {
                    Ok(Msg::Round(r)) => batch.push(*r),
                    Ok(Msg::Event(e)) => events.push(e),
                    Ok(Msg::Flush(done)) => waiting.push(done),
                    Err(TryRecvError::Empty) => break false,
                    Err(TryRecvError::Disconnected) => break true,
                }
            };
            if closed || !waiting.is_empty() || Instant::now() >= next_flush {
                self.commit(&mut batch, &mut events);
                next_flush = Instant::now() + flush_interval;
            }
            for done in waiting {
                let _ = done.send(());
            }
            if closed {
                return;
            }
        }
    }

    fn commit(&mut self, batch: &mut Vec<RoundRecord>, events: &mut Vec<Event>) {
        if batch.is_empty() && events.is_empty() {
            self.maybe_prune();
            return;
        }
        match self.write(batch, events) {
            Ok(()) => {
                if self.failed {
                    warn!("{}: writing works again", self.path.display());
                    self.failed = false;
                }
                batch.clear();
                events.clear();
            }
            Err(e) => {
                // Keep the batch for the next attempt, but never let memory grow without bound.
                if !self.failed {
                    error!(
                        "{}: cannot write history ({e}); retrying",
                        self.path.display()
                    );
                }
                self.failed = true;
                if batch.len() > 100_000 {
                    let drop = batch.len() - 100_000;
                    batch.drain(..drop);
                }
            }
        }
        self.maybe_prune();
    }

    fn server_id(
        tx: &rusqlite::Transaction<'_>,
        ids: &mut HashMap<String, i64>,
        name: &str,
    ) -> rusqlite::Result<i64> {
        if let Some(id) = ids.get(name) {
            return Ok(*id);
        }
        tx.execute("INSERT OR IGNORE INTO servers (name) VALUES (?1)", [name])?;
        let id = tx.query_row("SELECT id FROM servers WHERE name = ?1", [name], |r| {
            r.get(0)
        })?;
        ids.insert(name.to_owned(), id);
        Ok(id)
    }

    fn write(&mut self, batch: &[RoundRecord], events: &[Event]) -> rusqlite::Result<()> {
        // The state rows this transaction writes, remembered only once it commits (a failed
        // one is retried whole).
        let mut states: HashMap<i64, u64> = HashMap::new();
        let tx = self.conn.transaction()?;
        {
            let mut event = tx.prepare_cached(
                "INSERT INTO events (server, at, from_status, to_status, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for e in events {
                let reason = e
                    .reason
                    .as_ref()
                    .and_then(|r| serde_json::to_string(r).ok());
                event.execute(params![
                    e.server,
                    e.at,
                    e.from.as_str(),
                    e.to.as_str(),
                    reason
                ])?;
            }
            let mut round = tx.prepare_cached(
                "INSERT INTO rounds (server, at, up, all_ok, latency_ms, error, maintenance) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut address = tx.prepare_cached(
                "INSERT INTO address_rounds (server, address, at, ok, latency_ms, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut bucket = tx.prepare_cached(
                "INSERT OR REPLACE INTO buckets (server, width, start, rounds, up, latency_sum, latency_n) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut sketch = tx.prepare_cached(
                "INSERT OR REPLACE INTO sketches (server, width, start, bins) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut open = tx.prepare_cached(
                "INSERT OR REPLACE INTO open_rows (server, rows) VALUES (?1, ?2)",
            )?;
            let mut state = tx.prepare_cached(
                "INSERT OR REPLACE INTO state (server, status, reason, failed_rounds, good_rounds, down, software_name, software_version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for r in batch {
                let id = Self::server_id(&tx, &mut self.ids, &r.server)?;
                let s = &r.delta.sample;
                round.execute(params![
                    id,
                    s.at,
                    s.up,
                    s.all_ok,
                    s.latency_ms.map(f64::from),
                    kind_str(s.error),
                    r.maintenance
                ])?;
                for (a, s) in &r.delta.addresses {
                    address.execute(params![
                        id,
                        a.to_string(),
                        s.at,
                        s.up,
                        s.latency_ms.map(f64::from),
                        kind_str(s.error)
                    ])?;
                }
                for b in &r.delta.buckets {
                    bucket.execute(params![
                        id,
                        b.width,
                        b.start,
                        b.rounds,
                        b.up,
                        b.latency_sum,
                        b.latency_n
                    ])?;
                }
                for s in &r.delta.sketches {
                    sketch.execute(params![id, s.width, s.start, s.sketch.to_bytes()])?;
                }
                let o = &r.delta.open;
                if !o.buckets.is_empty() || !o.sketches.is_empty() {
                    open.execute(params![id, encode_open(o)])?;
                }
                let st = &r.delta.state;
                let (sw_name, sw_version) = match &r.software {
                    Some(s) => (Some(s.name.as_str()), Some(s.version.as_str())),
                    None => (None, None),
                };
                let reason = st
                    .reason
                    .as_ref()
                    .and_then(|r| serde_json::to_string(r).ok());
                let row = (
                    st.status.map(Status::as_str),
                    &reason,
                    st.failed_rounds,
                    st.good_rounds,
                    st.down,
                    sw_name,
                    sw_version,
                );
                let hash = {
                    let mut h = std::hash::DefaultHasher::new();
                    std::hash::Hash::hash(&row, &mut h);
                    std::hash::Hasher::finish(&h)
                };
                if states.get(&id).or_else(|| self.states.get(&id)) == Some(&hash) {
                    continue;
                }
                state.execute(params![id, row.0, row.1, row.2, row.3, row.4, row.5, row.6])?;
                states.insert(id, hash);
            }
        }
        tx.commit()?;
        self.states.extend(states);
        Ok(())
    }

    /// Deletes what is past retention, at most once a minute.
    fn maybe_prune(&mut self) {
        if self
            .last_prune
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
        {
            return;
        }
        self.last_prune = Some(Instant::now());
        if let Err(e) = self.prune(time::OffsetDateTime::now_utc().unix_timestamp()) {
            warn!("{}: pruning old history failed: {e}", self.path.display());
        }
    }

    /// Deletes what is past retention at `now`. Each statement walks the table's
    /// (server, time) index server by server (every server ever stored, listed or not), so its
    /// cost follows what it deletes: at 10,000 servers the rollup tables hold millions of rows,
    /// and scanning them whole once a minute took about 1 s of CPU each time.
    fn prune(&mut self, now: i64) -> rusqlite::Result<()> {
        let raw_cutoff = now - self.retention.raw.as_secs() as i64;
        let rollup_cutoff = now - self.retention.rollups.as_secs() as i64;
        let tx = self.conn.transaction()?;
        const EVERY_SERVER: &str = "server IN (SELECT id FROM servers)";
        tx.execute(
            &format!("DELETE FROM rounds WHERE {EVERY_SERVER} AND at < ?1"),
            [raw_cutoff],
        )?;
        tx.execute(
            &format!("DELETE FROM address_rounds WHERE {EVERY_SERVER} AND at < ?1"),
            [raw_cutoff.min(now - 86_400)],
        )?;
        // Rollups by width: 5-minute for a day, hourly for 7 days, daily for `rollups`;
        // sketches (hourly for a day, daily for 7 days) go once their span has ended by then.
        for (table, width, cutoff) in [
            ("buckets", 300, now - 86_400),
            ("buckets", 3600, now - 7 * 86_400),
            ("buckets", 86_400, rollup_cutoff),
            ("sketches", 3600, now - 86_400 - 3600),
            ("sketches", 86_400, now - 7 * 86_400 - 86_400),
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE {EVERY_SERVER} AND width = ?1 AND start < ?2"),
                [width, cutoff],
            )?;
        }
        tx.execute(
            "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?1",
            [MAX_EVENTS as i64],
        )?;
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Restored, ServerHistory, Thresholds};

    const T: Thresholds = Thresholds {
        green_below_ms: 200.0,
        down_after: 3,
        up_after: 2,
    };
    const RETENTION: Retention = Retention {
        raw: Duration::from_secs(3 * 86_400),
        rollups: Duration::from_secs(400 * 86_400),
    };

    fn sample(at: i64, up: bool) -> Sample {
        Sample {
            at,
            up,
            all_ok: up,
            latency_ms: up.then_some(42.5),
            error: (!up).then_some(ErrorKind::Timeout),
        }
    }

    fn record(server: &str, at: i64, up: bool, state: StatusState) -> RoundRecord {
        let s = sample(at, up);
        RoundRecord {
            server: server.into(),
            delta: Delta {
                sample: s,
                addresses: vec![("127.0.0.2:8448".parse().unwrap(), s)],
                buckets: vec![BucketRow {
                    width: 300,
                    start: at - at % 300,
                    rounds: 1,
                    up: u32::from(up),
                    latency_sum: 42.5,
                    latency_n: 1,
                }],
                sketches: vec![SketchRow {
                    width: 3600,
                    start: at - at % 3600,
                    sketch: {
                        let mut s = Sketch::default();
                        s.add(42.5);
                        s
                    },
                }],
                open: OpenRows::default(),
                state,
            },
            maintenance: false,
            software: Some(Software {
                name: "Synapse".into(),
                version: "1.2.3".into(),
            }),
        }
    }

    #[test]
    fn pruning_deletes_exactly_what_is_past_retention_for_every_server_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = open_connection(dir.path()).unwrap();
        let mut w = Writer::new(conn, path, RETENTION);
        let now = 1_800_000_000;
        let day = 86_400;
        // (table, width, time, kept): each just past or just within its retention.
        let rows: &[(&str, i64, i64, bool)] = &[
            ("rounds", 0, now - 3 * day - 1, false),
            ("rounds", 0, now - 3 * day, true),
            // Per-address rounds: as long as raw rounds, and at least a day.
            ("address_rounds", 0, now - 3 * day - 1, false),
            ("address_rounds", 0, now - 3 * day, true),
            ("buckets", 300, now - day - 1, false),
            ("buckets", 300, now - day, true),
            ("buckets", 3600, now - day - 1, true),
            ("buckets", 3600, now - 7 * day - 1, false),
            ("buckets", 3600, now - 7 * day, true),
            ("buckets", 86_400, now - 7 * day - 1, true),
            ("buckets", 86_400, now - 400 * day - 1, false),
            ("buckets", 86_400, now - 400 * day, true),
            // A sketch goes once its span has ended a day (hourly) or 7 days (daily) ago.
            ("sketches", 3600, now - day - 3600 - 1, false),
            ("sketches", 3600, now - day - 3600, true),
            ("sketches", 86_400, now - 8 * day - 1, false),
            ("sketches", 86_400, now - 8 * day, true),
        ];
        // A listed server and one no longer listed: both have their old rows pruned.
        for server in ["a.test", "gone.test"] {
            let id: i64 = w
                .conn
                .query_row(
                    "INSERT INTO servers (name) VALUES (?1) RETURNING id",
                    [server],
                    |r| r.get(0),
                )
                .unwrap();
            for (table, width, at, _) in rows {
                let sql = match *table {
                    "rounds" => "INSERT INTO rounds (server, at, up, all_ok) VALUES (?1, ?3, 1, 1)",
                    "address_rounds" => {
                        "INSERT INTO address_rounds (server, address, at, ok) VALUES (?1, '192.0.2.1:8448', ?3, 1)"
                    }
                    "buckets" => {
                        "INSERT INTO buckets (server, width, start, rounds, up, latency_sum, latency_n) \
                         VALUES (?1, ?2, ?3, 1, 1, 0, 0)"
                    }
                    _ => {
                        "INSERT INTO sketches (server, width, start, bins) VALUES (?1, ?2, ?3, x'')"
                    }
                };
                w.conn.execute(sql, params![id, width, at]).unwrap();
            }
        }
        w.prune(now).unwrap();
        for (table, width, at, kept) in rows {
            let column = if table.ends_with("rounds") {
                "at"
            } else {
                "start"
            };
            let width_matches = if table.ends_with("rounds") {
                "1"
            } else {
                "width = ?1"
            };
            let left: i64 = w
                .conn
                .query_row(
                    &format!(
                        "SELECT COUNT(*) FROM {table} WHERE {width_matches} AND {column} = ?2"
                    ),
                    params![width, at],
                    |r| r.get(0),
                )
                .unwrap_or_else(|e| panic!("{table}: {e}"));
            let expected = if *kept { 2 } else { 0 };
            assert_eq!(left, expected, "{table} width {width} at now{:+}", at - now);
        }
    }

    #[test]
    fn a_servers_state_row_is_written_when_it_changes_and_after_a_failed_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = open_connection(dir.path()).unwrap();
        let mut w = Writer::new(conn, path, RETENTION);
        w.conn
            .execute_batch(
                "CREATE TEMP TABLE writes (server INTEGER, status TEXT);
                 CREATE TEMP TRIGGER count_writes AFTER INSERT ON main.state
                 BEGIN INSERT INTO writes VALUES (NEW.server, NEW.status); END;",
            )
            .unwrap();
        let writes = |w: &Writer| -> i64 {
            let n = w
                .conn
                .query_row("SELECT COUNT(*) FROM writes", [], |r| r.get(0))
                .unwrap();
            w.conn.execute("DELETE FROM writes", []).unwrap();
            n
        };
        let stored = |w: &Writer, server: &str| -> (String, String) {
            w.conn
                .query_row(
                    "SELECT status, software_version FROM state JOIN servers ON servers.id = state.server \
                     WHERE name = ?1",
                    [server],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap()
        };
        let at = 1_800_000_000;
        let green = StatusState {
            status: Some(Status::Green),
            ..StatusState::default()
        };
        let yellow = StatusState {
            status: Some(Status::Yellow),
            failed_rounds: 1,
            ..StatusState::default()
        };
        let rounds = |list: &[(&str, &StatusState)]| -> Vec<RoundRecord> {
            list.iter()
                .map(|(server, st)| record(server, at, true, (*st).clone()))
                .collect()
        };
        w.write(&rounds(&[("a.test", &green), ("b.test", &green)]), &[])
            .unwrap();
        assert_eq!(writes(&w), 2, "first rounds write their state");
        w.write(&rounds(&[("a.test", &green), ("b.test", &green)]), &[])
            .unwrap();
        assert_eq!(writes(&w), 0, "an unchanged state is not rewritten");
        w.write(&rounds(&[("a.test", &green), ("a.test", &yellow)]), &[])
            .unwrap();
        assert_eq!(writes(&w), 1);
        assert_eq!(stored(&w, "a.test"), ("yellow".into(), "1.2.3".into()));
        // New software is part of the row too.
        let mut upgraded = rounds(&[("a.test", &yellow)]);
        upgraded[0].software.as_mut().unwrap().version = "1.2.4".into();
        w.write(&upgraded, &[]).unwrap();
        assert_eq!(stored(&w, "a.test"), ("yellow".into(), "1.2.4".into()));

        // A commit that fails leaves nothing remembered: the retry writes the row.
        w.conn
            .execute_batch(
                "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.state
                 BEGIN SELECT RAISE(ABORT, 'disk trouble'); END;",
            )
            .unwrap();
        assert!(w.write(&rounds(&[("b.test", &yellow)]), &[]).is_err());
        w.conn.execute_batch("DROP TRIGGER refuse").unwrap();
        assert_eq!(stored(&w, "b.test").0, "green");
        w.write(&rounds(&[("b.test", &yellow)]), &[]).unwrap();
        assert_eq!(stored(&w, "b.test").0, "yellow");
    }

    /// A round of `server` whose one address answered in `latency` ms, or failed.
    fn probed(server: &str, latency: Option<f64>) -> crate::report::Round {
        let address: SocketAddr = "127.0.0.2:8448".parse().unwrap();
        let mut a = crate::probe::AddressReport::new(address);
        match latency {
            Some(ms) => {
                a.ok = true;
                a.latency_ms = Some(ms);
            }
            None => a.error = Some(crate::error::ProbeError::new(ErrorKind::Timeout, "slow")),
        }
        crate::report::Round {
            resolution: std::sync::Arc::new(crate::discovery::Resolution::new(server)),
            addresses: vec![a],
            client: None,
            finished_at: time::OffsetDateTime::now_utc(),
        }
    }

    #[test]
    fn open_periods_are_one_row_per_server_and_each_period_gets_its_row_when_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = open_connection(dir.path()).unwrap();
        let mut w = Writer::new(conn, path, RETENTION);
        let mut h = ServerHistory::new(T);
        // Rounds a minute apart from 23:50 to 00:09: across 5-minute, hour and day boundaries,
        // with failed rounds (no latency) among them, one of them the first of the new day.
        let midnight = 1_800_000_000 - 1_800_000_000 % 86_400 + 86_400;
        let mut now = 0;
        for i in 0..20 {
            now = midnight - 600 + i * 60;
            let latency = (i % 7 != 3 && i != 10).then_some(30.0 + i as f64);
            let d = h.record(&probed("a.test", latency), now);
            // A period's own row comes exactly with the first round after it.
            let ended: Vec<(i64, i64)> = d.buckets.iter().map(|b| (b.width, b.start)).collect();
            let mut expected = Vec::new();
            if i > 0 && now % 300 == 0 {
                expected.push((300, now - 300));
            }
            if now == midnight {
                expected.extend([(3600, now - 3600), (86_400, now - 86_400)]);
            }
            assert_eq!(ended, expected, "round {i}");
            assert_eq!(d.open.buckets.len(), 3, "round {i}");
            w.write(
                &[RoundRecord {
                    server: "a.test".into(),
                    delta: d,
                    software: None,
                    maintenance: false,
                }],
                &[],
            )
            .unwrap();
        }
        let rows = |sql: &str| -> Vec<(i64, i64)> {
            let mut stmt = w.conn.prepare(sql).unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let m = midnight;
        assert_eq!(
            rows("SELECT width, start FROM buckets ORDER BY width, start"),
            [
                (300, m - 600),
                (300, m - 300),
                (300, m),
                (3600, m - 3600),
                (86_400, m - 86_400)
            ]
        );
        // Midnight's round failed: the old hour's and day's sketches end with the next
        // round that has a latency.
        assert_eq!(
            rows("SELECT width, start FROM sketches ORDER BY width, start"),
            [(3600, m - 3600), (86_400, m - 86_400)]
        );
        let open: Vec<u8> = w
            .conn
            .query_row("SELECT rows FROM open_rows", [], |r| r.get(0))
            .unwrap();
        let open = decode_open(&open).unwrap();
        let starts: Vec<(i64, i64)> = open.buckets.iter().map(|b| (b.width, b.start)).collect();
        assert_eq!(starts, [(300, m + 300), (3600, m), (86_400, m)]);
        assert_eq!(open.sketches.len(), 2);
        // Damaged or foreign blobs are refused, not misread.
        let blob = encode_open(&open);
        assert_eq!(decode_open(&blob).as_ref(), Some(&open));
        for bad in [&blob[..blob.len() - 1], &[2u8, 0, 0][..], &[][..]] {
            assert_eq!(decode_open(bad), None);
        }

        // What is read back rebuilds the same history: uptime, percentiles, chart, days.
        let saved = load_server(&w.conn, 1, now).unwrap();
        let back = ServerHistory::restore(T, saved.history, now);
        assert_eq!(back.uptime(now), h.uptime(now));
        for q in [0.5, 0.99] {
            assert_eq!(
                back.latency_percentile(now, q),
                h.latency_percentile(now, q)
            );
            assert_eq!(
                back.latency_percentile_7d(now, q),
                h.latency_percentile_7d(now, q)
            );
        }
        assert_eq!(back.latency_series(now), h.latency_series(now));
        assert_eq!(back.daily_uptime(now, 7), h.daily_uptime(now, 7));
        assert_eq!(back.recent().count(), 20);
    }

    #[test]
    fn a_version_2_store_keeps_its_open_periods_rows_and_gains_the_open_rows_table() {
        let dir = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        // A version 2 store wrote each open period's rows to the tables every round.
        let store = Store::open(dir.path(), Duration::from_millis(100), RETENTION).unwrap();
        store.write(record("v2.test", now, true, StatusState::default()));
        store.close();
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch(
            "DROP TABLE open_rows; ALTER TABLE rounds DROP COLUMN maintenance;
             UPDATE meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
        drop(conn);
        let store = Store::open(dir.path(), Duration::from_millis(100), RETENTION).unwrap();
        let saved = store.load(&["v2.test".into()], now).unwrap();
        assert_eq!(saved["v2.test"].history.buckets.len(), 1);
        assert_eq!(saved["v2.test"].history.sketches.len(), 1);
        // The table is there: open rows are written and read back over the old rows.
        let mut r = record("v2.test", now + 1, true, StatusState::default());
        r.delta.open = OpenRows {
            buckets: vec![BucketRow {
                rounds: 2,
                up: 2,
                ..r.delta.buckets[0]
            }],
            sketches: Vec::new(),
        };
        store.write(r);
        store.flush();
        let saved = store.load(&["v2.test".into()], now + 1).unwrap();
        assert_eq!(saved["v2.test"].history.buckets.len(), 1);
        assert_eq!(saved["v2.test"].history.buckets[0].rounds, 2);
        store.close();
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        let version = schema_version(&conn);
        assert_eq!(version, SCHEMA_VERSION.to_string());
    }

    #[test]
    fn a_version_3_store_counts_its_rounds_and_keeps_maintenance_rounds_out_of_the_recent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let store = Store::open(dir.path(), Duration::from_millis(100), RETENTION).unwrap();
        store.write(record("v3.test", now - 60, true, StatusState::default()));
        store.close();
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch(
            "ALTER TABLE rounds DROP COLUMN maintenance;
             UPDATE meta SET value = '3' WHERE key = 'schema_version';",
        )
        .unwrap();
        drop(conn);
        let store = Store::open(dir.path(), Duration::from_millis(100), RETENTION).unwrap();
        let mut during = record("v3.test", now, false, StatusState::default());
        during.maintenance = true;
        store.write(during);
        store.flush();
        let saved = store.load(&["v3.test".into()], now).unwrap();
        let recent = &saved["v3.test"].history.recent;
        assert_eq!(
            recent.len(),
            1,
            "the maintenance round is kept, not shown: {recent:?}"
        );
        assert_eq!(recent[0].at, now - 60);
        store.close();
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        let kept: Vec<(i64, bool)> = conn
            .prepare("SELECT at, maintenance FROM rounds ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kept, vec![(now - 60, false), (now, true)]);
        assert_eq!(schema_version(&conn), "4");
    }

    #[test]
    fn rounds_written_in_batches_are_loaded_back() {
        let dir = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let store = Store::open(dir.path(), Duration::from_secs(3600), RETENTION).unwrap();
        let red = StatusState {
            status: Some(Status::Red),
            reason: Some(crate::status::Reason::Down {
                failed: 3,
                cause: Box::new(crate::status::Reason::Failed {
                    kind: Some(ErrorKind::Timeout),
                    message: "x".into(),
                }),
            }),
            failed_rounds: 3,
            good_rounds: 0,
            down: true,
        };
        for i in 0..5 {
            store.write(record("a.test", now - 50 + i * 10, i < 2, red.clone()));
        }
        store.flush();
        let saved = store
            .load(&["a.test".into(), "missing.test".into()], now)
            .unwrap();
        assert!(!saved.contains_key("missing.test"));
        let a = &saved["a.test"];
        assert_eq!(a.history.recent.len(), 5);
        assert_eq!(a.history.recent[0], sample(now - 50, true));
        assert_eq!(a.history.recent[4].error, Some(ErrorKind::Timeout));
        assert_eq!(a.history.state, red);
        assert_eq!(
            a.software,
            Some(Software {
                name: "Synapse".into(),
                version: "1.2.3".into()
            })
        );
        assert_eq!(a.history.addresses[0].1.len(), 5);
        assert_eq!(a.history.sketches.len(), 1);
        assert_eq!(a.history.sketches[0].sketch.count(), 1);
        let h = ServerHistory::restore(T, a.history.clone(), now);
        assert_eq!(h.status(), Status::Red);
        assert_eq!(h.state.failed_rounds, 3);
        assert_eq!(h.recent().count(), 5);
        store.close();
    }

    #[test]
    fn history_survives_closing_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let store = Store::open(dir.path(), Duration::from_millis(100), RETENTION).unwrap();
        store.write(record(
            "b.test",
            now,
            true,
            StatusState {
                status: Some(Status::Green),
                ..Default::default()
            },
        ));
        store.close(); // flushes
        let store = Store::open(dir.path(), Duration::from_millis(100), RETENTION).unwrap();
        let saved = store.load(&["b.test".into()], now).unwrap();
        assert_eq!(saved["b.test"].history.state.status, Some(Status::Green));
    }

    #[test]
    fn a_version_1_store_is_migrated_with_sketches_rebuilt_from_raw_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let store = Store::open(dir.path(), Duration::from_millis(100), RETENTION).unwrap();
        for i in 0..6 {
            store.write(record(
                "c.test",
                now - 600 + i * 60,
                i != 2,
                StatusState::default(),
            ));
        }
        store.close();
        // Back to how version 1 kept it: histograms instead of sketches.
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch(
            "DROP TABLE sketches;
             DROP TABLE open_rows;
             ALTER TABLE rounds DROP COLUMN maintenance;
             CREATE TABLE histograms (server INTEGER NOT NULL, hour INTEGER NOT NULL,
                 bins BLOB NOT NULL, PRIMARY KEY (server, hour)) WITHOUT ROWID;
             INSERT INTO histograms VALUES (1, 0, x'0100');
             UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .unwrap();
        drop(conn);
        let store = Store::open(dir.path(), Duration::from_millis(100), RETENTION).unwrap();
        let saved = store.load(&["c.test".into()], now).unwrap();
        // Five rounds with a latency, counted in an hourly and a daily sketch each.
        let sketches = &saved["c.test"].history.sketches;
        let counted = |width| -> u64 {
            sketches
                .iter()
                .filter(|s| s.width == width)
                .map(|s| s.sketch.count())
                .sum()
        };
        assert_eq!((counted(3600), counted(86_400)), (5, 5));
        let h = ServerHistory::restore(T, saved["c.test"].history.clone(), now);
        let p50 = h.latency_percentile(now, 0.5).unwrap();
        assert!(
            (p50 - 42.5).abs() <= 42.5 * crate::history::sketch::ALPHA,
            "{p50}"
        );
        store.close();
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        let version = schema_version(&conn);
        assert_eq!(version, SCHEMA_VERSION.to_string());
        // A store from a newer mxping is refused, not rewritten.
        conn.execute(
            "UPDATE meta SET value = '5' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        drop(conn);
        let msg = open_err(dir.path());
        assert!(
            msg.contains("its schema version is 5; this mxping reads version 4"),
            "{msg}"
        );
    }

    fn schema_version(conn: &Connection) -> String {
        conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    }

    fn open_err(dir: &Path) -> String {
        match Store::open(dir, Duration::from_secs(1), RETENTION) {
            Ok(_) => panic!("should refuse {}", dir.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn files_that_are_not_an_intact_store_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for (content, expected) in [
            (
                b"garbage, not a database at all".to_vec(),
                "not an SQLite database",
            ),
            (Vec::new(), "empty (0 bytes)"),
        ] {
            std::fs::write(&path, &content).unwrap();
            let msg = open_err(dir.path());
            assert!(
                msg.contains(expected) && msg.contains("never overwrites"),
                "{msg}"
            );
            assert_eq!(std::fs::read(&path).unwrap(), content, "untouched");
        }
        // A foreign SQLite database.
        std::fs::remove_file(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
        drop(other);
        let before = std::fs::read(&path).unwrap();
        assert!(open_err(dir.path()).contains("not an mxping store"));
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_damaged_store_fails_the_integrity_check() {
        let dir = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let store = Store::open(dir.path(), Duration::from_millis(50), RETENTION).unwrap();
        for i in 0..2000 {
            store.write(record(
                "c.test",
                now - 3000 + i,
                true,
                StatusState::default(),
            ));
        }
        store.close();
        let path = dir.path().join(FILE_NAME);
        let _ = std::fs::remove_file(dir.path().join(format!("{FILE_NAME}-wal")));
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 3 * 4096);
        // Overwrite the middle pages (table b-trees) with noise, keeping the header intact.
        let end = bytes.len() - 4096;
        for b in &mut bytes[4096..end] {
            *b = b.wrapping_mul(31).wrapping_add(7);
        }
        std::fs::write(&path, &bytes).unwrap();
        let msg = open_err(dir.path());
        assert!(
            msg.contains("integrity check failed")
                || msg.contains("cannot read it")
                || msg.contains("not an mxping store"),
            "{msg}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "left as it was");
    }

    #[test]
    fn restore_rebuilds_windows_from_rollups() {
        let dir = tempfile::tempdir().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let store = Store::open(dir.path(), Duration::from_secs(3600), RETENTION).unwrap();
        let mut r = record("d.test", now, true, StatusState::default());
        r.delta.buckets = vec![
            BucketRow {
                width: 86_400,
                start: now - now % 86_400 - 10 * 86_400,
                rounds: 100,
                up: 50,
                latency_sum: 0.0,
                latency_n: 0,
            },
            BucketRow {
                width: 86_400,
                start: now - now % 86_400,
                rounds: 100,
                up: 100,
                latency_sum: 0.0,
                latency_n: 0,
            },
        ];
        store.write(r);
        store.flush();
        let saved = store.load(&["d.test".into()], now).unwrap();
        let h = ServerHistory::restore(
            T,
            Restored {
                ..saved["d.test"].history.clone()
            },
            now,
        );
        let u: std::collections::HashMap<_, _> = h.uptime(now).into_iter().collect();
        assert_eq!(u["30d"], Some(0.75));
    }
}
