//! Commands in the alert room (design.md "Maintenance and incidents"): with `commands = true`
//! on a Matrix `[[alert]]`, the bot reads its room (`/sync` with a filter for that room's
//! messages only) and obeys `!mxping …` from members whose power level is at least
//! `command_power`: maintenance windows, notes, resolutions; `status` and `help` answer
//! anyone. Where the reader left off (`since`) and every command it took (by event ID) are
//! kept in the store's file, so a restart neither misses nor repeats a command, and a
//! redelivered event is obeyed once. Each command is answered in a thread under it, or with a
//! reaction for a plain acknowledgement; what cannot be done is refused in words.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::alert::matrix::{self, Session};
use crate::config::{AlertConfig, AlertTarget, Config, MatrixRoom};
use crate::i18n::{Locale, key, reason_words, status_word};
use crate::maintenance::incidents::{Incidents, Said};
use crate::maintenance::{MaintenanceStore, Plan, Refusal, Schedule, Source};
use crate::net::fetch::Fetcher;
use crate::scheduler::Board;
use crate::status::Status;

/// The word every command starts with.
const PREFIX: &str = "!mxping";
/// How long one `/sync` waits for a message.
const WAIT_MS: u64 = 10_000;
/// Most servers `!mxping status` lists.
const MAX_LISTED: usize = 20;

/// A command, as read from a message.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Command {
    Help,
    Status(Option<String>),
    Maintenance {
        pattern: String,
        duration: String,
        note: String,
    },
    MaintenanceEnd(String),
    Note {
        server: String,
        text: String,
    },
    Resolve {
        server: String,
        text: String,
    },
}

impl Command {
    /// It changes something: only members with enough power may.
    fn changes(&self) -> bool {
        !matches!(self, Command::Help | Command::Status(_))
    }
}

/// The command in `body`: `None` when the message is not one (it does not start with
/// `!mxping`), `Err` with the usage when it is one but cannot be read.
pub(crate) fn parse(body: &str) -> Option<Result<Command, ()>> {
    let rest = body.trim().strip_prefix(PREFIX)?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    let rest = rest.trim();
    let (word, rest) = split(rest);
    Some(match word {
        "" | "help" => Ok(Command::Help),
        "status" => {
            let (server, more) = split(rest);
            if more.is_empty() {
                Ok(Command::Status(
                    (!server.is_empty()).then(|| server.to_owned()),
                ))
            } else {
                Err(())
            }
        }
        "maintenance" => {
            let (first, rest) = split(rest);
            match first {
                "" => Err(()),
                "end" => {
                    let (server, more) = split(rest);
                    if server.is_empty() || !more.is_empty() {
                        Err(())
                    } else {
                        Ok(Command::MaintenanceEnd(server.to_owned()))
                    }
                }
                pattern => {
                    let (duration, note) = split(rest);
                    if duration.is_empty() {
                        Err(())
                    } else {
                        Ok(Command::Maintenance {
                            pattern: pattern.to_owned(),
                            duration: duration.to_owned(),
                            note: note.to_owned(),
                        })
                    }
                }
            }
        }
        "note" => {
            let (server, text) = split(rest);
            if server.is_empty() || text.is_empty() {
                Err(())
            } else {
                Ok(Command::Note {
                    server: server.to_owned(),
                    text: text.to_owned(),
                })
            }
        }
        "resolve" => {
            let (server, text) = split(rest);
            if server.is_empty() {
                Err(())
            } else {
                Ok(Command::Resolve {
                    server: server.to_owned(),
                    text: text.to_owned(),
                })
            }
        }
        _ => Err(()),
    })
}

/// The first word of `s` and the rest, trimmed.
fn split(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim()),
        None => (s, ""),
    }
}

/// What the reader needs: where windows and notes go, and what the page shows.
#[derive(Clone)]
pub(crate) struct Desk {
    /// The monitor's board (the servers and their statuses).
    pub(crate) board: Arc<Board>,
    /// Maintenance windows.
    pub(crate) maintenance: Arc<Schedule>,
    /// Incidents.
    pub(crate) incidents: Arc<Incidents>,
    /// Where `since` and the commands taken are kept.
    pub(crate) store: Arc<MaintenanceStore>,
}

/// Starts a reader for each Matrix `[[alert]]` of `config` with `commands = true`; they stop
/// with `stop`. Without a store nothing is read (the reader must remember what it obeyed).
pub(crate) fn spawn(config: &Config, desk: Option<Desk>, stop: &CancellationToken) {
    let readers: Vec<(&AlertConfig, &MatrixRoom)> = config
        .alerts
        .iter()
        .filter(|a| a.command_power.is_some())
        .filter_map(|a| match &a.target {
            AlertTarget::Matrix { room, .. } => Some((a, room)),
            AlertTarget::Webhook { .. } => None,
        })
        .collect();
    if readers.is_empty() {
        return;
    }
    let Some(desk) = desk else {
        tracing::error!(
            "commands: [storage] data_dir is empty, so the room commands are off (the bot must remember which it obeyed)"
        );
        return;
    };
    let fetcher = match crate::services::trusted_fetcher(config) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("commands: cannot load the trusted roots: {e}");
            return;
        }
    };
    for (a, room) in readers {
        let reader = Reader {
            room: room.clone(),
            power: a.command_power.unwrap_or(50),
            t: crate::i18n::find(&a.language).unwrap_or_else(crate::i18n::english),
            fetcher: fetcher.clone(),
            desk: desk.clone(),
            channel: format!("{} {}", room.homeserver, room.room),
        };
        tokio::spawn(reader.run(stop.clone()));
    }
}

struct Reader {
    room: MatrixRoom,
    power: i64,
    t: &'static Locale,
    fetcher: Fetcher,
    desk: Desk,
    channel: String,
}

/// An answer to a command.
enum Answer {
    /// A reply in a thread under it.
    Reply(String),
    /// A reaction to it.
    React,
}

impl Reader {
    async fn run(self, stop: CancellationToken) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let result = tokio::select! {
                () = stop.cancelled() => return,
                r = self.read() => r,
            };
            if let Err(e) = result {
                tracing::warn!(
                    "commands: {}: {}; reading again in {}s",
                    self.room.room,
                    e.detail,
                    backoff.as_secs()
                );
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }

    /// Opens the room and reads it until something fails.
    async fn read(&self) -> Result<(), crate::alert::Failure> {
        let session = Session::open(&self.fetcher, &self.room).await?;
        fn kept<T>(r: rusqlite::Result<T>) -> Result<T, crate::alert::Failure> {
            r.map_err(|e| crate::alert::Failure::rejected(format!("the store: {e}")))
        }
        let mut since = kept(self.desk.store.since(&self.channel))?;
        if since.is_none() {
            // The first time: start from now, never obeying what was said before.
            let first = session.sync(&self.fetcher, None, 0).await?;
            let next = first["next_batch"].as_str().unwrap_or_default().to_owned();
            kept(self.desk.store.set_since(&self.channel, &next))?;
            since = Some(next);
        }
        tracing::info!(
            "commands: reading {} for !mxping (power level {} to change things)",
            self.room.room,
            self.power
        );
        loop {
            let batch = session
                .sync(&self.fetcher, since.as_deref(), WAIT_MS)
                .await?;
            let events = batch["rooms"]["join"][&session.room_id]["timeline"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for e in &events {
                self.take(&session, e).await?;
            }
            if let Some(next) = batch["next_batch"].as_str() {
                kept(self.desk.store.set_since(&self.channel, next))?;
                since = Some(next.to_owned());
            }
        }
    }

    /// Obeys the command in `e`, if it is one and was not taken before.
    async fn take(&self, session: &Session, e: &Value) -> Result<(), crate::alert::Failure> {
        let (Some(id), Some(sender), Some(body)) = (
            e["event_id"].as_str(),
            e["sender"].as_str(),
            e["content"]["body"].as_str(),
        ) else {
            return Ok(());
        };
        if sender == session.user_id || e["type"] != "m.room.message" {
            return Ok(());
        }
        let Some(command) = parse(body) else {
            return Ok(());
        };
        // What may fail and be tried again (reading the sender's power) comes before the
        // command is marked taken; what changes something comes after, once.
        let power = match &command {
            Ok(c) if c.changes() => Some(session.power_of(&self.fetcher, sender).await?),
            _ => None,
        };
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let taken = self
            .desk
            .store
            .take_command(id, now)
            .map_err(|e| crate::alert::Failure::rejected(format!("the store: {e}")))?;
        if !taken {
            return Ok(());
        }
        let answer = match (command, power) {
            (Err(()), _) => Answer::Reply(self.t.t(key::CMD_USAGE).to_owned()),
            (Ok(_), Some(power)) if power < self.power => {
                tracing::warn!(
                    "commands: {}: {sender} (power level {power}) may not {body:?}",
                    self.room.room
                );
                Answer::Reply(self.t.f(
                    key::CMD_NOT_ALLOWED,
                    &[
                        ("user", sender),
                        ("power", &power.to_string()),
                        ("needed", &self.power.to_string()),
                    ],
                ))
            }
            (Ok(c), _) => {
                tracing::info!("commands: {}: {sender}: {body:?}", self.room.room);
                self.obey(c, sender, now)
            }
        };
        // The same transaction ID for the same command: a retried send is one answer.
        let txn = format!("mxping-cmd-{}", crate::text::percent_encode(id));
        match answer {
            Answer::Reply(text) => {
                let html = crate::text::escape_html(&text).replace('\n', "<br>");
                session
                    .send(&self.fetcher, &txn, &matrix::reply(id, &text, &html))
                    .await?;
            }
            Answer::React => {
                session
                    .send_event(
                        &self.fetcher,
                        "m.reaction",
                        &txn,
                        &matrix::reaction(id, "✅"),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    fn refused(&self, r: &Refusal) -> Answer {
        Answer::Reply(self.t.f(key::CMD_REFUSED, &[("why", &r.to_string())]))
    }

    /// Does `c`, asked by `sender` at `now`.
    fn obey(&self, c: Command, sender: &str, now: i64) -> Answer {
        let t = self.t;
        let config = self.desk.board.config();
        let known: Vec<String> = config.servers.iter().map(|s| s.name.to_string()).collect();
        match c {
            Command::Help => {
                Answer::Reply(t.f(key::CMD_HELP, &[("power", &self.power.to_string())]))
            }
            Command::Status(server) => Answer::Reply(self.status(server.as_deref())),
            Command::Maintenance {
                pattern,
                duration,
                note,
            } => {
                let Ok(d) = humantime::parse_duration(&duration) else {
                    return Answer::Reply(t.f(key::CMD_BAD_DURATION, &[("duration", &duration)]));
                };
                let plan = Plan {
                    pattern: &pattern,
                    duration: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    note: &note,
                    by: sender,
                    source: Source::Room,
                };
                match self.desk.maintenance.start(&plan, &known, now) {
                    Ok(servers) => Answer::Reply(t.f(
                        key::CMD_MAINTENANCE_STARTED,
                        &[
                            ("servers", &servers.join(t.t(key::LIST_SEP))),
                            ("duration", &crate::i18n::duration(t, plan.duration)),
                        ],
                    )),
                    Err(r) => self.refused(&r),
                }
            }
            Command::MaintenanceEnd(server) => match self.desk.maintenance.end(&server, now) {
                Ok(()) => Answer::React,
                Err(r) => self.refused(&r),
            },
            Command::Note { server, text } => self.note(&server, &text, false, sender, &known, now),
            Command::Resolve { server, text } => {
                self.note(&server, &text, true, sender, &known, now)
            }
        }
    }

    fn note(
        &self,
        server: &str,
        text: &str,
        resolves: bool,
        by: &str,
        known: &[String],
        now: i64,
    ) -> Answer {
        let said = Said {
            server,
            text,
            by,
            resolves,
            until_recovered: false,
        };
        match self.desk.incidents.add(&said, known, now) {
            Ok(_) => Answer::React,
            Err(r) => self.refused(&r),
        }
    }

    /// `!mxping status [server]` in words.
    fn status(&self, server: Option<&str>) -> String {
        let t = self.t;
        let line = |v: &crate::scheduler::ServerView| {
            let reason = v
                .report
                .reason
                .as_ref()
                .map(|r| format!("{}{}", t.t(key::LABEL_SEP), reason_words(t, r)))
                .unwrap_or_default();
            format!(
                "{} {} {}{reason}",
                v.status().symbol(),
                v.report.name,
                status_word(t, v.status())
            )
        };
        if let Some(name) = server {
            return match self.desk.board.server(name) {
                Some((_, v)) => line(&v),
                None => self.refused_text(&Refusal::NoServer(name.to_owned())),
            };
        }
        let snap = self.desk.board.snapshot();
        let ok = snap
            .servers
            .iter()
            .filter(|v| v.status() == Status::Green)
            .count();
        let mut out = t.f(
            key::SUMMARY,
            &[
                ("ok", &ok.to_string()),
                ("total", &snap.servers.len().to_string()),
            ],
        );
        let others: Vec<_> = snap
            .servers
            .iter()
            .filter(|v| v.status() != Status::Green)
            .collect();
        for v in others.iter().take(MAX_LISTED) {
            out.push('\n');
            out.push_str(&line(v));
        }
        if others.len() > MAX_LISTED {
            out.push('\n');
            out.push_str(&t.f(
                key::ALERT_AND_MORE,
                &[("n", &(others.len() - MAX_LISTED).to_string())],
            ));
        }
        out
    }

    fn refused_text(&self, r: &Refusal) -> String {
        self.t.f(key::CMD_REFUSED, &[("why", &r.to_string())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_strictly() {
        assert_eq!(parse("hello"), None);
        assert_eq!(parse("!mxpinged"), None);
        assert_eq!(parse("!mxping"), Some(Ok(Command::Help)));
        assert_eq!(parse("  !mxping help "), Some(Ok(Command::Help)));
        assert_eq!(parse("!mxping status"), Some(Ok(Command::Status(None))));
        assert_eq!(
            parse("!mxping status a.test"),
            Some(Ok(Command::Status(Some("a.test".into()))))
        );
        assert_eq!(
            parse("!mxping maintenance *.a.test 2h upgrading Synapse, back at 14:00"),
            Some(Ok(Command::Maintenance {
                pattern: "*.a.test".into(),
                duration: "2h".into(),
                note: "upgrading Synapse, back at 14:00".into(),
            }))
        );
        assert_eq!(
            parse("!mxping maintenance end a.test"),
            Some(Ok(Command::MaintenanceEnd("a.test".into())))
        );
        assert_eq!(
            parse("!mxping note a.test disk\nfull"),
            Some(Ok(Command::Note {
                server: "a.test".into(),
                text: "disk\nfull".into()
            }))
        );
        assert_eq!(
            parse("!mxping resolve a.test"),
            Some(Ok(Command::Resolve {
                server: "a.test".into(),
                text: String::new()
            }))
        );
        for bad in [
            "!mxping maintenance",
            "!mxping maintenance a.test",
            "!mxping maintenance end",
            "!mxping note a.test",
            "!mxping resolve",
            "!mxping status a b",
            "!mxping reboot a.test",
        ] {
            assert_eq!(parse(bad), Some(Err(())), "{bad}");
        }
        assert!(!Command::Help.changes() && !Command::Status(None).changes());
        assert!(Command::MaintenanceEnd("a".into()).changes());
    }
}
