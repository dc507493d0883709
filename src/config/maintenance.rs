//! `[[maintenance]]`: windows planned in the config (design.md "Maintenance and incidents"),
//! once (`start`, `end` in RFC 3339) or weekly (`every = "Sun 03:00"`, `duration`,
//! `timezone`), and the time arithmetic that says when one is open.

use jiff::civil::Weekday;
use toml::Spanned;

use super::problems::Problems;
use super::raw::RawMaintenance;

/// The longest a note may be, in characters (the page shows it in full).
pub const MAX_NOTE: usize = 500;

/// One `[[maintenance]]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MaintenanceConfig {
    /// Server names or globs (`*` stands for any run of characters).
    pub servers: Vec<String>,
    /// When it is open.
    pub when: When,
    /// What the page and the alert say about it.
    pub note: String,
}

/// When a window is open.
#[derive(Clone, Debug, PartialEq)]
pub enum When {
    /// From `start` to `end` (Unix seconds, end excluded).
    Once {
        /// Unix seconds.
        start: i64,
        /// Unix seconds.
        end: i64,
    },
    /// Every week at a local time.
    Weekly(Weekly),
}

/// A weekly window: every `weekday` at `hour:minute` in `timezone`, for `duration` seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Weekly {
    /// The day.
    pub weekday: Weekday,
    /// Local hour, 0–23.
    pub hour: i8,
    /// Local minute, 0–59.
    pub minute: i8,
    /// Seconds, less than a week.
    pub duration: i64,
    /// An IANA timezone name (`Europe/Berlin`, `UTC`).
    pub timezone: String,
}

/// Why a weekly window's `every` could not be read.
pub(crate) fn parse_every(text: &str) -> Result<(Weekday, i8, i8), String> {
    let mut words = text.split_whitespace();
    let (Some(day), Some(clock), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!("{text:?} is not a day and a time"));
    };
    let weekday = match day.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => return Err(format!("{day:?} is not a day of the week")),
    };
    let parsed = clock
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<i8>().ok()?, m.parse::<i8>().ok()?)))
        .filter(|(h, m)| (0..24).contains(h) && (0..60).contains(m) && clock.len() == 5);
    let Some((hour, minute)) = parsed else {
        return Err(format!("{clock:?} is not a time of day (HH:MM)"));
    };
    Ok((weekday, hour, minute))
}

impl Weekly {
    /// The start (Unix seconds) of the occurrence that began at or before `now`: the latest
    /// `weekday hour:minute` in the timezone (a local time skipped by a clock change starts
    /// when the clock reaches it).
    fn last_start(&self, now: i64) -> Option<i64> {
        let tz = jiff::tz::db().get(&self.timezone).ok()?;
        let today = jiff::Timestamp::from_second(now)
            .ok()?
            .to_zoned(tz.clone())
            .date();
        let back = i64::from(today.weekday().since(self.weekday));
        let mut day = today.checked_sub(jiff::Span::new().days(back)).ok()?;
        loop {
            let start = day
                .at(self.hour, self.minute, 0, 0)
                .to_zoned(tz.clone())
                .ok()?
                .timestamp()
                .as_second();
            if start <= now {
                return Some(start);
            }
            day = day.checked_sub(jiff::Span::new().days(7)).ok()?;
        }
    }

    /// The start of the first occurrence after `now`.
    fn next_start(&self, now: i64) -> Option<i64> {
        let tz = jiff::tz::db().get(&self.timezone).ok()?;
        let last = self.last_start(now)?;
        let day = jiff::Timestamp::from_second(last)
            .ok()?
            .to_zoned(tz.clone())
            .date()
            .checked_add(jiff::Span::new().days(7))
            .ok()?;
        Some(
            day.at(self.hour, self.minute, 0, 0)
                .to_zoned(tz)
                .ok()?
                .timestamp()
                .as_second(),
        )
    }
}

impl When {
    /// The occurrence (start, end) open at `now`, if any.
    pub fn open_at(&self, now: i64) -> Option<(i64, i64)> {
        match self {
            When::Once { start, end } => (*start <= now && now < *end).then_some((*start, *end)),
            When::Weekly(w) => {
                let start = w.last_start(now)?;
                (now < start + w.duration).then_some((start, start + w.duration))
            }
        }
    }

    /// Its occurrences (start, end) that overlap `from..to`.
    pub fn occurrences(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        match self {
            When::Once { start, end } => {
                if *start < to && *end > from {
                    vec![(*start, *end)]
                } else {
                    Vec::new()
                }
            }
            When::Weekly(w) => {
                let mut out = Vec::new();
                let mut start = w.last_start(from).or_else(|| w.next_start(from));
                while let Some(s) = start.filter(|s| *s < to) {
                    if s + w.duration > from {
                        out.push((s, s + w.duration));
                    }
                    start = w.next_start(s);
                }
                out
            }
        }
    }

    /// The next time after `now` at which the window opens or closes.
    pub fn next_change(&self, now: i64) -> Option<i64> {
        match self {
            When::Once { start, end } => [*start, *end].into_iter().find(|t| *t > now),
            When::Weekly(w) => match self.open_at(now) {
                Some((_, end)) => Some(end),
                None => w.next_start(now),
            },
        }
    }
}

fn time(v: &Spanned<String>, key: &str, p: &mut Problems<'_>) -> Option<i64> {
    match v.get_ref().trim().parse::<jiff::Timestamp>() {
        Ok(t) => Some(t.as_second()),
        Err(_) => {
            p.add(
                Some(v.span()),
                key,
                format!("{:?} is not an RFC 3339 time", v.get_ref()),
                "write a time with its offset, e.g. \"2026-12-24T03:00:00+01:00\" or \"2026-12-24T02:00:00Z\"",
            );
            None
        }
    }
}

/// Validates every `[[maintenance]]`; `names` are the `[[server]]` names, checked against
/// each pattern unless `lists` (servers also come from lists, known only once read).
pub(super) fn validate_maintenance(
    raw: &[RawMaintenance],
    names: &[&str],
    lists: bool,
    p: &mut Problems<'_>,
) -> Vec<MaintenanceConfig> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, m)| validate_one(i + 1, m, names, lists, p))
        .collect()
}

fn validate_one(
    n: usize,
    m: &RawMaintenance,
    names: &[&str],
    lists: bool,
    p: &mut Problems<'_>,
) -> Option<MaintenanceConfig> {
    let key = |field: &str| format!("[[maintenance]] #{n} {field}");
    let mut ok = true;
    let servers: Vec<String> = match &m.servers {
        None => {
            p.add(
                None,
                &key("servers"),
                "is not set".into(),
                "add servers = [\"matrix.example.org\"] (names or globs such as \"*.example.org\")",
            );
            ok = false;
            Vec::new()
        }
        Some(list) => {
            let globs = super::alerts::server_globs(list.iter(), &key("servers"), p);
            ok &= globs.len() == list.len();
            for g in &globs {
                let text = g.get_ref();
                if !lists && !names.iter().any(|n| super::glob_matches(text, n)) {
                    p.add(
                        Some(g.span()),
                        &key("servers"),
                        format!("{text:?} matches no [[server]]"),
                        "write the name of a listed server, or a glob that matches one",
                    );
                    ok = false;
                }
            }
            globs.into_iter().map(Spanned::into_inner).collect()
        }
    };
    if m.servers.as_ref().is_some_and(Vec::is_empty) {
        p.add(
            None,
            &key("servers"),
            "is empty, so the window covers nothing".into(),
            "list the servers it covers, e.g. servers = [\"matrix.example.org\"]",
        );
        ok = false;
    }
    let note = m
        .note
        .as_ref()
        .map_or(String::new(), |n| n.get_ref().trim().to_owned());
    if let Some(n) = &m.note
        && note.chars().count() > MAX_NOTE
    {
        p.add(
            Some(n.span()),
            &key("note"),
            format!("is {} characters long", note.chars().count()),
            format!("keep it to {MAX_NOTE} characters; link to a longer text"),
        );
        ok = false;
    }
    let once = m.start.is_some() || m.end.is_some();
    let weekly = m.every.is_some() || m.duration.is_some() || m.timezone.is_some();
    let when = match (once, weekly) {
        (true, true) => {
            let span = m
                .every
                .as_ref()
                .or(m.duration.as_ref())
                .or(m.timezone.as_ref());
            p.add(
                span.map(Spanned::span),
                &key("every"),
                "is set with start and end".into(),
                "a window is either once (start, end) or weekly (every, duration, timezone): keep one",
            );
            None
        }
        (false, false) => {
            p.add(
                None,
                &key("start"),
                "is not set, nor every".into(),
                "add start and end (RFC 3339), or every = \"Sun 03:00\" with duration and timezone",
            );
            None
        }
        (true, false) => once_window(&key, m, p),
        (false, true) => weekly_window(&key, m, p),
    };
    let when = when?;
    ok.then_some(MaintenanceConfig {
        servers,
        when,
        note,
    })
}

fn once_window(
    key: &dyn Fn(&str) -> String,
    m: &RawMaintenance,
    p: &mut Problems<'_>,
) -> Option<When> {
    let mut read = |v: &Option<Spanned<String>>, field: &str| match v {
        Some(v) => time(v, &key(field), p),
        None => {
            p.add(
                None,
                &key(field),
                "is not set".into(),
                format!("add {field} = \"2026-12-24T03:00:00+01:00\" (RFC 3339)"),
            );
            None
        }
    };
    let (start, end) = (read(&m.start, "start"), read(&m.end, "end"));
    let (start, end) = (start?, end?);
    if end <= start {
        p.add(
            m.end.as_ref().map(Spanned::span),
            &key("end"),
            "is not after start: the window ends before it starts".into(),
            "write an end later than start",
        );
        return None;
    }
    Some(When::Once { start, end })
}

fn weekly_window(
    key: &dyn Fn(&str) -> String,
    m: &RawMaintenance,
    p: &mut Problems<'_>,
) -> Option<When> {
    let every = match &m.every {
        Some(e) => match parse_every(e.get_ref()) {
            Ok(e) => Some(e),
            Err(message) => {
                p.add(
                    Some(e.span()),
                    &key("every"),
                    message,
                    "write a day and a local time, e.g. every = \"Sun 03:00\"",
                );
                None
            }
        },
        None => {
            p.add(
                None,
                &key("every"),
                "is not set".into(),
                "add every = \"Sun 03:00\" (a day and a local time)",
            );
            None
        }
    };
    let duration = match &m.duration {
        Some(d) => match humantime::parse_duration(d.get_ref().trim()) {
            Ok(x) if x.as_secs() >= 60 && x.as_secs() < 7 * 86_400 => Some(x.as_secs() as i64),
            Ok(_) => {
                p.add(
                    Some(d.span()),
                    &key("duration"),
                    "must be at least a minute and less than a week".into(),
                    "e.g. duration = \"2h\"",
                );
                None
            }
            Err(e) => {
                p.add(
                    Some(d.span()),
                    &key("duration"),
                    format!("{:?} is not a duration ({e})", d.get_ref()),
                    "write a duration such as \"2h\" or \"1h 30m\"",
                );
                None
            }
        },
        None => {
            p.add(
                None,
                &key("duration"),
                "is not set".into(),
                "add duration = \"2h\"",
            );
            None
        }
    };
    let timezone = match &m.timezone {
        None => Some("UTC".to_owned()),
        Some(t) => match jiff::tz::db().get(t.get_ref().trim()) {
            Ok(_) => Some(t.get_ref().trim().to_owned()),
            Err(_) => {
                p.add(
                    Some(t.span()),
                    &key("timezone"),
                    format!("{:?} is not a timezone this mxping knows", t.get_ref()),
                    "write an IANA name such as \"Europe/Berlin\", \"Asia/Shanghai\" or \"UTC\"",
                );
                None
            }
        },
    };
    let ((weekday, hour, minute), duration, timezone) = (every?, duration?, timezone?);
    Some(When::Weekly(Weekly {
        weekday,
        hour,
        minute,
        duration,
        timezone,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    fn weekly(every: &str, hours: i64, tz: &str) -> When {
        let (weekday, hour, minute) = parse_every(every).unwrap();
        When::Weekly(Weekly {
            weekday,
            hour,
            minute,
            duration: hours * 3600,
            timezone: tz.to_owned(),
        })
    }

    #[test]
    fn a_weekly_window_keeps_its_local_time_across_daylight_saving() {
        let w = weekly("Sun 03:00", 2, "Europe/Berlin");
        // Winter: 03:00 CET is 02:00 UTC.
        assert_eq!(
            w.open_at(ts("2026-01-04T02:30:00Z")),
            Some((ts("2026-01-04T02:00:00Z"), ts("2026-01-04T04:00:00Z")))
        );
        assert_eq!(w.open_at(ts("2026-01-04T01:59:59Z")), None);
        assert_eq!(w.open_at(ts("2026-01-04T04:00:00Z")), None);
        // Summer: 03:00 CEST is 01:00 UTC.
        assert_eq!(
            w.open_at(ts("2026-07-05T01:00:00Z")),
            Some((ts("2026-07-05T01:00:00Z"), ts("2026-07-05T03:00:00Z")))
        );
        // The night the clocks go forward (29 March 2026, 02:00 → 03:00): 03:00 exists.
        assert_eq!(
            w.open_at(ts("2026-03-29T01:10:00Z")).map(|o| o.0),
            Some(ts("2026-03-29T01:00:00Z"))
        );
        // The next change after a closed moment is the next Sunday's start.
        assert_eq!(
            w.next_change(ts("2026-01-05T12:00:00Z")),
            Some(ts("2026-01-11T02:00:00Z"))
        );
        assert_eq!(
            w.next_change(ts("2026-01-04T03:00:00Z")),
            Some(ts("2026-01-04T04:00:00Z"))
        );
    }

    #[test]
    fn weekly_occurrences_over_a_month_are_each_sunday() {
        let w = weekly("Sun 03:00", 2, "Europe/Berlin");
        let got = w.occurrences(ts("2026-03-20T00:00:00Z"), ts("2026-04-06T00:00:00Z"));
        assert_eq!(
            got,
            vec![
                (ts("2026-03-22T02:00:00Z"), ts("2026-03-22T04:00:00Z")),
                (ts("2026-03-29T01:00:00Z"), ts("2026-03-29T03:00:00Z")),
                (ts("2026-04-05T01:00:00Z"), ts("2026-04-05T03:00:00Z")),
            ]
        );
        // One that began before the range and ends inside it counts.
        assert_eq!(
            w.occurrences(ts("2026-03-22T03:00:00Z"), ts("2026-03-22T05:00:00Z")),
            vec![(ts("2026-03-22T02:00:00Z"), ts("2026-03-22T04:00:00Z"))]
        );
    }

    #[test]
    fn a_skipped_local_time_starts_when_the_clock_reaches_it() {
        // 02:30 does not exist in Berlin on 29 March 2026.
        let w = weekly("Sun 02:30", 1, "Europe/Berlin");
        let (start, end) = w.open_at(ts("2026-03-29T01:45:00Z")).unwrap();
        assert_eq!(start, ts("2026-03-29T01:30:00Z"));
        assert_eq!(end - start, 3600);
    }

    #[test]
    fn every_is_read_strictly() {
        assert_eq!(parse_every("sunday 23:59"), Ok((Weekday::Sunday, 23, 59)));
        assert!(parse_every("Sun 3:00").is_err(), "HH:MM");
        assert!(parse_every("Sun 24:00").is_err());
        assert!(
            parse_every("Sunnday 03:00")
                .unwrap_err()
                .contains("day of the week")
        );
        assert!(parse_every("Sun").is_err());
        assert!(parse_every("Sun 03:00 UTC").is_err());
    }
}
