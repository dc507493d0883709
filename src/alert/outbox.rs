//! The outbox: every alert message is written here before it is sent, with the transaction ID
//! it keeps for every retry, and removed only once the homeserver or receiver acknowledged it.
//!
//! It lives in the history store's SQLite file (its own tables, its own connection, WAL), or
//! in memory when `[storage] data_dir` is empty. A message is committed before its first
//! attempt, so a crash at any point leaves it queued; after a crash between sending and
//! recording, the retry reuses the transaction ID, which the Matrix spec makes idempotent
//! (the homeserver answers with the event it already has) and a webhook receiver can
//! deduplicate on (`X-Mxping-Delivery`).
//!
//! Besides the messages, it keeps what must survive with them: the alert still open per
//! channel and server (so a status the history store had not flushed before a crash does not
//! fire twice), and the event ID of each alert's first message (so the recovery edits it).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::report::Status;

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
";

/// Thread roots are forgotten after this long (an outage longer than this is edited no more;
/// its recovery is posted as a new message).
const THREAD_RETENTION_S: i64 = 90 * 86_400;

/// What a queued message does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
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
pub struct NewMessage {
    /// What it does.
    pub kind: Kind,
    /// Plain text.
    pub body: String,
    /// HTML for Matrix; the JSON document for a webhook.
    pub html: String,
}

/// A queued message.
#[derive(Clone, Debug)]
pub struct Message {
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
pub struct Open {
    /// The status last announced.
    pub status: Status,
    /// When it first fired, Unix seconds.
    pub since: i64,
    /// The reason last announced, in the channel's language.
    pub reason: String,
    /// Its thread (the transaction ID of its first message).
    pub thread: String,
}

/// A new transaction ID: unique across restarts and channels, never reused.
pub fn new_txn_id() -> String {
    let r: u64 = rand::random();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    format!("mxping.{now}.{r:016x}")
}

/// The outbox (one connection, shared by the channels; every call is a few row operations).
pub struct Outbox {
    conn: Mutex<Connection>,
}

impl Outbox {
    /// The outbox in the store file `path`, or in memory.
    pub fn open(path: Option<&Path>) -> Result<Outbox, String> {
        let conn = match path {
            Some(p) => Connection::open(p)
                .map_err(|e| format!("cannot open {} for the alert outbox: {e}", p.display()))?,
            None => Connection::open_in_memory().map_err(|e| e.to_string())?,
        };
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)
        };
        setup().map_err(|e| format!("cannot set up the alert outbox: {e}"))?;
        Ok(Outbox {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("outbox lock")
    }

    /// Decides and queues in one transaction: `decide` sees the open alert of `server` on
    /// `channel` and returns the new one and the messages to queue (the first message's
    /// transaction ID is given to it, as the thread of a new alert).
    pub fn apply(
        &self,
        channel: &str,
        server: &str,
        now: i64,
        decide: impl FnOnce(Option<Open>, &str) -> (Option<Open>, Vec<NewMessage>),
    ) -> rusqlite::Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let open = tx
            .query_row(
                "SELECT status, since, reason, thread FROM alert_open WHERE channel = ?1 AND server = ?2",
                params![channel, server],
                |r| {
                    Ok(Open {
                        status: Status::parse(&r.get::<_, String>(0)?).unwrap_or(Status::Unknown),
                        since: r.get(1)?,
                        reason: r.get(2)?,
                        thread: r.get(3)?,
                    })
                },
            )
            .optional()?;
        let txn_ids: Vec<String> = (0..2).map(|_| new_txn_id()).collect();
        let (next, messages) = decide(open.clone(), &txn_ids[0]);
        if next != open {
            tx.execute(
                "DELETE FROM alert_open WHERE channel = ?1 AND server = ?2",
                params![channel, server],
            )?;
            if let Some(o) = &next {
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
        }
        for (i, m) in messages.iter().enumerate() {
            let txn = txn_ids.get(i).cloned().unwrap_or_else(new_txn_id);
            let thread = match (&next, &open) {
                (Some(o), _) | (None, Some(o)) => o.thread.clone(),
                (None, None) => txn.clone(),
            };
            tx.execute(
                "INSERT INTO alert_outbox (channel, kind, txn_id, thread, body, html, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![channel, m.kind.as_str(), txn, thread, m.body, m.html, now],
            )?;
        }
        tx.commit()?;
        Ok(messages.len())
    }

    /// The oldest message of `channel`.
    pub fn next(&self, channel: &str) -> rusqlite::Result<Option<Message>> {
        self.conn()
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
            .optional()
    }

    /// Messages waiting on `channel`.
    pub fn queued(&self, channel: &str) -> rusqlite::Result<usize> {
        self.conn().query_row(
            "SELECT count(*) FROM alert_outbox WHERE channel = ?1",
            [channel],
            |r| r.get::<_, i64>(0).map(|n| n as usize),
        )
    }

    /// Channels with messages waiting.
    pub fn channels(&self) -> rusqlite::Result<Vec<(String, usize)>> {
        let conn = self.conn();
        let mut q =
            conn.prepare("SELECT channel, count(*) FROM alert_outbox GROUP BY channel ORDER BY 1")?;
        let rows = q.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))?;
        rows.collect()
    }

    /// Message `id` was acknowledged (or given up): removed, with the room and event of a
    /// thread root it created.
    pub fn done(
        &self,
        id: i64,
        root: Option<(&str, &str, &str)>,
        now: i64,
    ) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
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
        tx.commit()
    }

    /// An attempt at message `id` failed.
    pub fn failed(&self, id: i64, error: &str) -> rusqlite::Result<()> {
        self.conn().execute(
            "UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            params![id, error],
        )?;
        Ok(())
    }

    /// The room and event of `thread`'s first message, once it was sent.
    pub fn root(&self, thread: &str) -> rusqlite::Result<Option<(String, String)>> {
        self.conn()
            .query_row(
                "SELECT room, event_id FROM alert_threads WHERE thread = ?1",
                [thread],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(thread: &str) -> (Option<Open>, Vec<NewMessage>) {
        (
            Some(Open {
                status: Status::Red,
                since: 100,
                reason: "down".into(),
                thread: thread.to_owned(),
            }),
            vec![NewMessage {
                kind: Kind::Fire,
                body: "down".into(),
                html: "<b>down</b>".into(),
            }],
        )
    }

    #[test]
    fn messages_keep_their_transaction_id_and_order_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite3");
        let first_txn;
        {
            let o = Outbox::open(Some(&path)).unwrap();
            o.apply("c", "a.example", 100, |open, txn| {
                assert!(open.is_none());
                fire(txn)
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
        // The open alert is there for the next decision, and the root once it is sent.
        o.done(m.id, Some((&m.thread, "!r:x", "$e1")), 200).unwrap();
        assert_eq!(o.queued("c").unwrap(), 0);
        assert_eq!(
            o.root(&m.thread).unwrap(),
            Some(("!r:x".to_owned(), "$e1".to_owned()))
        );
        o.apply("c", "a.example", 300, |open, _| {
            let open = open.expect("still open");
            assert_eq!((open.status, open.since), (Status::Red, 100));
            (None, Vec::new())
        })
        .unwrap();
        o.apply("c", "a.example", 301, |open, _| {
            assert!(open.is_none(), "closed by the last decision");
            (None, Vec::new())
        })
        .unwrap();
    }

    #[test]
    fn follow_ups_belong_to_the_open_alerts_thread() {
        let o = Outbox::open(None).unwrap();
        o.apply("c", "a", 1, |_, txn| fire(txn)).unwrap();
        let root = o.next("c").unwrap().unwrap();
        o.apply("c", "a", 2, |_, _| {
            let m = |kind| NewMessage {
                kind,
                body: String::new(),
                html: String::new(),
            };
            (None, vec![m(Kind::Edit), m(Kind::Reply)])
        })
        .unwrap();
        o.done(root.id, None, 3).unwrap();
        let edit = o.next("c").unwrap().unwrap();
        assert_eq!(
            (edit.kind, edit.thread.as_str()),
            (Kind::Edit, root.txn_id.as_str())
        );
        o.done(edit.id, None, 3).unwrap();
        let reply = o.next("c").unwrap().unwrap();
        assert_eq!(reply.kind, Kind::Reply);
        assert_ne!(reply.txn_id, edit.txn_id);
        assert_eq!(o.channels().unwrap(), vec![("c".to_owned(), 1)]);
    }
}
