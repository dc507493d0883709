//! What an alert says, and when one is due: the decision per status change (pure, tested
//! without a network), and the words in the channel's language, for one server or for a
//! group of servers that changed together.

use serde_json::json;
use time::OffsetDateTime;

use super::outbox::{Change, Kind, Member, NewMessage, Open};
use crate::i18n::{Key, key};
use crate::i18n::{Locale, duration};
use crate::maintenance::incidents::Note;
use crate::status::Status;
use crate::text::escape_html;

/// Most servers named in one message; the rest are counted ("and 12 more").
pub(crate) const MAX_LINES: usize = 50;

/// What a confirmed status change means for one channel's open alert of that server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nothing to say (not an alerting status, or said already).
    Nothing,
    /// A new alert: its first message.
    Fire,
    /// The open alert's status changed: its first message is edited, and a reply says so.
    Change,
    /// Recovered: the first message is edited ("resolved after …"), and a reply says so.
    Resolve,
    /// Recovered, but recoveries do not alert here: the alert is closed without a word.
    Close,
}

/// The decision for a change to `to`, given the open alert's status and the statuses that
/// alert (`on`). A change to the status already announced is nothing: that is how a status
/// confirmed again after a crash (before the history store flushed) does not alert twice.
/// Maintenance alerts wherever servers do: its start replaces the server's alerts with one
/// message, and its end resolves that message (or turns it into a down alert).
pub(crate) fn decide(open: Option<Status>, to: Status, on: &[Status]) -> Decision {
    use Status::Maintenance;
    match (open, to) {
        (_, Status::Unknown) => Decision::Nothing,
        // A maintenance window is always announced, once, and its end too: back to a status
        // that alerts here is a change of the alert, to any other its resolution.
        (None, Maintenance) => Decision::Fire,
        (Some(Maintenance), Maintenance) => Decision::Nothing,
        (Some(_), Maintenance) => Decision::Change,
        (Some(Maintenance), s) if s != Status::Green && on.contains(&s) => Decision::Change,
        (Some(Maintenance), _) => Decision::Resolve,
        (None, Status::Green) => Decision::Nothing,
        (Some(_), Status::Green) if on.contains(&Status::Green) => Decision::Resolve,
        (Some(_), Status::Green) => Decision::Close,
        (None, s) if on.contains(&s) => Decision::Fire,
        (Some(was), s) if was != s && on.contains(&s) => Decision::Change,
        _ => Decision::Nothing,
    }
}

/// The facts every message of a channel is written from.
pub(crate) struct Facts<'a> {
    /// The channel's language.
    pub t: &'a Locale,
    /// `[web] public_url`, for the detail page's link.
    pub public_url: Option<&'a str>,
}

/// Plain text and HTML lines, joined and capped at [`MAX_LINES`] ("and N more").
fn lines(t: &Locale, all: Vec<(String, String)>) -> (String, String) {
    let more = all.len().saturating_sub(MAX_LINES);
    let (mut text, mut html): (Vec<String>, Vec<String>) = all.into_iter().take(MAX_LINES).unzip();
    if more > 0 {
        let and = t.f(key::ALERT_AND_MORE, &[("n", &more.to_string())]);
        html.push(escape_html(&and));
        text.push(and);
    }
    (text.join("\n"), html.join("<br>"))
}

impl Facts<'_> {
    fn link(&self, server: &str) -> Option<String> {
        let base = self.public_url?;
        let name: String = url::form_urlencoded::byte_serialize(server.as_bytes()).collect();
        Some(format!("{base}/server/{name}"))
    }

    fn time(&self, at: i64) -> String {
        OffsetDateTime::from_unix_timestamp(at)
            .map_or_else(|_| at.to_string(), |t| self.t.datetime(t))
    }

    fn word(&self, s: Status) -> &str {
        crate::i18n::status_word(self.t, s)
    }

    /// `key` filled in twice: as text, and as HTML with the server in bold.
    fn both(&self, key: Key, args: &[(&str, &str)]) -> (String, String) {
        let text = self.t.f(key, args);
        let escaped: Vec<(&str, String)> = args
            .iter()
            .map(|(k, v)| {
                let v = escape_html(v);
                (
                    *k,
                    if *k == "server" {
                        format!("<b>{v}</b>")
                    } else {
                        v
                    },
                )
            })
            .collect();
        let refs: Vec<(&str, &str)> = escaped.iter().map(|(k, v)| (*k, v.as_str())).collect();
        (text, self.t.f(key, &refs))
    }

    /// The line that names `server` with `open`'s status and reason.
    fn headline(&self, server: &str, open: &Open) -> (String, String) {
        self.both(
            key::ALERT_FIRED,
            &[
                ("symbol", open.status.symbol()),
                ("server", server),
                ("status", self.word(open.status)),
                ("reason", &open.reason),
            ],
        )
    }

    /// The first message of a one-server alert as it reads while open: status, reason, since
    /// when, and the link.
    pub(crate) fn opened(&self, server: &str, open: &Open) -> (String, String) {
        let (mut text, mut html) = self.headline(server, open);
        let since = self
            .t
            .f(key::ALERT_SINCE, &[("time", &self.time(open.since))]);
        text.push_str(&format!("\n{since}"));
        html.push_str(&format!("<br>{}", escape_html(&since)));
        if let Some(link) = self.link(server) {
            let details = self.t.t(key::ALERT_DETAILS);
            text.push_str(&format!(" · {details}: {link}"));
            html.push_str(&format!(
                " · <a href=\"{}\">{}</a>",
                escape_html(&link),
                escape_html(details)
            ));
        }
        (text, html)
    }

    /// The first message of a one-server alert once it recovered: "resolved after …" over
    /// the struck-through alert.
    fn resolved(&self, server: &str, open: &Open, at: i64) -> (String, String) {
        let took = duration(self.t, at - open.since);
        let (head_t, head_h) = self.both(key::ALERT_RESOLVED, &[("duration", &took)]);
        let (was_t, was_h) = self.opened(server, open);
        (
            format!("{head_t}\n{was_t}"),
            format!("<b>{head_h}</b><br><del>{was_h}</del>"),
        )
    }

    /// One member's line in a group's first message, with its link.
    fn member_line(&self, thread: &str, m: &Member) -> (String, String) {
        let (mut text, mut html) = match m.resolved_at {
            None => {
                let (t, h) = self.headline(&m.server, &m.open(thread));
                let since = self.t.f(key::ALERT_SINCE, &[("time", &self.time(m.since))]);
                (
                    format!("{t} ({since})"),
                    format!("{h} ({})", escape_html(&since)),
                )
            }
            Some(at) => self.both(
                key::ALERT_MEMBER_RESOLVED,
                &[
                    ("server", &m.server),
                    ("duration", &duration(self.t, at - m.since)),
                ],
            ),
        };
        if let Some(link) = self.link(&m.server) {
            let details = self.t.t(key::ALERT_DETAILS);
            text.push_str(&format!(" · {link}"));
            html.push_str(&format!(
                " · <a href=\"{}\">{}</a>",
                escape_html(&link),
                escape_html(details)
            ));
        }
        (text, html)
    }

    /// The first message of `thread` as it reads with `members`: one server's alert as it
    /// always read, or a group's: how many have a problem, then a line per server (the
    /// recovered ones say so), at most [`MAX_LINES`].
    pub(crate) fn root(&self, thread: &str, members: &[Member]) -> (String, String) {
        if let [m] = members {
            return match m.resolved_at {
                None => self.opened(&m.server, &m.open(thread)),
                Some(at) => self.resolved(&m.server, &m.open(thread), at),
            };
        }
        let open = members.iter().filter(|m| m.resolved_at.is_none()).count();
        let (head_t, head_h) = if open == 0 {
            let since = members.iter().map(|m| m.since).min().unwrap_or(0);
            let until = members
                .iter()
                .filter_map(|m| m.resolved_at)
                .max()
                .unwrap_or(since);
            let (t, h) = self.both(
                key::ALERT_GROUP_RESOLVED,
                &[
                    ("count", &members.len().to_string()),
                    ("duration", &duration(self.t, until - since)),
                ],
            );
            (t, format!("<b>{h}</b>"))
        } else {
            let worst = members
                .iter()
                .filter(|m| m.resolved_at.is_none())
                .map(|m| m.status)
                .max_by_key(|s| u8::from(*s == Status::Red))
                .unwrap_or(Status::Red);
            self.both(
                key::ALERT_GROUP,
                &[
                    ("symbol", worst.symbol()),
                    ("count", &open.to_string()),
                    ("total", &members.len().to_string()),
                ],
            )
        };
        let (list_t, list_h) = lines(
            self.t,
            members
                .iter()
                .map(|m| self.member_line(thread, m))
                .collect(),
        );
        (
            format!("{head_t}\n{list_t}"),
            format!("{head_h}<br>{list_h}"),
        )
    }

    /// The reply in a thread for the changes of one batch: what each member became.
    pub(crate) fn reply(&self, thread: &str, changes: &[(Member, Decision)]) -> (String, String) {
        let all = changes
            .iter()
            .map(|(m, d)| match (d, m.resolved_at) {
                (Decision::Resolve, Some(at)) => self.both(
                    key::ALERT_RESOLVED_REPLY,
                    &[
                        ("server", &m.server),
                        ("status", self.word(Status::Green)),
                        ("duration", &duration(self.t, at - m.since)),
                        ("was", self.word(m.status)),
                        ("time", &self.time(m.since)),
                    ],
                ),
                _ => {
                    let open = m.open(thread);
                    self.both(
                        key::ALERT_CHANGED,
                        &[
                            ("symbol", open.status.symbol()),
                            ("server", &m.server),
                            ("status", self.word(open.status)),
                            ("reason", &open.reason),
                        ],
                    )
                }
            })
            .collect();
        lines(self.t, all)
    }

    /// The message of an operator's note on `server`, as `kind`: text and HTML for a room
    /// (the server in bold, the note quoted as written), or a webhook's JSON document.
    pub(crate) fn note(&self, kind: Kind, server: &str, note: &Note) -> NewMessage {
        let key = match (note.resolves, note.text.is_empty()) {
            (true, true) => key::ALERT_NOTE_RESOLVED_EMPTY,
            (true, false) => key::ALERT_NOTE_RESOLVED,
            (false, _) => key::ALERT_NOTE,
        };
        let (mut body, mut html) = self.both(
            key,
            &[("server", server), ("by", &note.by), ("text", &note.text)],
        );
        if let Some(link) = self.link(server) {
            let details = self.t.t(key::ALERT_DETAILS);
            body.push_str(&format!(" · {details}: {link}"));
            html.push_str(&format!(
                " · <a href=\"{}\">{}</a>",
                escape_html(&link),
                escape_html(details)
            ));
        }
        if kind == Kind::Webhook {
            let at = note.at.unix_timestamp();
            html = json!({
                "event": "note",
                "server": server,
                "by": note.by,
                "note": note.text,
                "resolves": note.resolves,
                "at": at,
                "url": self.link(server),
                "text": body,
            })
            .to_string();
        }
        NewMessage { kind, body, html }
    }

    /// A webhook's JSON document for `decision` on `change`; `open` is the alert before (a
    /// change or a recovery) or after (a new alert). `None` when there is nothing to send.
    pub(crate) fn webhook(
        &self,
        decision: Decision,
        change: &Change,
        before: Option<&Open>,
        after: Option<&Open>,
    ) -> Option<NewMessage> {
        let open = after.or(before)?;
        let kind = match decision {
            Decision::Fire => "fired",
            Decision::Change => "changed",
            Decision::Resolve => "resolved",
            Decision::Nothing | Decision::Close => return None,
        };
        let server = change.server.as_str();
        let (text, _) = match decision {
            Decision::Resolve => self.reply(
                &open.thread,
                &[(
                    Member {
                        server: server.to_owned(),
                        status: open.status,
                        since: open.since,
                        reason: open.reason.clone(),
                        resolved_at: Some(change.at),
                    },
                    Decision::Resolve,
                )],
            ),
            Decision::Change => self.both(
                key::ALERT_CHANGED,
                &[
                    ("symbol", open.status.symbol()),
                    ("server", server),
                    ("status", self.word(open.status)),
                    ("reason", &open.reason),
                ],
            ),
            _ => self.opened(server, open),
        };
        let doc = json!({
            "event": kind,
            "server": server,
            "status": change.to.as_str(),
            "previous": change.from.as_str(),
            "reason": change.reason_text,
            "reason_text": (change.to != Status::Green).then(|| open.reason.clone()),
            "at": change.at,
            "since": open.since,
            "duration_s": (decision == Decision::Resolve).then(|| change.at - open.since),
            "url": self.link(server),
            "text": text,
        });
        Some(NewMessage {
            kind: Kind::Webhook,
            body: text,
            html: doc.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::{Green, Red, Unknown, Yellow};

    #[test]
    fn alerts_follow_confirmed_changes_once() {
        let default = [Red, Green];
        assert_eq!(decide(None, Red, &default), Decision::Fire);
        // Confirmed again after a crash, or yellow while red is open: nothing new.
        assert_eq!(decide(Some(Red), Red, &default), Decision::Nothing);
        assert_eq!(decide(Some(Red), Yellow, &default), Decision::Nothing);
        assert_eq!(decide(None, Yellow, &default), Decision::Nothing);
        assert_eq!(decide(Some(Red), Green, &default), Decision::Resolve);
        // A recovery with nothing open (never alerted, or resolved before a crash).
        assert_eq!(decide(None, Green, &default), Decision::Nothing);
        assert_eq!(decide(Some(Red), Unknown, &default), Decision::Nothing);
        let all = [Red, Yellow, Green];
        assert_eq!(decide(None, Yellow, &all), Decision::Fire);
        assert_eq!(decide(Some(Yellow), Red, &all), Decision::Change);
        assert_eq!(decide(Some(Red), Yellow, &all), Decision::Change);
        // Recoveries not wanted: the alert closes silently.
        assert_eq!(decide(Some(Red), Green, &[Red]), Decision::Close);
    }

    #[test]
    fn a_maintenance_window_replaces_the_alerts_and_its_end_is_said() {
        use Status::Maintenance;
        let default = [Red, Green];
        // Its start: one message, or the open alert changed into it.
        assert_eq!(decide(None, Maintenance, &default), Decision::Fire);
        assert_eq!(decide(Some(Red), Maintenance, &default), Decision::Change);
        assert_eq!(
            decide(Some(Maintenance), Maintenance, &default),
            Decision::Nothing
        );
        // Its end: resolved, even where recoveries are not announced...
        assert_eq!(
            decide(Some(Maintenance), Green, &default),
            Decision::Resolve
        );
        assert_eq!(decide(Some(Maintenance), Green, &[Red]), Decision::Resolve);
        assert_eq!(
            decide(Some(Maintenance), Yellow, &default),
            Decision::Resolve
        );
        // ...unless the server is still down: then it alerts at once.
        assert_eq!(decide(Some(Maintenance), Red, &default), Decision::Change);
        assert_eq!(
            decide(Some(Maintenance), Yellow, &[Red, Yellow]),
            Decision::Change
        );
    }

    fn member(server: &str, status: Status, resolved_at: Option<i64>) -> Member {
        Member {
            server: server.into(),
            status,
            since: 1_700_000_000,
            reason: "<script>".into(),
            resolved_at,
        }
    }

    #[test]
    fn a_note_is_quoted_as_written_and_escaped_in_html() {
        let f = Facts {
            t: crate::i18n::english(),
            public_url: Some("https://status.example.org"),
        };
        let note = Note {
            at: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            by: "@op:a.test".into(),
            text: "restarting <script>".into(),
            resolves: false,
        };
        let m = f.note(Kind::Reply, "a.test", &note);
        assert_eq!(
            m.body,
            "📝 a.test: @op:a.test says: restarting <script> · details: https://status.example.org/server/a.test"
        );
        assert!(m.html.contains("<b>a.test</b>") && m.html.contains("restarting &lt;script&gt;"));
        let done = Note {
            text: String::new(),
            resolves: true,
            ..note.clone()
        };
        let hook = f.note(Kind::Webhook, "a.test", &done);
        let doc: serde_json::Value = serde_json::from_str(&hook.html).unwrap();
        assert_eq!(doc["event"], "note");
        assert_eq!(doc["resolves"], true);
        assert!(
            hook.body
                .starts_with("✓ a.test: @op:a.test resolved the incident ·")
        );
        let zh = Facts {
            t: crate::i18n::find("zh").unwrap(),
            public_url: None,
        };
        assert_eq!(
            zh.note(Kind::Fire, "a.test", &note).body,
            "📝 a.test：@op:a.test 说明：restarting <script>"
        );
    }

    #[test]
    fn messages_escape_what_a_server_said_and_link_the_detail_page() {
        let f = Facts {
            t: crate::i18n::english(),
            public_url: Some("https://status.example.org"),
        };
        let down = member("a.example", Red, None);
        let (text, html) = f.root("t", std::slice::from_ref(&down));
        assert!(text.starts_with("✖ a.example is down: <script>"), "{text}");
        assert!(
            text.contains("https://status.example.org/server/a.example"),
            "{text}"
        );
        assert!(
            html.contains("<b>a.example</b>") && html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
        let up = member("a.example", Red, Some(1_700_000_000 + 14 * 60));
        let (text, _) = f.root("t", std::slice::from_ref(&up));
        assert!(
            text.starts_with("✓ resolved after 14 min\n✖ a.example is down"),
            "{text}"
        );
        let (text, _) = f.reply("t", &[(up, Decision::Resolve)]);
        assert!(
            text.starts_with("✓ a.example is operational again, after 14 min"),
            "{text}"
        );
        let change = Change {
            server: "a.example".into(),
            at: 1_700_000_000 + 14 * 60,
            from: Red,
            to: Green,
            reason: String::new(),
            reason_text: None,
        };
        let hook = f
            .webhook(Decision::Resolve, &change, Some(&down.open("t")), None)
            .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&hook.html).unwrap();
        assert_eq!(doc["event"], "resolved");
        assert_eq!(doc["duration_s"], 14 * 60);
        assert_eq!(doc["status"], "green");
    }

    #[test]
    fn a_group_names_every_server_up_to_fifty_then_counts_the_rest() {
        let f = Facts {
            t: crate::i18n::english(),
            public_url: None,
        };
        let mut members: Vec<Member> = (0..60)
            .map(|i| member(&format!("s{i:02}.test"), Red, None))
            .collect();
        members[1].status = Yellow;
        members[2].resolved_at = Some(1_700_000_000 + 300);
        let (text, html) = f.root("t", &members);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "✖ 59 of 60 servers have a problem", "{text}");
        assert!(
            lines[1].starts_with("✖ s00.test is down: <script> (since "),
            "{text}"
        );
        assert!(lines[2].starts_with("▲ s01.test is degraded"), "{text}");
        assert_eq!(lines[3], "✓ s02.test: resolved after 5 min");
        assert_eq!(lines.len(), 1 + 50 + 1, "{text}");
        assert_eq!(lines[51], "… and 10 more");
        assert!(html.contains("<b>s00.test</b>") && !html.contains("<script>"));
        for m in &mut members {
            m.resolved_at.get_or_insert(1_700_000_000 + 600);
        }
        let (text, _) = f.root("t", &members);
        assert!(
            text.starts_with("✓ all 60 servers resolved, after 10 min\n"),
            "{text}"
        );
        let zh = Facts {
            t: crate::i18n::find("zh").unwrap(),
            public_url: None,
        };
        let (text, _) = zh.root("t", &members[..2]);
        assert!(!text.contains("servers"), "{text}");
    }
}
