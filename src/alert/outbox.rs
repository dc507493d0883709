//! The outbox: every alert message is written here before it is sent, with the transaction ID
//! it keeps for every retry, and removed only once the homeserver or receiver acknowledged it
//! (or it was set aside: refused for what it is, or given up after a day).
//!
//! It lives in the history store's SQLite file (its own tables, its own connection, WAL), or
//! in memory when `[storage] data_dir` is empty. A message is committed before its first
//! attempt, so a crash at any point leaves it queued; after a crash between sending and
//! recording, the retry reuses the transaction ID, which the Matrix spec makes idempotent
//! (the homeserver answers with the event it already has) and a webhook receiver can
//! deduplicate on (`webhook-id`, `X-Mxping-Delivery`).
//!
//! Besides the messages, it keeps what must survive with them: the alert still open per
//! channel and server (so a status the history store had not flushed before a crash does not
//! fire twice), the members of each alert's thread (one server, or several grouped into one
//! message), the changes waiting for their group to be sent, each channel's batch, and the
//! event ID of each alert's first message (so later changes edit it). Every call is blocking
//! (SQLite): callers on the runtime use `spawn_blocking`.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::history::store::TablesError;
use crate::status::Status;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, kind TEXT NOT NULL,
    txn_id TEXT NOT NULL UNIQUE, thread TEXT NOT NULL, body TEXT NOT NULL, html TEXT NOT NULL,
    created_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE INDEX IF NOT EXISTS alert_outbox_by_channel ON alert_outbox (channel, id);
CREATE TABLE IF NOT EXISTS alert_open (
    channel TEXT NOT NULL, server TEXT NOT NULL, status TEXT NOT NULL, since INTEGER NOT NULL,
    reason TEXT NOT NULL, thread TEXT NOT NULL, PRIMARY KEY (channel, server)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_threads (
    thread TEXT PRIMARY KEY, room TEXT NOT NULL, event_id TEXT NOT NULL, at INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_members (
    thread TEXT NOT NULL, server TEXT NOT NULL, status TEXT NOT NULL, since INTEGER NOT NULL,
    reason TEXT NOT NULL, resolved_at INTEGER, PRIMARY KEY (thread, server)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_pending (
    channel TEXT NOT NULL, server TEXT NOT NULL, at INTEGER NOT NULL, from_status TEXT NOT NULL,
    to_status TEXT NOT NULL, reason TEXT NOT NULL, reason_text TEXT,
    PRIMARY KEY (channel, server)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_batch (
    channel TEXT PRIMARY KEY, last_flush_at INTEGER NOT NULL, started_at INTEGER, due INTEGER)
    WITHOUT ROWID;
";

/// Thread roots are forgotten after this long (an outage longer than this is edited no more;
/// its recovery is posted as a new message).
const THREAD_RETENTION_S: i64 = 90 * 86_400;

/// What a queued message does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The first message of an alert: the thread root, edited later.
    Fire,
    /// An edit of the thread root (`m.replace`).
    Edit,
    /// A reply in the root's thread.
    Reply,
    /// A webhook POST (`html` holds the JSON document).
    Webhook,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Fire => "fire",
            Kind::Edit => "edit",
            Kind::Reply => "reply",
            Kind::Webhook => "webhook",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "fire" => Kind::Fire,
            "edit" => Kind::Edit,
            "reply" => Kind::Reply,
            _ => Kind::Webhook,
        }
    }
}

/// A message to queue.
#[derive(Clone, Debug)]
pub(crate) struct NewMessage {
    /// What it does.
    pub kind: Kind,
    /// Plain text.
    pub body: String,
    /// HTML for Matrix; the JSON document for a webhook.
    pub html: String,
}

/// A queued message.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    /// Queue position.
    pub id: i64,
    /// What it does.
    pub kind: Kind,
    /// Fixed when queued, the same on every attempt.
    pub txn_id: String,
    /// The alert it belongs to (the transaction ID of its first message).
    pub thread: String,
    /// Plain text.
    pub body: String,
    /// HTML, or the webhook's JSON document.
    pub html: String,
    /// When it was queued, Unix seconds.
    pub created_at: i64,
    /// Failed attempts so far.
    pub attempts: i64,
}

/// An alert that fired and has not recovered, per channel and server.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Open {
    /// The status last announced.
    pub status: Status,
    /// When it first fired, Unix seconds.
    pub since: i64,
    /// The reason last announced, in the channel's language.
    pub reason: String,
    /// Its thread (the transaction ID of its first message).
    pub thread: String,
}

/// One server of an alert's thread: as last announced, and when it recovered.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Member {
    /// The server.
    pub server: String,
    /// The status last announced (for a recovered member: the one it recovered from).
    pub status: Status,
    /// When it fired.
    pub since: i64,
    /// The reason last announced, in the channel's language.
    pub reason: String,
    /// When it recovered, if it did.
    pub resolved_at: Option<i64>,
}

impl Member {
    /// The member as an open alert in `thread`.
    pub(crate) fn open(&self, thread: &str) -> Open {
        Open {
            status: self.status,
            since: self.since,
            reason: self.reason.clone(),
            thread: thread.to_owned(),
        }
    }
}

/// A confirmed status change of one server, waiting in a channel's batch.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Change {
    /// The server.
    pub server: String,
    /// When it was confirmed (the latest change of the batch), Unix seconds.
    pub at: i64,
    /// The status before the first change of the batch.
    pub from: Status,
    /// The status after the latest.
    pub to: Status,
    /// The reason, in the channel's language.
    pub reason: String,
    /// The reason in English (the webhook's `reason`), if any.
    pub reason_text: Option<String>,
}

/// A channel's batch: when it last sent changes, and when the waiting ones are due.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Batch {
    /// When changes were last turned into messages, Unix seconds.
    pub last_flush_at: i64,
    /// When the first waiting change arrived.
    pub started_at: Option<i64>,
    /// When the waiting changes go out.
    pub due: Option<i64>,
}

/// A new transaction ID: unique across restarts and channels, never reused.
pub(crate) fn new_txn_id() -> String {
    let r: u64 = rand::random();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    format!("mxping.{now}.{r:016x}")
}

fn status(s: String) -> Status {
    Status::parse(&s).unwrap_or(Status::Unknown)
}

/// Whose tables these are, in errors.
const OWNER: &str = "the alert outbox";

/// The outbox (one connection, shared by the channels; every call is a few row operations).
pub(crate) struct Outbox {
    conn: Mutex<Connection>,
}

impl Outbox {
    /// The outbox in the store file `path`, or in memory.
    pub(crate) fn open(path: Option<&Path>) -> Result<Outbox, TablesError> {
        let conn = match path {
            Some(p) => Connection::open(p).map_err(TablesError::open(p, OWNER))?,
            None => Connection::open_in_memory().map_err(TablesError::setup(OWNER))?,
        };
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)?;
            // Added with grouping: whether a message may have left (it is being sent, or was
            // when the process stopped), so it is never rewritten or dropped as unsent.
            let has_sending: bool = conn.query_row(
                "SELECT count(*) FROM pragma_table_info('alert_outbox') WHERE name = 'sending'",
                [],
                |r| r.get(0),
            )?;
            if !has_sending {
                conn.execute_batch(
                    "ALTER TABLE alert_outbox ADD COLUMN sending INTEGER NOT NULL DEFAULT 0",
                )?;
            }
            // Alerts opened before threads had members are single-server threads.
            conn.execute_batch(
                "INSERT OR IGNORE INTO alert_members (thread, server, status, since, reason)
                 SELECT thread, server, status, since, reason FROM alert_open",
            )
        };
        setup().map_err(TablesError::setup(OWNER))?;
        Ok(Outbox {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("outbox lock")
    }

    /// Runs `f` in one transaction, committed when it returns `Ok`.
    pub(crate) fn transaction<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// The oldest message of `channel`, marked as being sent.
    pub(crate) fn next(&self, channel: &str) -> rusqlite::Result<Option<Message>> {
        let conn = self.conn();
        let m = conn
            .query_row(
                "SELECT id, kind, txn_id, thread, body, html, created_at, attempts
                 FROM alert_outbox WHERE channel = ?1 ORDER BY id LIMIT 1",
                [channel],
                |r| {
                    Ok(Message {
                        id: r.get(0)?,
                        kind: Kind::parse(&r.get::<_, String>(1)?),
                        txn_id: r.get(2)?,
                        thread: r.get(3)?,
                        body: r.get(4)?,
                        html: r.get(5)?,
                        created_at: r.get(6)?,
                        attempts: r.get(7)?,
                    })
                },
            )
            .optional()?;
        if let Some(m) = &m {
            conn.execute("UPDATE alert_outbox SET sending = 1 WHERE id = ?1", [m.id])?;
        }
        Ok(m)
    }

    /// Messages waiting on `channel`.
    pub(crate) fn queued(&self, channel: &str) -> rusqlite::Result<usize> {
        self.conn().query_row(
            "SELECT count(*) FROM alert_outbox WHERE channel = ?1",
            [channel],
            |r| r.get::<_, i64>(0).map(|n| n as usize),
        )
    }

    /// Channels with messages waiting.
    pub(crate) fn channels(&self) -> rusqlite::Result<Vec<(String, usize)>> {
        let conn = self.conn();
        let mut q =
            conn.prepare("SELECT channel, count(*) FROM alert_outbox GROUP BY channel ORDER BY 1")?;
        let rows = q.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))?;
        rows.collect()
    }

    /// Message `id` was acknowledged (or given up, or set aside): removed, with the room and
    /// event of a thread root it created.
    pub(crate) fn done(
        &self,
        id: i64,
        root: Option<(&str, &str, &str)>,
        now: i64,
    ) -> rusqlite::Result<()> {
        self.transaction(|tx| {
            tx.execute("DELETE FROM alert_outbox WHERE id = ?1", [id])?;
            if let Some((thread, room, event_id)) = root {
                tx.execute(
                    "INSERT OR REPLACE INTO alert_threads (thread, room, event_id, at) VALUES (?1, ?2, ?3, ?4)",
                    params![thread, room, event_id, now],
                )?;
            }
            tx.execute(
                "DELETE FROM alert_threads WHERE at < ?1",
                [now - THREAD_RETENTION_S],
            )?;
            Ok(())
        })
    }

    /// An attempt at message `id` failed: it did not leave.
    pub(crate) fn failed(&self, id: i64, error: &str) -> rusqlite::Result<()> {
        self.conn().execute(
            "UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?2, sending = 0 WHERE id = ?1",
            params![id, error],
        )?;
        Ok(())
    }

    /// The room and event of `thread`'s first message, once it was sent.
    pub(crate) fn root(&self, thread: &str) -> rusqlite::Result<Option<(String, String)>> {
        self.conn()
            .query_row(
                "SELECT room, event_id FROM alert_threads WHERE thread = ?1",
                [thread],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
    }

    /// When `channel`'s waiting changes are due, if any wait.
    pub(crate) fn due(&self, channel: &str) -> rusqlite::Result<Option<i64>> {
        Ok(batch(&self.conn(), channel)?.due)
    }
}

/// `channel`'s batch (a default one before its first change).
pub(crate) fn batch(conn: &Connection, channel: &str) -> rusqlite::Result<Batch> {
    Ok(conn
        .query_row(
            "SELECT last_flush_at, started_at, due FROM alert_batch WHERE channel = ?1",
            [channel],
            |r| {
                Ok(Batch {
                    last_flush_at: r.get(0)?,
                    started_at: r.get(1)?,
                    due: r.get(2)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

/// Writes `channel`'s batch.
pub(crate) fn set_batch(tx: &Transaction<'_>, channel: &str, b: Batch) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO alert_batch (channel, last_flush_at, started_at, due)
         VALUES (?1, ?2, ?3, ?4)",
        params![channel, b.last_flush_at, b.started_at, b.due],
    )?;
    Ok(())
}

/// Adds `change` to `channel`'s waiting changes: a later change of the same server keeps the
/// status it started from.
pub(crate) fn add_pending(tx: &Transaction<'_>, channel: &str, c: &Change) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO alert_pending (channel, server, at, from_status, to_status, reason, reason_text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (channel, server) DO UPDATE SET at = excluded.at,
             to_status = excluded.to_status, reason = excluded.reason,
             reason_text = excluded.reason_text",
        params![
            channel,
            c.server,
            c.at,
            c.from.as_str(),
            c.to.as_str(),
            c.reason,
            c.reason_text
        ],
    )?;
    Ok(())
}

/// Takes `channel`'s waiting changes, oldest first.
pub(crate) fn take_pending(tx: &Transaction<'_>, channel: &str) -> rusqlite::Result<Vec<Change>> {
    let changes = {
        let mut q = tx.prepare(
            "SELECT server, at, from_status, to_status, reason, reason_text FROM alert_pending
             WHERE channel = ?1 ORDER BY at, server",
        )?;
        q.query_map([channel], |r| {
            Ok(Change {
                server: r.get(0)?,
                at: r.get(1)?,
                from: status(r.get(2)?),
                to: status(r.get(3)?),
                reason: r.get(4)?,
                reason_text: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
    };
    tx.execute("DELETE FROM alert_pending WHERE channel = ?1", [channel])?;
    Ok(changes)
}

/// The open alert of `server` on `channel`.
pub(crate) fn open(
    tx: &Transaction<'_>,
    channel: &str,
    server: &str,
) -> rusqlite::Result<Option<Open>> {
    tx.query_row(
        "SELECT status, since, reason, thread FROM alert_open WHERE channel = ?1 AND server = ?2",
        params![channel, server],
        |r| {
            Ok(Open {
                status: status(r.get(0)?),
                since: r.get(1)?,
                reason: r.get(2)?,
                thread: r.get(3)?,
            })
        },
    )
    .optional()
}

/// Sets (or, with `None`, closes) the open alert of `server` on `channel`.
pub(crate) fn set_open(
    tx: &Transaction<'_>,
    channel: &str,
    server: &str,
    open: Option<&Open>,
) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM alert_open WHERE channel = ?1 AND server = ?2",
        params![channel, server],
    )?;
    if let Some(o) = open {
        tx.execute(
            "INSERT INTO alert_open (channel, server, status, since, reason, thread)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                channel,
                server,
                o.status.as_str(),
                o.since,
                o.reason,
                o.thread
            ],
        )?;
    }
    Ok(())
}

/// The members of `thread`, in the order they joined it.
pub(crate) fn members(tx: &Transaction<'_>, thread: &str) -> rusqlite::Result<Vec<Member>> {
    let mut q = tx.prepare(
        "SELECT server, status, since, reason, resolved_at FROM alert_members
         WHERE thread = ?1 ORDER BY since, server",
    )?;
    q.query_map([thread], |r| {
        Ok(Member {
            server: r.get(0)?,
            status: status(r.get(1)?),
            since: r.get(2)?,
            reason: r.get(3)?,
            resolved_at: r.get(4)?,
        })
    })?
    .collect()
}

/// Writes `member` of `thread` (new, or as it reads now).
pub(crate) fn set_member(tx: &Transaction<'_>, thread: &str, m: &Member) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO alert_members (thread, server, status, since, reason, resolved_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            thread,
            m.server,
            m.status.as_str(),
            m.since,
            m.reason,
            m.resolved_at
        ],
    )?;
    Ok(())
}

/// Removes `server` from `thread` (`None`: every member; the thread is over).
pub(crate) fn drop_members(
    tx: &Transaction<'_>,
    thread: &str,
    server: Option<&str>,
) -> rusqlite::Result<()> {
    match server {
        Some(s) => tx.execute(
            "DELETE FROM alert_members WHERE thread = ?1 AND server = ?2",
            params![thread, s],
        )?,
        None => tx.execute("DELETE FROM alert_members WHERE thread = ?1", [thread])?,
    };
    Ok(())
}

/// The ID of `thread`'s first message while it is queued and has not started to leave.
pub(crate) fn unsent_root(tx: &Transaction<'_>, thread: &str) -> rusqlite::Result<Option<i64>> {
    tx.query_row(
        "SELECT id FROM alert_outbox WHERE thread = ?1 AND kind = 'fire' AND sending = 0",
        [thread],
        |r| r.get(0),
    )
    .optional()
}

/// Rewrites the unsent message `id`.
pub(crate) fn rewrite(
    tx: &Transaction<'_>,
    id: i64,
    body: &str,
    html: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE alert_outbox SET body = ?2, html = ?3 WHERE id = ?1",
        params![id, body, html],
    )?;
    Ok(())
}

/// Drops `thread`'s queued messages (all of them, or all but its unsent first message).
pub(crate) fn drop_queued(
    tx: &Transaction<'_>,
    thread: &str,
    keep_root: bool,
) -> rusqlite::Result<()> {
    let sql = if keep_root {
        "DELETE FROM alert_outbox WHERE thread = ?1 AND kind != 'fire' AND sending = 0"
    } else {
        "DELETE FROM alert_outbox WHERE thread = ?1 AND sending = 0"
    };
    tx.execute(sql, [thread])?;
    Ok(())
}

/// Queues `m` on `channel` in `thread` with transaction ID `txn`, at `now`.
pub(crate) fn push(
    tx: &Transaction<'_>,
    channel: &str,
    thread: &str,
    txn: &str,
    m: &NewMessage,
    now: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO alert_outbox (channel, kind, txn_id, thread, body, html, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![channel, m.kind.as_str(), txn, thread, m.body, m.html, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: Kind, body: &str) -> NewMessage {
        NewMessage {
            kind,
            body: body.into(),
            html: format!("<b>{body}</b>"),
        }
    }

    #[test]
    fn messages_keep_their_transaction_id_and_order_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite3");
        let first_txn;
        {
            let o = Outbox::open(Some(&path)).unwrap();
            o.transaction(|tx| {
                let txn = new_txn_id();
                push(tx, "c", &txn, &txn, &message(Kind::Fire, "down"), 100)
            })
            .unwrap();
            let m = o.next("c").unwrap().unwrap();
            assert_eq!(
                m.thread, m.txn_id,
                "a new alert's thread is its first message"
            );
            o.failed(m.id, "connection refused").unwrap();
            first_txn = m.txn_id;
        }
        // As after a crash: the same message, the same transaction ID, one failed attempt.
        let o = Outbox::open(Some(&path)).unwrap();
        let m = o.next("c").unwrap().unwrap();
        assert_eq!((m.txn_id.as_str(), m.attempts), (first_txn.as_str(), 1));
        assert_eq!(o.queued("c").unwrap(), 1);
        assert_eq!(o.queued("other").unwrap(), 0);
        o.done(m.id, Some((&m.thread, "!r:x", "$e1")), 200).unwrap();
        assert_eq!(o.queued("c").unwrap(), 0);
        assert_eq!(
            o.root(&m.thread).unwrap(),
            Some(("!r:x".to_owned(), "$e1".to_owned()))
        );
    }

    #[test]
    fn a_message_that_may_have_left_is_never_rewritten_or_dropped_as_unsent() {
        let o = Outbox::open(None).unwrap();
        o.transaction(|tx| push(tx, "c", "t", "t", &message(Kind::Fire, "down"), 1))
            .unwrap();
        let unsent = |o: &Outbox| o.transaction(|tx| unsent_root(tx, "t")).unwrap();
        assert!(unsent(&o).is_some());
        let m = o.next("c").unwrap().unwrap();
        assert_eq!(unsent(&o), None, "being sent");
        o.transaction(|tx| drop_queued(tx, "t", false)).unwrap();
        assert_eq!(
            o.queued("c").unwrap(),
            1,
            "not dropped while it is being sent"
        );
        o.failed(m.id, "refused").unwrap();
        assert_eq!(unsent(&o), Some(m.id), "it did not leave");
    }

    #[test]
    fn an_outbox_from_before_grouping_gains_its_tables_and_keeps_its_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE alert_outbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, kind TEXT NOT NULL,
                txn_id TEXT NOT NULL UNIQUE, thread TEXT NOT NULL, body TEXT NOT NULL,
                html TEXT NOT NULL, created_at INTEGER NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
             CREATE TABLE alert_open (
                channel TEXT NOT NULL, server TEXT NOT NULL, status TEXT NOT NULL,
                since INTEGER NOT NULL, reason TEXT NOT NULL, thread TEXT NOT NULL,
                PRIMARY KEY (channel, server)) WITHOUT ROWID;
             INSERT INTO alert_outbox (channel, kind, txn_id, thread, body, html, created_at)
                VALUES ('c', 'edit', 'e1', 't1', 'b', 'h', 5);
             INSERT INTO alert_open VALUES ('c', 'a.test', 'red', 5, 'down', 't1');",
        )
        .unwrap();
        drop(conn);
        let o = Outbox::open(Some(&path)).unwrap();
        assert_eq!(o.next("c").unwrap().unwrap().txn_id, "e1");
        let kept = o.transaction(|tx| members(tx, "t1")).unwrap();
        assert_eq!(
            kept,
            vec![Member {
                server: "a.test".into(),
                status: Status::Red,
                since: 5,
                reason: "down".into(),
                resolved_at: None,
            }]
        );
        // Opening again changes nothing.
        drop(o);
        let o = Outbox::open(Some(&path)).unwrap();
        assert_eq!(o.transaction(|tx| members(tx, "t1")).unwrap().len(), 1);
    }
}
