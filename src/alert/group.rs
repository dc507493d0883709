//! Grouping, as Alertmanager groups: when many servers change status at once (the monitor's
//! own network, a hosting provider, a DNS outage), one message per room names them all,
//! instead of one message per server flooding the room and then draining for minutes at the
//! homeserver's rate limit.
//!
//! Each confirmed change goes into its channel's batch, in the outbox, in one transaction:
//! - a change on a quiet channel (nothing sent within `group_wait`) is sent at once, so a
//!   single outage alerts as fast as ever;
//! - otherwise it waits, and every change confirmed within `group_wait` of the last one joins
//!   it (but no batch waits longer than ten `group_wait`s); then the batch is sent: the new
//!   alerts as one first message naming each server (a single one reads as always), and per
//!   alert already sent, one edit of its first message and one reply listing what changed.
//!
//! A batch is decided change by change against each server's open alert ([`decide`]), after
//! the wait: a server that went down and came back within it says nothing. An alert whose
//! first message has not started to leave when a member recovers is rewritten in place (the
//! recovered server leaves it unseen), and dropped with its follow-ups when none is left, so
//! nothing is sent late about an outage that is over. Webhooks are not grouped: each change
//! is one POST, for receivers that track each server.

use rusqlite::Transaction;

use super::message::{Decision, Facts, decide};
use super::outbox::{self, Batch, Change, Kind, Member, NewMessage, Open, new_txn_id};
use crate::status::Status;

/// How one channel groups and words its changes.
pub(crate) struct Rules<'a> {
    /// The channel's outbox key.
    pub channel: &'a str,
    /// The statuses that alert.
    pub on: &'a [Status],
    /// `group_wait`, seconds (0: every change at once).
    pub group_wait_s: i64,
    /// One POST per change, never grouped.
    pub webhook: bool,
    /// The words.
    pub facts: Facts<'a>,
}

/// The longest a batch waits, in `group_wait`s.
const MAX_WAITS: i64 = 10;

/// What adding changes to a batch, or sending it, did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Messages queued.
    pub queued: usize,
    /// Alerts whose first message had not left dropped, because they were over.
    pub dropped: usize,
    /// The change waits for others to group with, until this time.
    pub waiting_until: Option<i64>,
}

/// Adds `change` to the channel's batch at `now`, and sends the batch at once when the channel
/// is quiet.
pub(crate) fn queue(
    tx: &Transaction<'_>,
    rules: &Rules<'_>,
    change: &Change,
    now: i64,
) -> rusqlite::Result<Outcome> {
    outbox::add_pending(tx, rules.channel, change)?;
    let batch = outbox::batch(tx, rules.channel)?;
    let quiet = batch.due.is_none() && now - batch.last_flush_at >= rules.group_wait_s;
    if rules.webhook || rules.group_wait_s == 0 || quiet {
        return flush(tx, rules, now);
    }
    let started = batch.started_at.unwrap_or(now);
    let due = (now + rules.group_wait_s).min(started + MAX_WAITS * rules.group_wait_s);
    outbox::set_batch(
        tx,
        rules.channel,
        Batch {
            started_at: Some(started),
            due: Some(due),
            ..batch
        },
    )?;
    Ok(Outcome {
        waiting_until: Some(due),
        ..Outcome::default()
    })
}

/// Sends the channel's batch if it is due at `now`.
pub(crate) fn flush_due(
    tx: &Transaction<'_>,
    rules: &Rules<'_>,
    now: i64,
) -> rusqlite::Result<Outcome> {
    match outbox::batch(tx, rules.channel)?.due {
        Some(due) if due <= now => flush(tx, rules, now),
        _ => Ok(Outcome::default()),
    }
}

/// Turns the channel's waiting changes into messages.
fn flush(tx: &Transaction<'_>, rules: &Rules<'_>, now: i64) -> rusqlite::Result<Outcome> {
    let channel = rules.channel;
    let changes = outbox::take_pending(tx, channel)?;
    let last_flush_at = outbox::batch(tx, channel)?.last_flush_at;
    let mut out = Outcome::default();
    let mut fired: Vec<&Change> = Vec::new();
    // Per alert already open: its members' changes in this batch.
    let mut touched: Vec<(String, Vec<(String, Decision)>)> = Vec::new();
    for c in &changes {
        let before = outbox::open(tx, channel, &c.server)?;
        let decision = decide(before.as_ref().map(|o| o.status), c.to, rules.on);
        let after = match decision {
            Decision::Fire => {
                if rules.webhook {
                    let txn = new_txn_id();
                    Some(Open {
                        status: c.to,
                        since: c.at,
                        reason: c.reason.clone(),
                        thread: txn,
                    })
                } else {
                    // Opened below, with the others of this batch.
                    fired.push(c);
                    continue;
                }
            }
            Decision::Change => before.clone().map(|o| Open {
                status: c.to,
                reason: c.reason.clone(),
                ..o
            }),
            Decision::Nothing => continue,
            Decision::Resolve | Decision::Close => None,
        };
        outbox::set_open(tx, channel, &c.server, after.as_ref())?;
        if rules.webhook {
            if let Some(m) = rules
                .facts
                .webhook(decision, c, before.as_ref(), after.as_ref())
            {
                let thread = after.as_ref().or(before.as_ref()).map(|o| o.thread.clone());
                let txn = new_txn_id();
                let thread = thread.unwrap_or_else(|| txn.clone());
                outbox::push(tx, channel, &thread, &txn, &m, now)?;
                out.queued += 1;
            }
            continue;
        }
        let Some(thread) = before.map(|o| o.thread) else {
            continue;
        };
        let members = outbox::members(tx, &thread)?;
        if let Some(mut m) = members.into_iter().find(|m| m.server == c.server) {
            match &after {
                Some(o) => {
                    m.status = o.status;
                    m.reason = o.reason.clone();
                }
                None => m.resolved_at = Some(c.at),
            }
            outbox::set_member(tx, &thread, &m)?;
        }
        match touched.iter_mut().find(|(t, _)| *t == thread) {
            Some((_, list)) => list.push((c.server.clone(), decision)),
            None => touched.push((thread, vec![(c.server.clone(), decision)])),
        }
    }
    if !fired.is_empty() {
        // The new alerts: one first message naming each (its transaction ID is the thread).
        let thread = new_txn_id();
        let mut members = Vec::with_capacity(fired.len());
        for c in &fired {
            let open = Open {
                status: c.to,
                since: c.at,
                reason: c.reason.clone(),
                thread: thread.clone(),
            };
            outbox::set_open(tx, channel, &c.server, Some(&open))?;
            let m = Member {
                server: c.server.clone(),
                status: c.to,
                since: c.at,
                reason: c.reason.clone(),
                resolved_at: None,
            };
            outbox::set_member(tx, &thread, &m)?;
            members.push(m);
        }
        let (body, html) = rules.facts.root(&thread, &members);
        let m = NewMessage {
            kind: Kind::Fire,
            body,
            html,
        };
        outbox::push(tx, channel, &thread, &thread, &m, now)?;
        out.queued += 1;
    }
    for (thread, list) in touched {
        match follow_up(tx, rules, &thread, &list, now)? {
            Some(n) => out.queued += n,
            None => out.dropped += 1,
        }
    }
    // Quiet means nothing was said lately: a batch that said nothing (a status that does not
    // alert, a flap) does not make the next change wait.
    outbox::set_batch(
        tx,
        channel,
        Batch {
            last_flush_at: if out.queued > 0 { now } else { last_flush_at },
            started_at: None,
            due: None,
        },
    )?;
    Ok(out)
}

/// What the changes `list` (server, decision) of one batch mean for the alert `thread`: how
/// many messages were queued, or `None` when the alert was dropped unsent.
fn follow_up(
    tx: &Transaction<'_>,
    rules: &Rules<'_>,
    thread: &str,
    list: &[(String, Decision)],
    now: i64,
) -> rusqlite::Result<Option<usize>> {
    let mut members = outbox::members(tx, thread)?;
    if let Some(root) = outbox::unsent_root(tx, thread)? {
        // Not announced yet: it is rewritten to say what is true now, and a server that
        // recovered meanwhile leaves it unseen (nothing is sent late about it).
        for m in members.iter().filter(|m| m.resolved_at.is_some()) {
            outbox::drop_members(tx, thread, Some(&m.server))?;
        }
        members.retain(|m| m.resolved_at.is_none());
        if members.is_empty() {
            outbox::drop_queued(tx, thread, false)?;
            return Ok(None);
        }
        outbox::drop_queued(tx, thread, true)?;
        let (body, html) = rules.facts.root(thread, &members);
        outbox::rewrite(tx, root, &body, &html)?;
        return Ok(Some(0));
    }
    let done = members.iter().all(|m| m.resolved_at.is_some());
    // Recoveries that do not alert here (`on` without green) close silently.
    let said: Vec<(Member, Decision)> = list
        .iter()
        .filter(|(_, d)| *d != Decision::Close)
        .filter_map(|(server, d)| {
            members
                .iter()
                .find(|m| &m.server == server)
                .map(|m| (m.clone(), *d))
        })
        .collect();
    if done {
        outbox::drop_members(tx, thread, None)?;
    }
    if said.is_empty() {
        return Ok(Some(0));
    }
    let (body, html) = rules.facts.root(thread, &members);
    let edit = NewMessage {
        kind: Kind::Edit,
        body,
        html,
    };
    outbox::push(tx, rules.channel, thread, &new_txn_id(), &edit, now)?;
    let (body, html) = rules.facts.reply(thread, &said);
    let reply = NewMessage {
        kind: Kind::Reply,
        body,
        html,
    };
    outbox::push(tx, rules.channel, thread, &new_txn_id(), &reply, now)?;
    Ok(Some(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::outbox::Outbox;
    use Status::{Green, Red, Yellow};

    const ON: [Status; 2] = [Red, Green];

    fn rules(group_wait_s: i64) -> Rules<'static> {
        Rules {
            channel: "c",
            on: &ON,
            group_wait_s,
            webhook: false,
            facts: Facts {
                t: crate::i18n::english(),
                public_url: None,
            },
        }
    }

    fn change(server: &str, at: i64, from: Status, to: Status) -> Change {
        Change {
            server: server.into(),
            at,
            from,
            to,
            reason: "refused".into(),
            reason_text: None,
        }
    }

    /// Queues `c` at its time; the messages queued.
    fn queue_at(o: &Outbox, r: &Rules<'_>, c: Change) -> usize {
        o.transaction(|tx| queue(tx, r, &c, c.at)).unwrap().queued
    }

    fn flush_at(o: &Outbox, r: &Rules<'_>, now: i64) -> usize {
        o.transaction(|tx| flush_due(tx, r, now)).unwrap().queued
    }

    /// Sends every queued message: (kind, first line of the text), and records roots.
    fn send_all(o: &Outbox) -> Vec<(Kind, String)> {
        let mut out = Vec::new();
        while let Some(m) = o.next("c").unwrap() {
            let root = (m.kind == Kind::Fire).then(|| (m.thread.clone(), "!r", "$root"));
            o.done(m.id, root.as_ref().map(|(t, r, e)| (t.as_str(), *r, *e)), 0)
                .unwrap();
            out.push((m.kind, m.body.lines().next().unwrap_or("").to_owned()));
        }
        out
    }

    #[test]
    fn a_single_change_on_a_quiet_channel_goes_at_once() {
        let (o, r) = (Outbox::open(None).unwrap(), rules(30));
        assert_eq!(queue_at(&o, &r, change("a.test", 1000, Green, Red)), 1);
        assert_eq!(
            send_all(&o),
            vec![(Kind::Fire, "✖ a.test is down: refused".to_owned())]
        );
        // Its recovery, much later, also at once: an edit and a reply.
        assert_eq!(queue_at(&o, &r, change("a.test", 2000, Red, Green)), 2);
        let sent = send_all(&o);
        assert_eq!(sent[0], (Kind::Edit, "✓ resolved after 17 min".to_owned()));
        assert_eq!(sent[1].0, Kind::Reply);
    }

    #[test]
    fn six_servers_down_in_the_same_minute_are_two_messages_then_their_resolution() {
        let (o, r) = (Outbox::open(None).unwrap(), rules(30));
        let servers = ["a", "b", "c", "d", "e", "f"];
        // a first (at once), the others within 30 s of each other, over 50 s.
        let mut queued = 0;
        for (i, s) in servers.iter().enumerate() {
            queued += queue_at(
                &o,
                &r,
                change(&format!("{s}.test"), 1000 + i as i64 * 10, Green, Red),
            );
        }
        assert_eq!(queued, 1, "only a's alert before the batch is due");
        assert_eq!(o.due("c").unwrap(), Some(1050 + 30));
        assert_eq!(flush_at(&o, &r, 1079), 0, "not due yet");
        assert_eq!(flush_at(&o, &r, 1080), 1);
        let sent = send_all(&o);
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(
            sent[1],
            (Kind::Fire, "✖ 5 of 5 servers have a problem".to_owned())
        );
        // They recover together: a at once (quiet again), b..f in one edit and one reply.
        let mut queued = 0;
        for (i, s) in servers.iter().enumerate() {
            queued += queue_at(
                &o,
                &r,
                change(&format!("{s}.test"), 3000 + i as i64, Red, Green),
            );
        }
        assert_eq!(queued, 2);
        assert_eq!(flush_at(&o, &r, 3005 + 30), 2);
        let sent = send_all(&o);
        let kinds: Vec<Kind> = sent.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [Kind::Edit, Kind::Reply, Kind::Edit, Kind::Reply]);
        assert_eq!(sent[2].1, "✓ all 5 servers resolved, after 33 min");
        // Every alert is closed and no thread is left with members.
        o.transaction(|tx| {
            for s in servers {
                assert!(outbox::open(tx, "c", &format!("{s}.test"))?.is_none());
            }
            let left: i64 = tx.query_row("SELECT count(*) FROM alert_members", [], |r| r.get(0))?;
            assert_eq!(left, 0);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_change_that_says_nothing_does_not_make_the_next_one_wait() {
        let (o, r) = (Outbox::open(None).unwrap(), rules(30));
        // Yellow does not alert here: nothing is said, and red half a second later goes at once.
        assert_eq!(queue_at(&o, &r, change("a.test", 1000, Green, Yellow)), 0);
        assert_eq!(queue_at(&o, &r, change("a.test", 1001, Yellow, Red)), 1);
    }

    #[test]
    fn a_storm_never_waits_more_than_ten_group_waits() {
        let (o, r) = (Outbox::open(None).unwrap(), rules(30));
        queue_at(&o, &r, change("first.test", 1000, Green, Red));
        for i in 0..100 {
            queue_at(
                &o,
                &r,
                change(&format!("s{i}.test"), 1001 + i * 20, Green, Red),
            );
        }
        assert_eq!(o.due("c").unwrap(), Some(1001 + 300));
    }

    #[test]
    fn a_first_message_still_queued_when_its_alert_resolves_is_dropped_with_its_follow_ups() {
        let (o, r) = (Outbox::open(None).unwrap(), rules(30));
        queue_at(&o, &r, change("a.test", 1000, Green, Red));
        // The room does not take it (the homeserver is down); it recovers meanwhile.
        let c = change("a.test", 1100, Red, Green);
        let outcome = o.transaction(|tx| queue(tx, &r, &c, c.at)).unwrap();
        assert_eq!((outcome.queued, outcome.dropped), (0, 1));
        assert_eq!(o.queued("c").unwrap(), 0, "nothing is sent late");
        o.transaction(|tx| {
            assert!(outbox::open(tx, "c", "a.test")?.is_none());
            Ok(())
        })
        .unwrap();
        // A group whose first message waits: a recovered member leaves it unseen.
        queue_at(&o, &r, change("x.test", 5000, Green, Red));
        queue_at(&o, &r, change("y.test", 5001, Green, Red));
        queue_at(&o, &r, change("z.test", 5002, Green, Red));
        flush_at(&o, &r, 5100);
        assert_eq!(o.queued("c").unwrap(), 2, "x alone, then y and z");
        queue_at(&o, &r, change("y.test", 5200, Red, Green));
        queue_at(&o, &r, change("x.test", 5201, Red, Green));
        flush_at(&o, &r, 5300);
        let sent = send_all(&o);
        assert_eq!(
            sent,
            vec![(Kind::Fire, "✖ z.test is down: refused".to_owned())]
        );
    }

    #[test]
    fn a_message_that_started_to_leave_is_followed_up_not_rewritten() {
        let (o, r) = (Outbox::open(None).unwrap(), rules(30));
        queue_at(&o, &r, change("a.test", 1000, Green, Red));
        let root = o.next("c").unwrap().unwrap();
        // It is on its way when a recovers: the recovery follows it.
        assert_eq!(queue_at(&o, &r, change("a.test", 1100, Red, Green)), 2);
        o.done(root.id, Some((&root.thread, "!r", "$root")), 0)
            .unwrap();
        let kinds: Vec<Kind> = send_all(&o).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [Kind::Edit, Kind::Reply]);
    }

    #[test]
    fn a_flap_within_the_wait_says_nothing_and_changes_edit_their_alert() {
        let (o, r) = (Outbox::open(None).unwrap(), rules(30));
        queue_at(&o, &r, change("a.test", 1000, Green, Red));
        send_all(&o);
        // b goes down and comes back within the wait: nothing about b.
        queue_at(&o, &r, change("b.test", 1010, Green, Red));
        queue_at(&o, &r, change("b.test", 1020, Red, Green));
        flush_at(&o, &r, 2000);
        assert!(send_all(&o).is_empty());
        // With yellow alerting, a red alert turning yellow is an edit and a reply.
        let on = [Red, Yellow, Green];
        let r = Rules {
            on: &on,
            ..rules(30)
        };
        queue_at(&o, &r, change("a.test", 5000, Red, Yellow));
        let sent = send_all(&o);
        assert_eq!(
            sent[0],
            (Kind::Edit, "▲ a.test is degraded: refused".to_owned())
        );
        assert_eq!(
            sent[1],
            (Kind::Reply, "▲ a.test is now degraded: refused".to_owned())
        );
    }

    #[test]
    fn webhooks_get_one_post_per_change_at_once() {
        let o = Outbox::open(None).unwrap();
        let r = Rules {
            webhook: true,
            ..rules(30)
        };
        for (i, s) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(
                queue_at(
                    &o,
                    &r,
                    change(&format!("{s}.test"), 1000 + i as i64, Green, Red)
                ),
                1
            );
        }
        let sent = send_all(&o);
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|(k, _)| *k == Kind::Webhook));
    }
}
