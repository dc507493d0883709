//! What an alert says, and when one is due: the decision per status change (pure, tested
//! without a network), and the words in the channel's language.

use serde_json::json;
use time::OffsetDateTime;

use super::outbox::{Kind, NewMessage, Open};
use crate::history::events::Event;
use crate::i18n::Locale;
use crate::report::Status;
use crate::text::escape_html;

/// What a confirmed status change means for one channel's open alert of that server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
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
pub fn decide(open: Option<Status>, to: Status, on: &[Status]) -> Decision {
    match (open, to) {
        (_, Status::Unknown) => Decision::Nothing,
        (None, Status::Green) => Decision::Nothing,
        (Some(_), Status::Green) if on.contains(&Status::Green) => Decision::Resolve,
        (Some(_), Status::Green) => Decision::Close,
        (None, s) if on.contains(&s) => Decision::Fire,
        (Some(was), s) if was != s && on.contains(&s) => Decision::Change,
        _ => Decision::Nothing,
    }
}

/// The facts a message is written from.
pub struct Facts<'a> {
    /// The channel's language.
    pub t: &'a Locale,
    /// The server.
    pub server: &'a str,
    /// `[web] public_url`, for the detail page's link.
    pub public_url: Option<&'a str>,
}

/// "14 min", "2 h 5 min", "3 d 4 h".
pub fn duration(t: &Locale, seconds: i64) -> String {
    let minutes = (seconds.max(0) + 30) / 60;
    let unit = |key: &str, n: i64| t.f(key, &[("n", &n.to_string())]);
    match minutes {
        m if m < 60 => unit("unit_minutes", m.max(1)),
        m if m < 24 * 60 => {
            let (h, m) = (m / 60, m % 60);
            if m == 0 {
                unit("unit_hours", h)
            } else {
                format!("{} {}", unit("unit_hours", h), unit("unit_minutes", m))
            }
        }
        m => {
            let (d, h) = (m / (24 * 60), m % (24 * 60) / 60);
            if h == 0 {
                unit("unit_days", d)
            } else {
                format!("{} {}", unit("unit_days", d), unit("unit_hours", h))
            }
        }
    }
}

impl Facts<'_> {
    fn link(&self) -> Option<String> {
        let base = self.public_url?;
        let name: String = url::form_urlencoded::byte_serialize(self.server.as_bytes()).collect();
        Some(format!("{base}/server/{name}"))
    }

    fn time(&self, at: i64) -> String {
        OffsetDateTime::from_unix_timestamp(at)
            .map_or_else(|_| at.to_string(), |t| self.t.datetime(t))
    }

    /// `key` filled in twice: as text, and as HTML with the server in bold.
    fn both(&self, key: &str, args: &[(&str, &str)]) -> (String, String) {
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

    /// The first message, as it reads while the alert is open: status, reason, since when,
    /// and the link.
    pub fn opened(&self, open: &Open) -> (String, String) {
        let (mut text, mut html) = self.both(
            "alert_fired",
            &[
                ("symbol", open.status.symbol()),
                ("server", self.server),
                ("status", crate::web::status_word(self.t, open.status)),
                ("reason", &open.reason),
            ],
        );
        let since = self.t.f("alert_since", &[("time", &self.time(open.since))]);
        text.push_str(&format!("\n{since}"));
        html.push_str(&format!("<br>{}", escape_html(&since)));
        if let Some(link) = self.link() {
            let details = self.t.t("alert_details");
            text.push_str(&format!(" · {details}: {link}"));
            html.push_str(&format!(
                " · <a href=\"{}\">{}</a>",
                escape_html(&link),
                escape_html(details)
            ));
        }
        (text, html)
    }

    /// The messages for `decision` on `event`; `open` is the alert before (for a change or a
    /// recovery) or after (for a new alert). Matrix channels get a first message, or an edit
    /// and a thread reply; webhooks one JSON document.
    pub fn messages(
        &self,
        decision: Decision,
        event: &Event,
        before: Option<&Open>,
        after: Option<&Open>,
        webhook: bool,
    ) -> Vec<NewMessage> {
        let message = |kind, (body, html): (String, String)| NewMessage { kind, body, html };
        if webhook {
            let Some(open) = after.or(before) else {
                return Vec::new();
            };
            let (text, _) = match decision {
                Decision::Resolve => self.resolved_reply(open, event.at),
                Decision::Change => self.changed(after.unwrap_or(open)),
                _ => self.opened(open),
            };
            let kind = match decision {
                Decision::Fire => "fired",
                Decision::Change => "changed",
                Decision::Resolve => "resolved",
                Decision::Nothing | Decision::Close => return Vec::new(),
            };
            let doc = json!({
                "event": kind,
                "server": self.server,
                "status": event.to.as_str(),
                "previous": event.from.as_str(),
                "reason": event.reason.as_ref().map(ToString::to_string),
                "reason_text": (event.to != Status::Green).then(|| open.reason.clone()),
                "at": event.at,
                "since": open.since,
                "duration_s": (decision == Decision::Resolve).then(|| event.at - open.since),
                "url": self.link(),
                "text": text,
            });
            return vec![message(Kind::Webhook, (text, doc.to_string()))];
        }
        match (decision, before, after) {
            (Decision::Fire, _, Some(open)) => vec![message(Kind::Fire, self.opened(open))],
            (Decision::Change, Some(_), Some(open)) => vec![
                message(Kind::Edit, self.opened(open)),
                message(Kind::Reply, self.changed(open)),
            ],
            (Decision::Resolve, Some(open), _) => {
                let took = duration(self.t, event.at - open.since);
                let (head_t, head_h) = self.both("alert_resolved", &[("duration", &took)]);
                let (was_t, was_h) = self.opened(open);
                vec![
                    message(
                        Kind::Edit,
                        (
                            format!("{head_t}\n{was_t}"),
                            format!("<b>{head_h}</b><br><del>{was_h}</del>"),
                        ),
                    ),
                    message(Kind::Reply, self.resolved_reply(open, event.at)),
                ]
            }
            _ => Vec::new(),
        }
    }

    fn changed(&self, open: &Open) -> (String, String) {
        self.both(
            "alert_changed",
            &[
                ("symbol", open.status.symbol()),
                ("server", self.server),
                ("status", crate::web::status_word(self.t, open.status)),
                ("reason", &open.reason),
            ],
        )
    }

    fn resolved_reply(&self, open: &Open, at: i64) -> (String, String) {
        self.both(
            "alert_resolved_reply",
            &[
                ("server", self.server),
                ("status", crate::web::status_word(self.t, Status::Green)),
                ("duration", &duration(self.t, at - open.since)),
                ("was", crate::web::status_word(self.t, open.status)),
                ("time", &self.time(open.since)),
            ],
        )
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
    fn durations_read_as_people_write_them() {
        let t = crate::i18n::english();
        assert_eq!(duration(t, 14 * 60 + 10), "14 min");
        assert_eq!(duration(t, 5), "1 min");
        assert_eq!(duration(t, 2 * 3600 + 5 * 60), "2 h 5 min");
        assert_eq!(duration(t, 3 * 3600), "3 h");
        assert_eq!(duration(t, 3 * 86_400 + 4 * 3600), "3 d 4 h");
        let zh = crate::i18n::find("zh").unwrap();
        assert_eq!(duration(zh, 14 * 60), "14 分钟");
    }

    #[test]
    fn messages_escape_what_a_server_said_and_link_the_detail_page() {
        let t = crate::i18n::english();
        let f = Facts {
            t,
            server: "a.example",
            public_url: Some("https://status.example.org"),
        };
        let open = Open {
            status: Red,
            since: 1_700_000_000,
            reason: "<script>".into(),
            thread: "x".into(),
        };
        let (text, html) = f.opened(&open);
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
        let event = Event {
            server: "a.example".into(),
            at: open.since + 14 * 60,
            from: Red,
            to: Green,
            reason: None,
        };
        let m = f.messages(Decision::Resolve, &event, Some(&open), None, false);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].kind, m[1].kind), (Kind::Edit, Kind::Reply));
        assert!(
            m[0].body
                .starts_with("✓ resolved after 14 min\n✖ a.example is down"),
            "{}",
            m[0].body
        );
        assert!(
            m[1].body
                .starts_with("✓ a.example is operational again, after 14 min"),
            "{}",
            m[1].body
        );
        let hook = f.messages(Decision::Resolve, &event, Some(&open), None, true);
        let doc: serde_json::Value = serde_json::from_str(&hook[0].html).unwrap();
        assert_eq!(doc["event"], "resolved");
        assert_eq!(doc["duration_s"], 14 * 60);
        assert_eq!(doc["status"], "green");
    }
}
